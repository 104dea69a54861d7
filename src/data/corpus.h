// In-memory corpora of the three Jigsaw files, column-wise. Row numbers are 0-based
// data-row indices in the source file (the header is not a row).
//
// Texts are views: into the read-only mapping of the CSV file they were loaded from (no copy;
// ranks on one node share those pages), or into storage the column owns (a text that needed
// unescaping or UTF-8 cleaning, or one pushed by value). A column keeps alive whatever its
// views point into, so corpora and their subsets can be copied and kept freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sx::data {

// Append-only byte storage with stable addresses: views into it stay valid as it grows.
class TextArena {
 public:
  std::string_view copy(std::string_view text);
  size_t bytes() const { return bytes_; }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = 0, capacity_ = 0, bytes_ = 0;
};

class TextColumn {
 public:
  size_t size() const { return views_.size(); }
  bool empty() const { return views_.empty(); }
  std::string_view operator[](size_t i) const { return views_[i]; }
  std::vector<std::string_view>::const_iterator begin() const { return views_.begin(); }
  std::vector<std::string_view>::const_iterator end() const { return views_.end(); }
  const std::vector<std::string_view>& views() const { return views_; }
  void reserve(size_t n) { views_.reserve(n); }

  // Copies the text into storage this column owns.
  void push_back(std::string_view text);
  // A view into storage that keep() was given (or that another column already keeps).
  void push_back_view(std::string_view text) { views_.push_back(text); }
  // Text i of `other`, sharing (and keeping alive) its storage.
  void push_back_from(const TextColumn& other, size_t i);
  // Keeps `storage` alive as long as this column (or a copy of it) lives.
  void keep(std::shared_ptr<const void> storage);

 private:
  void keep_all_of(const TextColumn& other);

  std::vector<std::string_view> views_;
  std::vector<std::shared_ptr<const void>> storage_;
  std::shared_ptr<TextArena> own_;      // for push_back; also in storage_
  std::vector<const void*> kept_memo_;  // the storages of the last column merged
};

struct LabeledCorpus {
  TextColumn texts;
  std::vector<uint8_t> labels;  // 1 = toxic
  std::vector<std::string> langs;
  std::vector<int64_t> rows;

  size_t size() const { return texts.size(); }
  void reserve(size_t n);
  void push_back_from(const LabeledCorpus& other, size_t i);
  // The distinct languages in order of first appearance.
  std::vector<std::string> languages() const;
};

struct TestCorpus {
  std::vector<int64_t> ids;
  TextColumn texts;
  std::vector<std::string> langs;
  std::vector<int64_t> rows;

  size_t size() const { return texts.size(); }
};

}  // namespace sx::data

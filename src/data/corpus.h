// In-memory corpora of the three Jigsaw files, column-wise. Row numbers are 0-based
// data-row indices in the source file (the header is not a row).
//
// Texts are views: into the read-only mapping of the CSV file they were loaded from (no copy;
// ranks on one node share those pages), or into storage the column owns (a text that needed
// unescaping or UTF-8 cleaning, or one pushed by value). A column keeps alive whatever its
// views point into, so corpora and their subsets can be copied and kept freely.
//
// Every column can also view arrays that the ranks of a node share (node_share.h): a text
// column then holds TextRefs (source, offset, length) instead of addresses, since each
// process maps the files at its own address. Such corpora read the same and are read-only.
#pragma once

#include <array>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/column.h"

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

// Where a text of a shared text column lies: `length` bytes at `offset` of source `source`.
struct TextRef {
  uint64_t offset;
  uint32_t length;
  uint32_t source;
};

// A mapped file that texts are views of: the path it was mapped from and its bytes here.
struct TextFile {
  std::string path;
  std::string_view bytes;
};

class TextColumn {
 public:
  // Reads texts by index (for range-for and copies into vectors).
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string_view*;
    using reference = std::string_view;
    Iterator(const TextColumn* column, size_t i) : column_(column), i_(i) {}
    std::string_view operator*() const { return (*column_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    Iterator operator++(int) { return {column_, i_++}; }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }

   private:
    const TextColumn* column_;
    size_t i_;
  };

  size_t size() const { return shared_ ? refs_.size() : views_.size(); }
  bool empty() const { return size() == 0; }
  std::string_view operator[](size_t i) const {
    if (!shared_) return views_[i];
    const TextRef& r = refs_[i];
    return {bases_[r.source] + r.offset, r.length};
  }
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size()}; }
  // Texts [begin, end) (all by default) as views, in a vector of their own.
  std::vector<std::string_view> views(size_t begin = 0, size_t end = SIZE_MAX) const;
  void reserve(size_t n) { views_.reserve(n); }

  // Appending (not to a shared column):
  // Copies the text into storage this column owns.
  void push_back(std::string_view text);
  // A view into storage that keep() was given (or that another column already keeps).
  void push_back_view(std::string_view text) {
    check_appendable();
    views_.push_back(text);
  }
  // Text i of `other`, sharing (and keeping alive) its storage.
  void push_back_from(const TextColumn& other, size_t i);
  // Keeps `storage` alive as long as this column (or a copy of it) lives.
  void keep(std::shared_ptr<const void> storage);
  // keep() for the mapping of a file (`bytes` at their address in this process): recorded
  // so that the column can be shared by the file's path.
  void keep_file(const std::string& path, std::string_view bytes,
                 std::shared_ptr<const void> mapping);
  // The mapped files texts may be views of.
  const std::vector<TextFile>& files() const { return files_; }

  // A shared column: text i at refs[i], whose source k lies at bases[k] in this process;
  // `storage` keeps the refs and every source alive.
  static TextColumn over(Column<TextRef> refs, std::vector<const char*> bases,
                         std::vector<std::shared_ptr<const void>> storage);

 private:
  void keep_all_of(const TextColumn& other);
  void check_appendable() const;

  std::vector<std::string_view> views_;
  std::vector<std::shared_ptr<const void>> storage_;
  std::vector<TextFile> files_;
  std::shared_ptr<TextArena> own_;      // for push_back; also in storage_
  std::vector<const void*> kept_memo_;  // the storages of the last column merged
  bool shared_ = false;                 // texts are refs_ over bases_, not views_
  Column<TextRef> refs_;
  std::vector<const char*> bases_;
};

// Languages, one a row: a small code per row and each distinct name once.
class LangColumn {
 public:
  size_t size() const { return codes_.size(); }
  bool empty() const { return codes_.empty(); }
  const std::string& operator[](size_t i) const { return names_[codes_[i]]; }
  const std::string& back() const { return names_[codes_.back()]; }
  void reserve(size_t n) { codes_.reserve(n); }
  void push_back(std::string_view lang);
  // The distinct languages in order of first appearance.
  const std::vector<std::string>& names() const { return names_; }
  const Column<uint32_t>& codes() const { return codes_; }
  // One name a row.
  std::vector<std::string> strings() const;
  // Row i has the language names[codes[i]]; every name is some row's, in order of first
  // appearance.
  static LangColumn over(Column<uint32_t> codes, std::vector<std::string> names);

 private:
  Column<uint32_t> codes_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;  // name -> code
};

bool operator==(const LangColumn& a, const std::vector<std::string>& b);

struct LabeledCorpus {
  TextColumn texts;
  Column<uint8_t> labels;  // 1 = toxic
  LangColumn langs;
  Column<int64_t> rows;

  size_t size() const { return texts.size(); }
  void reserve(size_t n);
  void push_back_from(const LabeledCorpus& other, size_t i);
  // The same with another language.
  void push_back_from(const LabeledCorpus& other, size_t i, std::string_view lang);
  // The distinct languages in order of first appearance.
  std::vector<std::string> languages() const;
  // Texts per language (sorted) and label: [0] normal, [1] toxic.
  std::map<std::string, std::array<size_t, 2>> label_counts() const;
};

struct TestCorpus {
  Column<int64_t> ids;
  TextColumn texts;
  LangColumn langs;
  Column<int64_t> rows;
  // Rows of the file left out as bad (data.bad_rows: skip): ids a submission will lack.
  uint64_t skipped = 0;

  size_t size() const { return texts.size(); }
};

}  // namespace sx::data

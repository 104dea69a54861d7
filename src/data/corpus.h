// In-memory corpora of the three Jigsaw files, column-wise. Row numbers are 0-based
// data-row indices in the source file (the header is not a row).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sx::data {

struct LabeledCorpus {
  std::vector<std::string> texts;
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
  std::vector<std::string> texts;
  std::vector<std::string> langs;
  std::vector<int64_t> rows;

  size_t size() const { return texts.size(); }
};

}  // namespace sx::data

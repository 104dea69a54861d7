#include "data/corpus.h"

#include <algorithm>

namespace sx::data {

void LabeledCorpus::reserve(size_t n) {
  texts.reserve(n);
  labels.reserve(n);
  langs.reserve(n);
  rows.reserve(n);
}

void LabeledCorpus::push_back_from(const LabeledCorpus& other, size_t i) {
  texts.push_back(other.texts[i]);
  labels.push_back(other.labels[i]);
  langs.push_back(other.langs[i]);
  rows.push_back(other.rows[i]);
}

std::vector<std::string> LabeledCorpus::languages() const {
  std::vector<std::string> out;
  for (const auto& l : langs)
    if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  return out;
}

}  // namespace sx::data

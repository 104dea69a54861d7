#include "data/token_store.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/parallel.h"

namespace sx::data {
namespace {

// max_len + 1 ids are enough for finish() to see that a sequence was cut.
size_t kept_ids(const XlmrTokenizer& tokenizer, size_t n) {
  return std::min(n, tokenizer.max_len() + 1);
}

}  // namespace

size_t TokenStore::bytes() const {
  return offset_.size() * 8 + length_.size() * 4 + arena_.size() * 4;
}

TokenStore::TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads)
    : tokenizer_(tokenizer),
      texts_(texts),
      threads_(threads),
      offset_(texts.size(), -1),
      length_(texts.size(), 0) {}

void TokenStore::ensure(const std::vector<uint32_t>& indices) {
  std::vector<uint32_t> missing;
  for (uint32_t i : indices)
    if (offset_[i] < 0) missing.push_back(i);
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (missing.empty()) return;
  std::vector<std::vector<int32_t>> ids(missing.size());
  parallel_for(missing.size(), threads_, [&](size_t begin, size_t end) {
    for (size_t k = begin; k < end; ++k) ids[k] = tokenizer_.encode_unpadded(texts_[missing[k]]);
  });
  for (size_t k = 0; k < missing.size(); ++k) {
    const size_t kept = kept_ids(tokenizer_, ids[k].size());
    offset_[missing[k]] = static_cast<int64_t>(arena_.size());
    length_[missing[k]] = static_cast<uint32_t>(kept);
    arena_.insert(arena_.end(), ids[k].begin(), ids[k].begin() + kept);
  }
  tokenized_ += missing.size();
}

void TokenStore::copy_ids(uint32_t i, int32_t* out) const {
  tokenizer_.finish(arena_.data() + offset_[i], length_[i], out);
}

}  // namespace sx::data

#include "data/batches.h"

#include <algorithm>

#include "core/parallel.h"

namespace sx::data {

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
    // max_len + 1 ids are enough for finish() to see that a sequence was cut.
    const size_t kept = std::min(ids[k].size(), tokenizer_.max_len() + 1);
    offset_[missing[k]] = static_cast<int64_t>(arena_.size());
    length_[missing[k]] = static_cast<uint32_t>(kept);
    arena_.insert(arena_.end(), ids[k].begin(), ids[k].begin() + kept);
  }
  tokenized_ += missing.size();
}

void TokenStore::copy_ids(uint32_t i, int32_t* out) const {
  tokenizer_.finish(arena_.data() + offset_[i], length_[i], out);
}

PairBatch make_pair_batch(const std::vector<Pair>& pairs, PairRange range, TokenStore& store,
                          size_t max_len) {
  PairBatch batch;
  batch.count = range.count;
  batch.max_len = max_len;
  std::vector<uint32_t> needed;
  needed.reserve(2 * range.count);
  for (uint64_t p = range.begin; p < range.begin + range.count; ++p) {
    needed.push_back(pair_at(pairs, p).left);
    needed.push_back(pair_at(pairs, p).right);
  }
  store.ensure(needed);
  batch.left_ids.resize(range.count * max_len);
  batch.right_ids.resize(range.count * max_len);
  batch.labels.resize(range.count);
  for (uint64_t k = 0; k < range.count; ++k) {
    const Pair& pair = pair_at(pairs, range.begin + k);
    store.copy_ids(pair.left, batch.left_ids.data() + k * max_len);
    store.copy_ids(pair.right, batch.right_ids.data() + k * max_len);
    batch.labels[k] = pair.label;
  }
  return batch;
}

}  // namespace sx::data

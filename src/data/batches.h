// From pairs to token batches. TokenStore tokenizes each distinct text of a corpus once,
// lazily, on first use: a rank only tokenizes the texts it consumes.
#pragma once

#include <cstdint>
#include <vector>

#include "data/corpus.h"
#include "data/pairs.h"
#include "data/tokenizer.h"

namespace sx::data {

class TokenStore {
 public:
  TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads);
  // Tokenizes (in parallel) those of `indices` not yet tokenized.
  void ensure(const std::vector<uint32_t>& indices);
  // max_len ids of text i (ensure() first).
  void copy_ids(uint32_t i, int32_t* out) const;
  size_t tokenized() const { return tokenized_; }

 private:
  const XlmrTokenizer& tokenizer_;
  const TextColumn& texts_;
  size_t threads_;
  std::vector<int64_t> offset_;  // into arena_, -1 = not yet
  std::vector<uint32_t> length_;
  std::vector<int32_t> arena_;  // unpadded ids, back to back
  size_t tokenized_ = 0;
};

// left/right: count x max_len ids, row-major; labels: 1 = same class.
struct PairBatch {
  size_t count = 0;
  size_t max_len = 0;
  std::vector<int32_t> left_ids;
  std::vector<int32_t> right_ids;
  std::vector<float> labels;
};

PairBatch make_pair_batch(const std::vector<Pair>& pairs, PairRange range, TokenStore& store,
                          size_t max_len);

}  // namespace sx::data

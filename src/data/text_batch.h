// The one batch of texts the encoder takes: sequences stored packed, their real tokens back to
// back with cumulative offsets, no padding. Training and validation batches hold B pairs as 2B
// sequences, the left texts of pairs 0..B-1 first, then their right texts (so the encoder's 2B
// embeddings split at B into the two sides of the pairs), with the pairs' labels; an embedding
// batch holds plain texts (no pairs, no labels). Torch- and MPI-free.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "data/pairs.h"
#include "data/token_store.h"
#include "data/tokenizer.h"

namespace sx::data {

struct TextBatch {
  int64_t pairs = 0;             // pair batches: sequences() == 2 pairs; 0 for plain texts
  std::vector<int32_t> ids;      // every sequence's real tokens, back to back
  std::vector<int64_t> offsets;  // sequences + 1 cumulative lengths: sequence i is [o[i], o[i+1])
  std::vector<float> labels;     // pairs; 1 = same class

  int64_t sequences() const {
    return offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  }
  int64_t tokens() const { return offsets.empty() ? 0 : offsets.back(); }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  int64_t max_length() const;
  // Sum over sequences of length^2 (attention's work grows with it).
  int64_t sum_squared_lengths() const;
};

// The texts of the pairs at `positions` of the global pair sequence (in that order).
TextBatch make_text_batch(const PairList& pairs, const std::vector<uint64_t>& positions,
                          TokenStore& store, size_t max_len);
// The plain texts [begin, end) of `texts`, tokenized on `threads` threads (0 = all cores).
TextBatch make_text_batch(const XlmrTokenizer& tokenizer,
                          const std::vector<std::string_view>& texts, size_t begin, size_t end,
                          size_t threads = 0);

// The pairs `indices` of `batch` (in that order), as a batch of their own.
TextBatch select_pairs(const TextBatch& batch, const std::vector<uint32_t>& indices);
// Each pair's token count (left + right sequence).
std::vector<int64_t> pair_token_counts(const TextBatch& batch);

// B random pairs shaped like the PyTorch reference benchmark's batches: every sequence's
// length uniform in [min_len, max_len], <s> first, </s> last, the ids between uniform in
// [5, vocab_end), labels 0/1 with probability 1/2. Deterministic from `seed`.
TextBatch random_text_batch(int64_t pairs, uint64_t seed, int64_t min_len = 10,
                            int64_t max_len = 128, int32_t vocab_end = 250000);

// The real (non-pad) length of a row of max_len ids as the tokenizer pads them.
int64_t real_length(const int32_t* row, size_t max_len);

}  // namespace sx::data

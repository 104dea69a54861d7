// A training step's texts as the encoder takes them, and which pairs of a global batch each
// rank takes. Torch- and MPI-free.
//
// TextBatch holds B pairs as 2B token sequences, left texts of pairs 0..B-1 first, then their
// right texts (so the encoder's 2B embeddings split at B into the two sides of the pairs).
// The sequences are stored packed: their real tokens back to back, no padding, with 2B+1
// cumulative offsets; padded_ids() lays them out as a [2B, width] matrix for the padded
// layout.
//
// Balanced ranks: a global batch is the W x P pairs at positions [consumed, consumed + W P)
// of the global pair sequence (data/pairs.h). By default rank r takes the P consecutive
// positions [consumed + r P, ...). balanced_assignment() instead deals the W P pairs out so
// that the ranks' token counts are close, each rank still taking exactly P pairs: the global
// batch, hence the mean loss over it and its gradient, is unchanged. The rule is a
// deterministic function of the pairs' token counts alone (never of timing):
//   1. order the pairs by token count, longest first, ties by position;
//   2. give each in turn to the rank with the fewest tokens so far among the ranks that still
//      have fewer than P pairs (ties: the lowest rank);
//   3. every rank keeps its pairs in position order.
// With one rank this is the identity.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batches.h"
#include "data/pairs.h"

namespace sx::data {

struct TextBatch {
  int64_t pairs = 0;
  std::vector<int32_t> ids;      // every sequence's real tokens, back to back
  std::vector<int64_t> offsets;  // 2 pairs + 1 cumulative lengths: sequence i is [o[i], o[i+1])
  std::vector<float> labels;     // pairs; 1 = same class

  int64_t sequences() const { return 2 * pairs; }
  int64_t tokens() const { return offsets.empty() ? 0 : offsets.back(); }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  int64_t max_length() const;
  // Sum over sequences of length^2 (attention's work grows with it).
  int64_t sum_squared_lengths() const;
};

// The texts of the pairs at `positions` of the global pair sequence (in that order).
TextBatch make_text_batch(const PairList& pairs, const std::vector<uint64_t>& positions,
                          TokenStore& store, size_t max_len);

// The pairs `indices` of `batch` (in that order), as a batch of their own.
TextBatch select_pairs(const TextBatch& batch, const std::vector<uint32_t>& indices);
// Each pair's token count (left + right sequence).
std::vector<int64_t> pair_token_counts(const TextBatch& batch);

// [2B, width] row-major ids, each sequence followed by `pad` (width >= max_length()).
std::vector<int32_t> padded_ids(const TextBatch& batch, int64_t width, int32_t pad);

// The rule above: for W ranks of `per_rank` pairs each, given the token count of each of the
// W x per_rank pairs of a global batch (index = position - consumed), the indices each rank
// takes, ascending. Throws std::invalid_argument when the sizes disagree.
std::vector<std::vector<uint32_t>> balanced_assignment(const std::vector<int64_t>& pair_tokens,
                                                       int world, int64_t per_rank);
// The consecutive split: rank r takes [r per_rank, (r + 1) per_rank).
std::vector<std::vector<uint32_t>> consecutive_assignment(int world, int64_t per_rank);

// B random pairs shaped like the PyTorch reference benchmark's batches: every sequence's
// length uniform in [min_len, max_len], <s> first, </s> last, the ids between uniform in
// [5, vocab_end), labels 0/1 with probability 1/2. Deterministic from `seed`.
TextBatch random_text_batch(int64_t pairs, uint64_t seed, int64_t min_len = 10,
                            int64_t max_len = 128, int32_t vocab_end = 250000);

// max over ranks of their token count / the mean (1 = perfectly even).
double token_imbalance(const std::vector<int64_t>& pair_tokens,
                       const std::vector<std::vector<uint32_t>>& assignment);

// The global positions rank `rank` of `world` consumes in the global batch at `consumed`:
// balanced over the token counts (tokenizing the whole global batch's texts, which
// TokenStore caches) or consecutive (data::rank_range). `imbalance` (optional) receives
// token_imbalance() of the split used.
std::vector<uint64_t> rank_positions(const PairList& pairs, uint64_t consumed, int rank, int world,
                                     int64_t per_rank, bool balance, TokenStore& store,
                                     size_t max_len, double* imbalance = nullptr);

}  // namespace sx::data

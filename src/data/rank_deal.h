// Which pairs of a global batch each rank takes. Torch- and MPI-free.
//
// A global batch is the W x P pairs at positions [consumed, consumed + W P) of the global pair
// sequence (data/pairs.h). Consecutively, rank r takes the P positions [consumed + r P, ...).
// balanced_assignment() instead deals the W P pairs out so that the ranks' token counts are
// close, each rank still taking exactly P pairs: the global batch, hence the mean loss over it
// and its gradient, is unchanged. The rule is a deterministic function of the pairs' token
// counts alone (never of timing):
//   1. order the pairs by token count, longest first, ties by position;
//   2. give each in turn to the rank with the fewest tokens so far among the ranks that still
//      have fewer than P pairs (ties: the lowest rank);
//   3. every rank keeps its pairs in position order.
// With one rank this is the identity.
#pragma once

#include <cstdint>
#include <vector>

#include "data/pairs.h"
#include "data/token_store.h"

namespace sx::data {

// The rule above: for W ranks of `per_rank` pairs each, given the token count of each of the
// W x per_rank pairs of a global batch (index = position - consumed), the indices each rank
// takes, ascending. Throws std::invalid_argument when the sizes disagree.
std::vector<std::vector<uint32_t>> balanced_assignment(const std::vector<int64_t>& pair_tokens,
                                                       int world, int64_t per_rank);
// The consecutive split: rank r takes [r per_rank, (r + 1) per_rank).
std::vector<std::vector<uint32_t>> consecutive_assignment(int world, int64_t per_rank);

// Each rank's token count under `assignment`, by rank.
std::vector<int64_t> rank_tokens(const std::vector<int64_t>& pair_tokens,
                                 const std::vector<std::vector<uint32_t>>& assignment);

// max over ranks of their token count / the mean (1 = perfectly even).
double token_imbalance(const std::vector<int64_t>& pair_tokens,
                       const std::vector<std::vector<uint32_t>>& assignment);

// What the whole deal of a global batch looks like: every rank sees every rank's share, so
// every rank computes the same values, without a collective.
struct DealSummary {
  double imbalance = 1.0;   // token_imbalance() of the split used
  int64_t most_tokens = 0;  // the most real tokens any rank's share holds
};

// The global positions rank `rank` of `world` consumes in the global batch at `consumed`:
// balanced over the token counts (tokenizing the whole global batch's texts, which
// TokenStore caches) or consecutive (data::rank_range). `deal` (optional) receives the
// summary of the split used (the consecutive split then tokenizes the global batch too).
std::vector<uint64_t> rank_positions(const PairList& pairs, uint64_t consumed, int rank, int world,
                                     int64_t per_rank, bool balance, TokenStore& store,
                                     size_t max_len, DealSummary* deal = nullptr);

}  // namespace sx::data

#include "data/rank_deal.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "data/text_batch.h"

namespace sx::data {

std::vector<std::vector<uint32_t>> balanced_assignment(const std::vector<int64_t>& pair_tokens,
                                                       int world, int64_t per_rank) {
  if (world < 1 || per_rank < 1 || static_cast<int64_t>(pair_tokens.size()) != world * per_rank)
    throw std::invalid_argument("balanced_assignment: " + std::to_string(pair_tokens.size()) +
                                " pairs for " + std::to_string(world) + " ranks of " +
                                std::to_string(per_rank));
  std::vector<uint32_t> order(pair_tokens.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return pair_tokens[a] > pair_tokens[b]; });
  std::vector<std::vector<uint32_t>> ranks(static_cast<size_t>(world));
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (uint32_t k : order) {
    int best = -1;
    for (int r = 0; r < world; ++r) {
      if (static_cast<int64_t>(ranks[r].size()) == per_rank) continue;
      if (best < 0 || load[r] < load[best]) best = r;
    }
    ranks[best].push_back(k);
    load[best] += pair_tokens[k];
  }
  for (auto& r : ranks) std::sort(r.begin(), r.end());
  return ranks;
}

std::vector<std::vector<uint32_t>> consecutive_assignment(int world, int64_t per_rank) {
  std::vector<std::vector<uint32_t>> ranks(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r)
    for (int64_t k = 0; k < per_rank; ++k)
      ranks[r].push_back(static_cast<uint32_t>(r * per_rank + k));
  return ranks;
}

std::vector<int64_t> rank_tokens(const std::vector<int64_t>& pair_tokens,
                                 const std::vector<std::vector<uint32_t>>& assignment) {
  std::vector<int64_t> sums;
  for (const auto& rank : assignment) {
    int64_t sum = 0;
    for (uint32_t k : rank) sum += pair_tokens[k];
    sums.push_back(sum);
  }
  return sums;
}

double token_imbalance(const std::vector<int64_t>& pair_tokens,
                       const std::vector<std::vector<uint32_t>>& assignment) {
  const std::vector<int64_t> sums = rank_tokens(pair_tokens, assignment);
  const int64_t total = std::accumulate(sums.begin(), sums.end(), int64_t{0});
  const int64_t most = sums.empty() ? 0 : *std::max_element(sums.begin(), sums.end());
  if (total == 0) return 1.0;
  return static_cast<double>(most) * static_cast<double>(assignment.size()) /
         static_cast<double>(total);
}

std::vector<uint64_t> rank_positions(const PairList& pairs, uint64_t consumed, int rank, int world,
                                     int64_t per_rank, bool balance, TokenStore& store,
                                     size_t max_len, DealSummary* deal) {
  std::vector<uint64_t> out;
  if (!balance && deal == nullptr) {
    const PairRange range = rank_range(consumed, rank, static_cast<uint64_t>(per_rank));
    for (uint64_t k = 0; k < range.count; ++k) out.push_back(range.begin + k);
    return out;
  }
  // Token counts of every pair of the global batch.
  const uint64_t n = static_cast<uint64_t>(world) * static_cast<uint64_t>(per_rank);
  std::vector<uint32_t> texts;
  texts.reserve(2 * n);
  for (uint64_t k = 0; k < n; ++k) {
    texts.push_back(pair_at(pairs, consumed + k).left);
    texts.push_back(pair_at(pairs, consumed + k).right);
  }
  store.ensure(texts);
  std::vector<int32_t> row(max_len);
  std::vector<int64_t> pair_tokens(n, 0);
  for (uint64_t k = 0; k < 2 * n; ++k) {
    store.copy_ids(texts[k], row.data());
    pair_tokens[k / 2] += real_length(row.data(), max_len);
  }
  const auto assignment = balance ? balanced_assignment(pair_tokens, world, per_rank)
                                  : consecutive_assignment(world, per_rank);
  if (deal) {
    const std::vector<int64_t> sums = rank_tokens(pair_tokens, assignment);
    deal->imbalance = token_imbalance(pair_tokens, assignment);
    deal->most_tokens = *std::max_element(sums.begin(), sums.end());
  }
  for (uint32_t k : assignment[static_cast<size_t>(rank)]) out.push_back(consumed + k);
  return out;
}

}  // namespace sx::data

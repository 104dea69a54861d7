#include "data/packed_batch.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

namespace sx::data {
namespace {

// Real (non-pad) ids of text `i`: TokenStore hands out max_len ids, pads at the end.
int64_t real_length(const std::vector<int32_t>& row) {
  int64_t n = static_cast<int64_t>(row.size());
  while (n > 0 && row[n - 1] == XlmrTokenizer::kPad) --n;
  return n;
}

}  // namespace

int64_t TextBatch::max_length() const {
  int64_t longest = 0;
  for (int64_t i = 0; i < sequences(); ++i) longest = std::max(longest, length(i));
  return longest;
}

int64_t TextBatch::sum_squared_lengths() const {
  int64_t sum = 0;
  for (int64_t i = 0; i < sequences(); ++i) sum += length(i) * length(i);
  return sum;
}

TextBatch make_text_batch(const PairList& pairs, const std::vector<uint64_t>& positions,
                          TokenStore& store, size_t max_len) {
  TextBatch batch;
  batch.pairs = static_cast<int64_t>(positions.size());
  std::vector<uint32_t> texts;  // left texts, then right texts
  texts.reserve(2 * positions.size());
  for (uint64_t p : positions) texts.push_back(pair_at(pairs, p).left);
  for (uint64_t p : positions) texts.push_back(pair_at(pairs, p).right);
  store.ensure(texts);
  std::vector<int32_t> row(max_len);
  batch.offsets.reserve(texts.size() + 1);
  batch.offsets.push_back(0);
  batch.ids.reserve(texts.size() * max_len / 2);
  for (uint32_t t : texts) {
    store.copy_ids(t, row.data());
    batch.ids.insert(batch.ids.end(), row.begin(), row.begin() + real_length(row));
    batch.offsets.push_back(static_cast<int64_t>(batch.ids.size()));
  }
  batch.labels.reserve(positions.size());
  for (uint64_t p : positions) batch.labels.push_back(pair_at(pairs, p).label);
  return batch;
}

TextBatch select_pairs(const TextBatch& batch, const std::vector<uint32_t>& indices) {
  TextBatch out;
  out.pairs = static_cast<int64_t>(indices.size());
  out.offsets.push_back(0);
  for (int side = 0; side < 2; ++side)
    for (uint32_t k : indices) {
      const int64_t i = side * batch.pairs + k;
      out.ids.insert(out.ids.end(), batch.ids.begin() + batch.offsets[i],
                     batch.ids.begin() + batch.offsets[i + 1]);
      out.offsets.push_back(static_cast<int64_t>(out.ids.size()));
    }
  for (uint32_t k : indices) out.labels.push_back(batch.labels[k]);
  return out;
}

std::vector<int64_t> pair_token_counts(const TextBatch& batch) {
  std::vector<int64_t> out(static_cast<size_t>(batch.pairs));
  for (int64_t k = 0; k < batch.pairs; ++k)
    out[k] = batch.length(k) + batch.length(batch.pairs + k);
  return out;
}

std::vector<int32_t> padded_ids(const TextBatch& batch, int64_t width, int32_t pad) {
  if (width < batch.max_length())
    throw std::invalid_argument("padded_ids: width " + std::to_string(width) +
                                " is shorter than the longest sequence");
  std::vector<int32_t> out(static_cast<size_t>(batch.sequences() * width), pad);
  for (int64_t i = 0; i < batch.sequences(); ++i)
    std::copy(batch.ids.begin() + batch.offsets[i], batch.ids.begin() + batch.offsets[i + 1],
              out.begin() + i * width);
  return out;
}

TextBatch random_text_batch(int64_t pairs, uint64_t seed, int64_t min_len, int64_t max_len,
                            int32_t vocab_end) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> length(min_len, max_len);
  std::uniform_int_distribution<int32_t> id(5, vocab_end - 1);
  TextBatch batch;
  batch.pairs = pairs;
  batch.offsets.push_back(0);
  for (int64_t i = 0; i < 2 * pairs; ++i) {
    const int64_t n = length(rng);
    batch.ids.push_back(XlmrTokenizer::kBos);
    for (int64_t k = 1; k + 1 < n; ++k) batch.ids.push_back(id(rng));
    batch.ids.push_back(XlmrTokenizer::kEos);
    batch.offsets.push_back(static_cast<int64_t>(batch.ids.size()));
  }
  std::bernoulli_distribution same(0.5);
  for (int64_t i = 0; i < pairs; ++i) batch.labels.push_back(same(rng) ? 1.0f : 0.0f);
  return batch;
}

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

double token_imbalance(const std::vector<int64_t>& pair_tokens,
                       const std::vector<std::vector<uint32_t>>& assignment) {
  int64_t total = 0, most = 0;
  for (const auto& rank : assignment) {
    int64_t sum = 0;
    for (uint32_t k : rank) sum += pair_tokens[k];
    total += sum;
    most = std::max(most, sum);
  }
  if (total == 0) return 1.0;
  return static_cast<double>(most) * static_cast<double>(assignment.size()) /
         static_cast<double>(total);
}

std::vector<uint64_t> rank_positions(const PairList& pairs, uint64_t consumed, int rank, int world,
                                     int64_t per_rank, bool balance, TokenStore& store,
                                     size_t max_len, double* imbalance) {
  std::vector<uint64_t> out;
  if (!balance && (world == 1 || imbalance == nullptr)) {
    const PairRange range = rank_range(consumed, rank, static_cast<uint64_t>(per_rank));
    for (uint64_t k = 0; k < range.count; ++k) out.push_back(range.begin + k);
    if (imbalance) *imbalance = 1.0;
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
    pair_tokens[k / 2] += real_length(row);
  }
  const auto assignment = balance ? balanced_assignment(pair_tokens, world, per_rank)
                                  : consecutive_assignment(world, per_rank);
  if (imbalance) *imbalance = token_imbalance(pair_tokens, assignment);
  for (uint32_t k : assignment[static_cast<size_t>(rank)]) out.push_back(consumed + k);
  return out;
}

}  // namespace sx::data

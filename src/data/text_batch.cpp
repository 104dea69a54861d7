#include "data/text_batch.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

namespace sx::data {

int64_t real_length(const int32_t* row, size_t max_len) {
  auto n = static_cast<int64_t>(max_len);
  while (n > 0 && row[n - 1] == XlmrTokenizer::kPad) --n;
  return n;
}

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
    batch.ids.insert(batch.ids.end(), row.begin(), row.begin() + real_length(row.data(), max_len));
    batch.offsets.push_back(static_cast<int64_t>(batch.ids.size()));
  }
  batch.labels.reserve(positions.size());
  for (uint64_t p : positions) batch.labels.push_back(pair_at(pairs, p).label);
  return batch;
}

TextBatch make_text_batch(const XlmrTokenizer& tokenizer,
                          const std::vector<std::string_view>& texts, size_t begin, size_t end,
                          size_t threads) {
  const size_t n = end - begin, len = tokenizer.max_len();
  std::vector<int32_t> rows(n * len);
  tokenizer.encode_many(
      {texts.begin() + static_cast<ptrdiff_t>(begin), texts.begin() + static_cast<ptrdiff_t>(end)},
      rows.data(), threads);
  TextBatch batch;
  batch.offsets.reserve(n + 1);
  batch.offsets.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    const int32_t* row = rows.data() + i * len;
    batch.ids.insert(batch.ids.end(), row, row + real_length(row, len));
    batch.offsets.push_back(static_cast<int64_t>(batch.ids.size()));
  }
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

}  // namespace sx::data

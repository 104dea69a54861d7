// Packed text batches and the balanced assignment of a global batch's pairs to ranks.
#include <algorithm>
#include <random>
#include <set>
#include <string>

#include "data/jigsaw.h"
#include "data/rank_deal.h"
#include "data/synth.h"
#include "data/text_batch.h"
#include "data/token_store.h"
#include "test_util.h"

namespace sx::data {
namespace {

std::vector<int64_t> random_counts(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> len(20, 256);
  std::vector<int64_t> out(n);
  for (auto& c : out) c = len(rng);
  return out;
}

TEST(BalancedAssignment, EveryRankTakesExactlyItsShareAndAllPairsAreTakenOnce) {
  for (int world : {1, 2, 3, 8})
    for (int64_t per_rank : {1, 5, 32}) {
      auto counts = random_counts(static_cast<size_t>(world * per_rank), world * 100 + per_rank);
      auto a = balanced_assignment(counts, world, per_rank);
      ASSERT_EQ(a.size(), static_cast<size_t>(world));
      std::set<uint32_t> all;
      for (const auto& rank : a) {
        EXPECT_EQ(static_cast<int64_t>(rank.size()), per_rank);
        EXPECT_TRUE(std::is_sorted(rank.begin(), rank.end()));  // position order
        all.insert(rank.begin(), rank.end());
      }
      EXPECT_EQ(all.size(), counts.size());
      EXPECT_EQ(a, balanced_assignment(counts, world, per_rank));  // deterministic
    }
}

TEST(BalancedAssignment, OneRankIsTheIdentityAndBalancingBeatsConsecutiveSlices) {
  auto counts = random_counts(32, 1);
  EXPECT_EQ(balanced_assignment(counts, 1, 32), consecutive_assignment(1, 32));
  double balanced = 0, consecutive = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto c = random_counts(8 * 32, seed);
    balanced += token_imbalance(c, balanced_assignment(c, 8, 32));
    consecutive += token_imbalance(c, consecutive_assignment(8, 32));
  }
  EXPECT_LT(balanced / 20, 1.01);  // within 1 % of the mean on average
  EXPECT_GT(consecutive / 20, balanced / 20);
  // The worked rule: lengths 9 8 1 1 over 2 ranks of 2: 9 -> r0, 8 -> r1, 1 -> r1, 1 -> r0.
  EXPECT_EQ(balanced_assignment({1, 9, 8, 1}, 2, 2),
            (std::vector<std::vector<uint32_t>>{{1, 3}, {0, 2}}));
  EXPECT_THROW(balanced_assignment({1, 2, 3}, 2, 2), std::invalid_argument);
}

TEST(TextBatch, RandomBatchesAreShapedLikeTheReferenceBenchmarks) {
  TextBatch b = random_text_batch(16, 3, 10, 128);
  ASSERT_EQ(b.sequences(), 32);
  ASSERT_EQ(b.offsets.size(), 33u);
  ASSERT_EQ(b.labels.size(), 16u);
  for (int64_t i = 0; i < b.sequences(); ++i) {
    EXPECT_GE(b.length(i), 10);
    EXPECT_LE(b.length(i), 128);
    EXPECT_EQ(b.ids[b.offsets[i]], XlmrTokenizer::kBos);
    EXPECT_EQ(b.ids[b.offsets[i + 1] - 1], XlmrTokenizer::kEos);
    for (int64_t k = b.offsets[i] + 1; k + 1 < b.offsets[i + 1]; ++k) {
      EXPECT_GE(b.ids[k], 5);
      EXPECT_LT(b.ids[k], 250000);
    }
  }
  EXPECT_EQ(random_text_batch(16, 3).ids, random_text_batch(16, 3).ids);
  // select_pairs keeps each pair's two texts and label.
  TextBatch s = select_pairs(b, {5, 2});
  ASSERT_EQ(s.pairs, 2);
  EXPECT_EQ(s.length(0), b.length(5));
  EXPECT_EQ(s.length(2), b.length(16 + 5));
  EXPECT_EQ(s.labels, (std::vector<float>{b.labels[5], b.labels[2]}));
  EXPECT_EQ(pair_token_counts(s)[1], b.length(2) + b.length(18));
  for (int64_t i : {0, 2})  // pair 0 of the selection is pair 5: its left and right texts
    EXPECT_TRUE(std::equal(s.ids.begin() + s.offsets[i], s.ids.begin() + s.offsets[i + 1],
                           b.ids.begin() + b.offsets[i == 0 ? 5 : 21]));
}

PairList synthetic_pairs(const LabeledCorpus& corpus, int64_t n_pairs) {
  PairOptions options;
  options.n_pairs = n_pairs, options.seed = 1, options.min_chars = 10;
  return build_pairs(corpus, options);
}

// Pairs of a synthetic corpus through the lazy token store, as the trainer makes them.
struct StoredPairs {
  StoredPairs(size_t max_len, int64_t n_pairs)
      : synth(write_synthetic_jigsaw(dir.path(), 400, 5)),
        en(load_labeled_csv(synth.train_csv, {"comment_text", {"toxic"}, "lang"}, LoadOptions{})),
        tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", max_len,
             Pretokenize::kWordpunct, true}),
        pairs(synthetic_pairs(en, n_pairs)),
        store(tok, en.texts, 2) {}
  test::TempDir dir;
  SynthSummary synth;
  LabeledCorpus en;
  XlmrTokenizer tok;
  PairList pairs;
  TokenStore store;
};

// The training path (pairs through the lazy token store) and the encode path (plain texts
// tokenized directly) make the same packed batch from the same texts.
TEST(TextBatch, PairsFromTheTokenStoreEqualTheirTextsTokenizedDirectly) {
  const size_t max_len = 24;
  StoredPairs f(max_len, 100);
  const LabeledCorpus& en = f.en;
  const XlmrTokenizer& tok = f.tok;
  const PairList& pairs = f.pairs;
  TokenStore& store = f.store;
  TextBatch packed = make_text_batch(pairs, {12, 13, 14, 15}, store, max_len);
  ASSERT_EQ(packed.pairs, 4);
  std::vector<std::string_view> texts;  // left texts, then right texts
  std::vector<float> labels;
  for (uint64_t p = 12; p < 16; ++p) texts.push_back(en.texts[pairs[p].left]);
  for (uint64_t p = 12; p < 16; ++p) {
    texts.push_back(en.texts[pairs[p].right]);
    labels.push_back(pairs[p].label);
  }
  const TextBatch direct = make_text_batch(tok, texts, 0, texts.size(), 2);
  EXPECT_EQ(direct.pairs, 0);
  EXPECT_EQ(packed.ids, direct.ids);
  EXPECT_EQ(packed.offsets, direct.offsets);
  EXPECT_EQ(packed.labels, labels);
  EXPECT_LE(packed.max_length(), static_cast<int64_t>(max_len));
  // The ranks' positions: consecutive slices, or a balanced deal of the same global batch.
  EXPECT_EQ(rank_positions(pairs, 8, 1, 2, 4, false, store, max_len),
            (std::vector<uint64_t>{12, 13, 14, 15}));
  DealSummary deal;
  deal.imbalance = 0;
  std::set<uint64_t> global;
  for (int rank = 0; rank < 2; ++rank)
    for (uint64_t p : rank_positions(pairs, 8, rank, 2, 4, true, store, max_len, &deal))
      global.insert(p);
  EXPECT_EQ(global, (std::set<uint64_t>{8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_GE(deal.imbalance, 1.0);
}

// Every rank learns from the deal the most tokens any rank's share holds (what CUDA graphs
// pick a common bucket from): the same value on every rank, without a collective, at least
// each rank's own count and equal to the largest, balanced or not, though the ranks' own
// counts differ.
TEST(RankDeal, EveryRankComputesTheSameLargestShare) {
  const size_t max_len = 32;
  StoredPairs f(max_len, 200);
  const PairList& pairs = f.pairs;
  TokenStore& store = f.store;
  int differing = 0;
  for (const bool balance : {true, false})
    for (const int world : {1, 2, 3})
      for (uint64_t consumed : {0, 24, 48}) {
        const int64_t per_rank = 4;
        std::vector<int64_t> own, most;
        for (int rank = 0; rank < world; ++rank) {
          DealSummary deal;
          const auto positions = rank_positions(pairs, consumed, rank, world, per_rank, balance,
                                                store, max_len, &deal);
          own.push_back(make_text_batch(pairs, positions, store, max_len).tokens());
          most.push_back(deal.most_tokens);
        }
        const std::string what = std::to_string(world) + " ranks at " + std::to_string(consumed) +
                                 (balance ? " balanced" : " consecutive");
        for (int64_t m : most) EXPECT_EQ(m, most.front()) << what;
        EXPECT_EQ(most.front(), *std::max_element(own.begin(), own.end())) << what;
        if (*std::min_element(own.begin(), own.end()) < most.front()) ++differing;
      }
  EXPECT_GT(differing, 0) << "no global batch gave the ranks different token counts";
}

}  // namespace
}  // namespace sx::data

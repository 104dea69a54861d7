// The corpus split, the sampling weights, the pair generator and its rank slicing.
#include <set>

#include "core/error.h"
#include "data/batches.h"
#include "data/pairs.h"
#include "data/split.h"
#include "test_util.h"

namespace sx::data {
namespace {

LabeledCorpus corpus(size_t n, const std::string& lang, int toxic_every, size_t first_row = 0) {
  LabeledCorpus c;
  for (size_t i = 0; i < n; ++i) {
    c.texts.push_back(lang + " text number " + std::to_string(i) + std::string(i % 37, 'x'));
    c.labels.push_back(i % toxic_every == 0);
    c.langs.push_back(lang);
    c.rows.push_back(static_cast<int64_t>(first_row + i));
  }
  return c;
}

LabeledCorpus multilingual() {
  LabeledCorpus m = corpus(30, "es", 4);
  LabeledCorpus it = corpus(50, "it", 4);
  for (size_t i = 0; i < it.size(); ++i) m.push_back_from(it, i);
  return m;
}

TEST(Split, SizesAndDisjointPartsAsTheNotebook) {
  LabeledCorpus en = corpus(1000, "en", 5);
  CorpusSplit s = split_corpus(en, multilingual(), 42, 0.1);
  EXPECT_EQ(s.max_size, 50u);
  EXPECT_EQ(s.largest_language, "it");
  EXPECT_EQ(s.multilingual.size(), 80u + 50u);
  EXPECT_EQ(s.validation.size(), 95u);  // 10 % of the 950 left
  EXPECT_EQ(s.train.size(), 855u);
  std::set<int64_t> rows;
  for (const auto* part : {&s.validation, &s.train})
    rows.insert(part->rows.begin(), part->rows.end());
  for (size_t i = 80; i < s.multilingual.size(); ++i) {
    EXPECT_EQ(s.multilingual.langs[i], "en");
    rows.insert(s.multilingual.rows[i]);
  }
  EXPECT_EQ(rows.size(), 1000u);  // every English row exactly once
}

TEST(Split, DeterministicFromSeed) {
  LabeledCorpus en = corpus(1000, "en", 5);
  EXPECT_EQ(split_corpus(en, multilingual(), 1, 0.1).train.rows,
            split_corpus(en, multilingual(), 1, 0.1).train.rows);
  EXPECT_NE(split_corpus(en, multilingual(), 1, 0.1).train.rows,
            split_corpus(en, multilingual(), 2, 0.1).train.rows);
}

TEST(Split, RefusesTooSmallEnglishCorpus) {
  try {
    split_corpus(corpus(499, "en", 5), multilingual(), 42, 0.1);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("at least 10 x 50"), std::string::npos) << e.what();
  }
}

TEST(Probabilities, ShorterIsLikelierFloorAndShortTextsExcluded) {
  std::vector<size_t> lengths = {5, 10, 11, 100, 1000};
  auto p = text_probabilities(lengths, 10);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[1], 0.0);
  EXPECT_GT(p[2], p[3]);
  EXPECT_GT(p[3], p[4]);
  double sum = 0;
  for (double x : p) sum += x;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  // Weight 10 x max - len: 9989 : 9900 : 9000 before the floor (inactive here).
  EXPECT_NEAR(p[2] / p[4], 9989.0 / 9000.0, 1e-12);
}

TEST(Probabilities, FloorLiftsTheLongest) {
  // max 1000 -> weights 9999 (len 1) ... the floor 0.5/n binds for none of equal lengths;
  // with one very long text among short ones its share stays >= 0.5/n before renormalising.
  std::vector<size_t> lengths(100, 20);
  lengths.push_back(100000);
  auto p = text_probabilities(lengths, 10);
  EXPECT_GT(p.back(), 0.0);
  EXPECT_GE(p.back() * 101, 0.45);
}

TEST(Pairs, CategoriesLabelsAndUniqueness) {
  LabeledCorpus en = corpus(2000, "en", 5);
  PairReport report;
  auto pairs = build_pairs(en, 1000, 7, 10, &report);
  ASSERT_EQ(pairs.size(), 1000u);
  size_t tt = 0, nn = 0, nt = 0;
  std::set<std::pair<uint32_t, uint32_t>> seen;
  for (const auto& p : pairs) {
    EXPECT_NE(p.left, p.right);
    EXPECT_TRUE(seen.insert({std::min(p.left, p.right), std::max(p.left, p.right)}).second);
    int a = en.labels[p.left], b = en.labels[p.right];
    EXPECT_EQ(p.label, a == b ? 1 : 0);
    (a && b ? tt : (!a && !b ? nn : nt))++;
    EXPECT_GT(en.texts[p.left].size(), 10u);
  }
  EXPECT_EQ(tt, 250u);
  EXPECT_EQ(nn, 250u);
  EXPECT_EQ(nt, 500u);
  ASSERT_EQ(report.per_language_pair.size(), 1u);
  EXPECT_EQ(report.per_language_pair[0].normal_toxic, 500u);
}

TEST(Pairs, EveryLanguagePairIncludingSameLanguage) {
  LabeledCorpus m = corpus(400, "es", 3);
  LabeledCorpus it = corpus(400, "it", 3);
  for (size_t i = 0; i < it.size(); ++i) m.push_back_from(it, i);
  PairReport report;
  auto pairs = build_pairs(m, 600, 1, 10, &report);
  ASSERT_EQ(report.per_language_pair.size(), 3u);  // es-es, es-it, it-it
  size_t cross = 0;
  for (const auto& p : pairs) cross += m.langs[p.left] != m.langs[p.right];
  EXPECT_EQ(cross, 200u);
}

TEST(Pairs, DeterministicFromSeedAlone) {
  LabeledCorpus en = corpus(500, "en", 4);
  auto a = build_pairs(en, 300, 3, 10), b = build_pairs(en, 300, 3, 10),
       c = build_pairs(en, 300, 4, 10);
  ASSERT_EQ(a.size(), b.size());
  bool all_equal = true, any_diff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    all_equal &= a[i].left == b[i].left && a[i].right == b[i].right;
    any_diff |= a[i].left != c[i].left;
  }
  EXPECT_TRUE(all_equal);
  EXPECT_TRUE(any_diff);
}

TEST(Pairs, TooFewTextsIsAClearError) {
  LabeledCorpus en = corpus(20, "en", 5);  // 4 toxic texts: at most 6 toxic-toxic pairs
  try {
    build_pairs(en, 100, 1, 10);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("toxic-toxic"), std::string::npos) << e.what();
  }
}

TEST(Pairs, RankSlicesConcatenateToTheGlobalSequenceForAnyWorldSize) {
  LabeledCorpus en = corpus(600, "en", 4);
  auto pairs = build_pairs(en, 240, 5, 10);
  const uint64_t global_batch = 24, steps = 25;  // wraps around the 240 pairs
  for (int world : {1, 2, 3, 4}) {
    const uint64_t per_rank = global_batch / world;
    std::vector<uint64_t> seen;
    for (uint64_t step = 0; step < steps; ++step) {
      const uint64_t consumed = step * global_batch;
      for (int r = 0; r < world; ++r) {
        PairRange range = rank_range(consumed, r, per_rank);
        for (uint64_t p = range.begin; p < range.begin + range.count; ++p) seen.push_back(p);
      }
    }
    ASSERT_EQ(seen.size(), steps * global_batch) << world;
    for (uint64_t i = 0; i < seen.size(); ++i) {
      ASSERT_EQ(seen[i], i) << "world " << world;
      EXPECT_EQ(&pair_at(pairs, seen[i]), &pairs[i % pairs.size()]);
    }
  }
}

TEST(Pairs, ResumingWithAnotherWorldSizeContinuesTheSameSequence) {
  // 3 steps on 2 ranks x 4, then 2 steps on 4 ranks x 2: positions 0..39 in order.
  std::vector<uint64_t> seen;
  uint64_t consumed = 0;
  for (int step = 0; step < 3; ++step, consumed += 8)
    for (int r = 0; r < 2; ++r)
      for (uint64_t k = 0; k < 4; ++k) seen.push_back(rank_range(consumed, r, 4).begin + k);
  for (int step = 0; step < 2; ++step, consumed += 8)
    for (int r = 0; r < 4; ++r)
      for (uint64_t k = 0; k < 2; ++k) seen.push_back(rank_range(consumed, r, 2).begin + k);
  for (uint64_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
}

}  // namespace
}  // namespace sx::data

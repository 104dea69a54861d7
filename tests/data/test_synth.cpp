// data synth output loads cleanly, obeys the notebook's split rule, and is deterministic;
// TokenStore batches equal direct tokenization.
#include <algorithm>

#include "core/rng.h"
#include "data/batches.h"
#include "data/jigsaw.h"
#include "data/split.h"
#include "data/synth.h"
#include "test_util.h"

namespace sx::data {
namespace {

TEST(Synth, FilesLoadWithoutBadRowsAndSplitWorks) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 3000, 11);
  LoadOptions o;  // bad_rows = fail: any malformed row would throw
  auto en = load_labeled_csv(
      s.train_csv,
      {"comment_text",
       {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"},
       "lang"},
      o);
  auto ml = load_labeled_csv(s.multilingual_csv, {"comment_text", {"toxic"}, "lang"}, o);
  auto test = load_test_csv(s.test_csv, {}, o);
  EXPECT_EQ(en.size(), 3000u);
  EXPECT_EQ(ml.languages(), (std::vector<std::string>{"es", "it", "tr"}));
  EXPECT_EQ(test.size(), s.test_rows);
  size_t toxic = 0;
  for (auto l : en.labels) toxic += l;
  EXPECT_GT(toxic, 200u);
  EXPECT_LT(toxic, 600u);
  EXPECT_NO_THROW(split_corpus(en, ml, 1, 0.1));
  std::string raw = test::read_file(s.train_csv);
  EXPECT_NE(raw.find("\n\n"), std::string::npos);  // a quoted field holding newlines
  EXPECT_NE(raw.find("\"\""), std::string::npos);  // a doubled quote
  std::string header = raw.substr(0, raw.find('\n'));
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), 44);  // Jigsaw's 45 columns
}

TEST(Synth, DeterministicFromSeed) {
  test::TempDir a, b, c;
  write_synthetic_jigsaw(a.path(), 500, 3);
  write_synthetic_jigsaw(b.path(), 500, 3);
  write_synthetic_jigsaw(c.path(), 500, 4);
  for (const char* f : {"jigsaw-unintended-bias-train.csv", "validation.csv", "test.csv"}) {
    EXPECT_EQ(test::read_file(a.path(f)), test::read_file(b.path(f))) << f;
    EXPECT_NE(test::read_file(a.path(f)), test::read_file(c.path(f))) << f;
  }
}

TEST(Batches, TokenStoreTokenizesOnceAndMatchesDirectEncoding) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 400, 5);
  auto en = load_labeled_csv(s.train_csv, {"comment_text", {"toxic"}, "lang"}, LoadOptions{});
  XlmrTokenizer tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", 24,
                     Pretokenize::kWordpunct, true});
  PairOptions options;
  options.n_pairs = 100;
  options.seed = 1;
  auto pairs = build_pairs(en, options);
  TokenStore store(tok, en.texts, 2);
  PairBatch b = make_pair_batch(pairs, rank_range(8, 1, 4), store, 24);  // positions 12..15
  ASSERT_EQ(b.count, 4u);
  for (size_t k = 0; k < 4; ++k) {
    const Pair& p = pairs[12 + k];
    EXPECT_EQ(std::vector<int32_t>(b.left_ids.begin() + k * 24, b.left_ids.begin() + (k + 1) * 24),
              tok.encode(en.texts[p.left]));
    EXPECT_EQ(
        std::vector<int32_t>(b.right_ids.begin() + k * 24, b.right_ids.begin() + (k + 1) * 24),
        tok.encode(en.texts[p.right]));
    EXPECT_EQ(b.labels[k], p.label);
  }
  size_t once = store.tokenized();
  EXPECT_LE(once, 8u);
  make_pair_batch(pairs, rank_range(8, 1, 4), store, 24);
  EXPECT_EQ(store.tokenized(), once);  // nothing tokenized twice
}

}  // namespace
}  // namespace sx::data

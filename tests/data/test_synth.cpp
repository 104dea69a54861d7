// data synth output loads cleanly, obeys the notebook's split rule, and is deterministic;
// TokenStore batches equal direct tokenization.
#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>

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

// A process of a node that maps what its builder published (as dist's MPI window does).
class MappingNode : public NodeMemory {
 public:
  explicit MappingNode(std::vector<std::shared_ptr<const void>> images) : images_(images) {}
  bool builder() const override { return false; }
  std::shared_ptr<const void> publish(size_t, const std::function<void(void*)>& fill) override {
    EXPECT_FALSE(fill == nullptr);
    return images_.at(next_++);  // fill is not called: the builder did the work
  }

 private:
  std::vector<std::shared_ptr<const void>> images_;
  size_t next_ = 0;
};

// Publishes like PrivateMemory and keeps what it published for a MappingNode.
class RecordingNode : public PrivateMemory {
 public:
  std::shared_ptr<const void> publish(size_t bytes,
                                      const std::function<void(void*)>& fill) override {
    images.push_back(PrivateMemory::publish(bytes, fill));
    return images.back();
  }
  std::vector<std::shared_ptr<const void>> images;
};

TEST(Batches, SharedTokenStoreHoldsTheLazyStoresIdsOnBuilderAndMappers) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 9000, 6);  // more than two 4096-text blocks
  auto en = load_labeled_csv(s.train_csv, {"comment_text", {"toxic"}, "lang"}, LoadOptions{});
  // max_len 24 cuts many texts: the store keeps max_len + 1 ids so finish() sees the cut.
  XlmrTokenizer tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", 24,
                     Pretokenize::kWordpunct, true});
  TokenStore lazy(tok, en.texts, 2);
  RecordingNode builder_node;
  TokenStore built(tok, en.texts, 2, builder_node);
  MappingNode mapper_node(builder_node.images);
  TokenStore mapped(tok, en.texts, 1, mapper_node);
  EXPECT_EQ(built.tokenized(), en.size());
  EXPECT_EQ(mapped.tokenized(), en.size());
  std::vector<uint32_t> all(en.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  lazy.ensure(all);
  built.ensure(all);  // nothing to do
  size_t cut = 0;
  std::vector<int32_t> a(24), b(24), c(24);
  for (uint32_t i : all) {
    lazy.copy_ids(i, a.data());
    built.copy_ids(i, b.data());
    mapped.copy_ids(i, c.data());
    ASSERT_EQ(a, b) << i;
    ASSERT_EQ(a, c) << i;
    cut += a.back() != XlmrTokenizer::kPad;
  }
  EXPECT_GT(cut, 100u);  // the cut is exercised
  // A rank whose corpus differs from the builder's is refused, not read out of bounds.
  auto fewer = load_labeled_csv(s.multilingual_csv, {"comment_text", {"toxic"}, "lang"}, {});
  MappingNode wrong(builder_node.images);
  EXPECT_THROW(TokenStore(tok, fewer.texts, 1, wrong), std::runtime_error);
}

}  // namespace
}  // namespace sx::data

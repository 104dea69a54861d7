// data synth output loads cleanly, obeys the notebook's split rule, and is deterministic;
// TokenStore batches equal direct tokenization.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "core/rng.h"
#include "data/jigsaw.h"
#include "data/node_share.h"
#include "data/split.h"
#include "data/synth.h"
#include "data/text_batch.h"
#include "data/token_store.h"
#include "test_util.h"

namespace sx::data {
namespace {

// The training file as the trainer reads it, with bad_rows = fail: any malformed row throws.
auto load_train_csv(const std::string& path) {
  LoadOptions o;
  return load_labeled_csv(
      path,
      {"comment_text",
       {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"},
       "lang"},
      o);
}

TEST(Synth, FilesLoadWithoutBadRowsAndSplitWorks) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 3000, 11);
  LoadOptions o;  // bad_rows = fail: any malformed row would throw
  auto en = load_train_csv(s.train_csv);
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

// Small files too: at 20 rows a language, 15% toxic, about one seed in 25 drew a language
// without a toxic row, which training and evaluate then refused.
TEST(Synth, EveryMultilingualLanguageHasBothLabels) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    test::TempDir dir;
    auto s = write_synthetic_jigsaw(dir.path(), 300, seed);
    auto ml = load_labeled_csv(s.multilingual_csv, {"comment_text", {"toxic"}, "lang"}, {});
    std::map<std::string, std::set<int>> labels;
    for (size_t i = 0; i < ml.size(); ++i) labels[ml.langs[i]].insert(ml.labels[i]);
    ASSERT_EQ(labels.size(), 3u);
    for (const auto& [lang, seen] : labels)
      EXPECT_EQ(seen.size(), 2u) << "seed " << seed << ", " << lang;
  }
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

TEST(Synth, TextCorpusFilesHoldEachTextOnceAndLoadCleanly) {
  test::TempDir dir;
  dir.write("texts.csv",
            "lang,text\nen,\"Short one\nwith a line, and \"\"quotes\"\"\"\nen,second\n"
            "de,\"Straße, über\"\nru,город\nen,third\n");
  auto s = write_text_jigsaw(dir.path("out"), dir.path("texts.csv"), 0, 1);
  LoadOptions o;  // bad_rows = fail
  auto en = load_train_csv(s.train_csv);
  std::vector<std::string> got;
  for (size_t i = 0; i < en.size(); ++i) got.emplace_back(en.texts[i]);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"Short one\nwith a line, and \"quotes\"", "Straße, über",
                                           "second", "third", "город"}));
  auto ml = load_labeled_csv(s.multilingual_csv, {"comment_text", {"toxic"}, "lang"}, o);
  EXPECT_EQ(ml.languages(), (std::vector<std::string>{"de", "ru"}));
  EXPECT_EQ(load_test_csv(s.test_csv, {}, o).size(), s.test_rows);
  auto again = write_text_jigsaw(dir.path("again"), dir.path("texts.csv"), 12, 1);
  EXPECT_EQ(again.train_rows, 12u);  // passes over the texts, each reshuffled
  write_text_jigsaw(dir.path("same"), dir.path("texts.csv"), 12, 1);
  EXPECT_EQ(test::read_file(dir.path("again/jigsaw-unintended-bias-train.csv")),
            test::read_file(dir.path("same/jigsaw-unintended-bias-train.csv")));
}

TEST(Synth, MalformedTextCorpusIsAUserErrorNamingTheLine) {
  test::TempDir dir;
  dir.write("texts.csv", "lang,text\nen,one\nen,two,three\n");
  try {
    write_text_jigsaw(dir.path("out"), dir.path("texts.csv"), 0, 1);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("texts.csv:3: expected two fields lang,text"),
              std::string::npos)
        << e.what();
  }
  dir.write("bad-header.csv", "text,lang\none,en\n");
  EXPECT_THROW(write_text_jigsaw(dir.path("out"), dir.path("bad-header.csv"), 0, 1), UserError);
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
  const std::vector<uint64_t> positions{12, 13, 14, 15};
  TextBatch b = make_text_batch(pairs, positions, store, 24);
  ASSERT_EQ(b.pairs, 4);
  // A text's real tokens as the tokenizer encodes it alone (its row without the padding).
  auto real = [&](std::string_view text) {
    std::vector<int32_t> row = tok.encode(text);
    row.resize(static_cast<size_t>(real_length(row.data(), row.size())));
    return row;
  };
  auto sequence = [&](int64_t i) {
    return std::vector<int32_t>(b.ids.begin() + b.offsets[i], b.ids.begin() + b.offsets[i + 1]);
  };
  for (int64_t k = 0; k < 4; ++k) {  // the left texts, then the right texts
    const Pair& p = pairs[12 + k];
    EXPECT_EQ(sequence(k), real(en.texts[p.left]));
    EXPECT_EQ(sequence(4 + k), real(en.texts[p.right]));
    EXPECT_EQ(b.labels[k], p.label);
  }
  size_t once = store.tokenized();
  EXPECT_LE(once, 8u);
  make_text_batch(pairs, positions, store, 24);
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

TEST(Batches, TheLazyStoreHoldsTheTokenizersIdsOfEveryTextCutOrNot) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 9000, 6);  // more than two 4096-text blocks
  auto en = load_labeled_csv(s.train_csv, {"comment_text", {"toxic"}, "lang"}, LoadOptions{});
  // max_len 24 cuts many texts: the store keeps max_len + 1 ids so finish() sees the cut.
  XlmrTokenizer tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", 24,
                     Pretokenize::kWordpunct, true});
  TokenStore lazy(tok, en.texts, 2);
  std::vector<uint32_t> all(en.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  lazy.ensure(all);
  EXPECT_EQ(lazy.tokenized(), en.size());
  size_t cut = 0;
  std::vector<int32_t> a(24);
  for (uint32_t i : all) {
    lazy.copy_ids(i, a.data());
    ASSERT_EQ(a, tok.encode(en.texts[i])) << i;
    cut += a.back() != XlmrTokenizer::kPad;
  }
  EXPECT_GT(cut, 100u);  // the cut is exercised
}

void expect_same(const LabeledCorpus& a, const LabeledCorpus& b, const std::string& name) {
  ASSERT_EQ(a.size(), b.size()) << name;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a.texts[i], b.texts[i]) << name << " " << i;
    ASSERT_EQ(a.labels[i], b.labels[i]) << name << " " << i;
    ASSERT_EQ(a.langs[i], b.langs[i]) << name << " " << i;
    ASSERT_EQ(a.rows[i], b.rows[i]) << name << " " << i;
  }
  EXPECT_EQ(a.languages(), b.languages()) << name;
}

void expect_same(const PairList& a, const PairList& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].left, b[i].left) << i;
    ASSERT_EQ(a[i].right, b[i].right) << i;
    ASSERT_EQ(a[i].label, b[i].label) << i;
  }
}

// data.share_node: the builder's split, test corpus and pairs published once; the builder and
// a process mapping its images read exactly what loading gave, texts that loading copied
// (doubled quotes, stripping, invalid UTF-8) included, and make the same batches.
TEST(NodeShare, SharedCorporaAndPairsReadAsTheLoadedOnesOnBuilderAndMappers) {
  test::TempDir dir;
  auto s = write_synthetic_jigsaw(dir.path(), 3000, 7);
  {  // rows whose texts cannot stay views of the file
    std::ofstream out(s.multilingual_csv, std::ios::app);
    out << "90001,\"He said \"\"hi\"\" to everyone there\",es,1\n"
        << "90002,   padded text with spaces around   ,it,0\n"
        << "90003,bad \xff utf8 byte inside this text,es,0\n";
  }
  const LabeledColumns columns{"comment_text", {"toxic"}, "lang"};
  auto en = load_labeled_csv(s.train_csv, columns, {});
  auto ml = load_labeled_csv(s.multilingual_csv, columns, {});
  std::optional<TestCorpus> test = load_test_csv(s.test_csv, {"id", "content", "lang"}, {});
  test->skipped = 2;  // as if two bad rows had been left out: the count is shared too
  const CorpusSplit loaded = split_corpus(en, ml, 3, 0.1);
  PairOptions options;
  options.n_pairs = 300;
  options.seed = 5;
  const PairList pairs = build_pairs(loaded.train, options);

  RecordingNode builder_node;
  CorpusSplit built = loaded;
  std::optional<TestCorpus> built_test = test;
  share_corpora(built, built_test, builder_node);
  const PairList built_pairs = share_pairs(pairs, builder_node);
  MappingNode mapper_node(builder_node.images);
  CorpusSplit mapped;
  std::optional<TestCorpus> mapped_test;
  share_corpora(mapped, mapped_test, mapper_node);
  const PairList mapped_pairs = share_pairs(PairList(), mapper_node);

  for (const CorpusSplit* c : {&built, &mapped}) {
    expect_same(loaded.multilingual, c->multilingual, "multilingual");
    expect_same(loaded.validation, c->validation, "validation");
    expect_same(loaded.train, c->train, "train");
    EXPECT_EQ(c->max_size, loaded.max_size);
    EXPECT_EQ(c->largest_language, loaded.largest_language);
  }
  for (const auto* t : {&built_test, &mapped_test}) {
    ASSERT_TRUE(t->has_value());
    EXPECT_EQ((*t)->ids, test->ids);
    EXPECT_EQ((*t)->rows, test->rows);
    EXPECT_EQ((*t)->skipped, 2u);
    EXPECT_EQ((*t)->langs.strings(), test->langs.strings());
    EXPECT_EQ((*t)->texts.views(), test->texts.views());
  }
  const std::vector<std::string_view> copied = {"He said \"hi\" to everyone there",
                                                "padded text with spaces around",
                                                "bad  utf8 byte inside this text"};
  const auto texts = mapped.multilingual.texts.views();
  for (std::string_view text : copied)
    EXPECT_NE(std::find(texts.begin(), texts.end(), text), texts.end()) << text;
  expect_same(pairs, built_pairs);
  expect_same(pairs, mapped_pairs);

  // The same batches from the loaded and the shared corpora.
  XlmrTokenizer tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", 24,
                     Pretokenize::kWordpunct, true});
  TokenStore from_loaded(tok, loaded.train.texts, 1), from_mapped(tok, mapped.train.texts, 1);
  for (uint64_t at : {0, 64, 250}) {
    std::vector<uint64_t> positions(32);
    std::iota(positions.begin(), positions.end(), at);
    const TextBatch a = make_text_batch(pairs, positions, from_loaded, 24);
    const TextBatch b = make_text_batch(mapped_pairs, positions, from_mapped, 24);
    EXPECT_EQ(a.ids, b.ids) << at;
    EXPECT_EQ(a.offsets, b.offsets) << at;
    EXPECT_EQ(a.labels, b.labels) << at;
  }
  // Shared corpora are read-only.
  EXPECT_THROW(mapped.train.texts.push_back("x"), std::logic_error);
  EXPECT_THROW(mapped.train.labels.push_back(1), std::logic_error);
  // A file that changed after the builder loaded it is refused, not read out of bounds.
  { std::ofstream(s.train_csv, std::ios::app) << "more\n"; }
  MappingNode late(builder_node.images);
  CorpusSplit none;
  std::optional<TestCorpus> no_test;
  EXPECT_THROW(share_corpora(none, no_test, late), std::runtime_error);
}

}  // namespace
}  // namespace sx::data

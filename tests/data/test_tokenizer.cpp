// The tokenizer against ../shared/fixtures/tokenizer/tokenizer_ref.json (HF's tokenizer and
// the notebook's tokenize_all): every case must match exactly.
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "core/error.h"
#include "core/rng.h"
#include "data/datasets.h"
#include "data/text.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace sx::data {
namespace {

using nlohmann::json;

// Read once and kept: a range-for over a temporary's ["cases"] would dangle.
const json& reference() {
  static const json ref =
      json::parse(test::read_file(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json"));
  return ref;
}

XlmrTokenizer make(size_t max_len, Pretokenize pre, bool keep_eos) {
  return XlmrTokenizer(
      {test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", max_len, pre, keep_eos});
}

std::vector<int32_t> ids_of(const json& j) {
  return j.get<std::vector<int32_t>>();
}

TEST(Tokenizer, SpecialIdsAndVocabularyMatchFixture) {
  json ref = reference();
  auto tok = make(128, Pretokenize::kNone, true);
  EXPECT_EQ(tok.vocab_size(), ref["vocab_size"].get<int>());
  EXPECT_EQ(tok.mask_id(), ref["mask"].get<int>());
  EXPECT_EQ(XlmrTokenizer::kBos, ref["bos"].get<int>());
  EXPECT_EQ(XlmrTokenizer::kPad, ref["pad"].get<int>());
  EXPECT_EQ(XlmrTokenizer::kEos, ref["eos"].get<int>());
  EXPECT_EQ(XlmrTokenizer::kUnk, ref["unk"].get<int>());
}

TEST(Tokenizer, WordpunctMatchesPythonRegex) {
  for (const auto& c : reference()["cases"]) {
    std::string text = c["text"];
    std::vector<std::string> got;
    for (auto w : wordpunct_tokenize(text)) got.emplace_back(w);
    EXPECT_EQ(got, c["wordpunct"].get<std::vector<std::string>>()) << text;
  }
}

TEST(Tokenizer, WholeTextMatchesSentencepieceIds) {
  auto tok = make(128, Pretokenize::kNone, true);
  for (const auto& c : reference()["cases"]) {
    std::vector<int32_t> want = ids_of(c["spm_ids"]);
    std::vector<int32_t> got = tok.encode_unpadded(c["text"].get<std::string>());
    if (got.size() > 128) {  // spm_ids are cut to 128 keeping </s>
      got.resize(128);
      got.back() = XlmrTokenizer::kEos;
    }
    EXPECT_EQ(got, want) << c["text"];
  }
}

// pretokenize none encodes a text in parts cut before spaces and stops past max_len; the ids
// must be the whole text's whatever the parts (1 byte: a part per space).
TEST(Tokenizer, WholeTextInPartsIsTheWholeTextsIds) {
  auto with_parts = [](size_t bytes, size_t max_len) {
    TokenizerOptions o{test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", max_len,
                       Pretokenize::kNone, true};
    o.text_chunk_bytes = bytes;
    return XlmrTokenizer(o);
  };
  std::vector<std::string> texts;
  for (const auto& c : reference()["cases"]) texts.push_back(c["text"].get<std::string>());
  for (const char* odd : {"  lead and trail  ", "two  spaces\tand\ttabs", "a \xCC\x88 b . ,",
                          "x\xE3\x80\x80y \xEF\xBC\xA1\xEF\xBC\xA2 \xE2\x91\xA0", " ", ""})
    texts.emplace_back(odd);
  for (size_t max_len : {size_t{16}, size_t{128}}) {
    auto whole = with_parts(size_t{1} << 30, max_len), parts = with_parts(1, max_len);
    auto some = with_parts(7, max_len);
    ASSERT_TRUE(parts.encodes_in_parts());  // else the comparisons below show nothing
    for (const auto& t : texts) {
      EXPECT_EQ(parts.encode(t), whole.encode(t)) << max_len << " [" << t << "]";
      EXPECT_EQ(some.encode(t), whole.encode(t)) << max_len << " [" << t << "]";
    }
  }
  // A long line costs its first words: a megabyte of them gives the ids of its start.
  std::string start;
  for (int i = 0; i < 200; ++i) start += "word" + std::to_string(i) + " ";
  std::string long_line = start;
  while (long_line.size() < (size_t{1} << 20)) long_line += start;
  auto tok = with_parts(4096, 128);
  EXPECT_EQ(tok.encode(long_line), tok.encode(start));
}

TEST(Tokenizer, WholeTextSplitsWordsAtNextLineAsHfDoes) {
  // HF splits at U+0085; sentencepiece's normalization keeps it inside the word.
  auto tok = make(128, Pretokenize::kNone, true);
  EXPECT_EQ(tok.encode_unpadded("Hello\xC2\x85world\xC2\x85"), tok.encode_unpadded("Hello world"));
  auto per_word = make(128, Pretokenize::kWordpunct, true);  // a space to Python's \s already
  EXPECT_EQ(per_word.encode_unpadded("Hello\xC2\x85world"),
            per_word.encode_unpadded("Hello world"));
}

TEST(Tokenizer, NotebookTokenizationAt128) {
  auto tok = make(128, Pretokenize::kWordpunct, false);
  for (const auto& c : reference()["cases"])
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["seed_ids_128"])) << c["text"];
}

TEST(Tokenizer, NotebookTokenizationAt16DropsEos) {
  auto tok = make(16, Pretokenize::kWordpunct, false);
  for (const auto& c : reference()["cases"])
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["seed_ids_16"])) << c["text"];
}

TEST(Tokenizer, KeepEosAt16EndsCutSequencesWithEos) {
  auto tok = make(16, Pretokenize::kWordpunct, true);
  for (const auto& c : reference()["cases"])
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["seed_ids_16_keep_eos"]))
        << c["text"];
}

TEST(Tokenizer, EncodeManyEqualsOneByOneOnTwoThreads) {
  auto tok = make(32, Pretokenize::kWordpunct, true);
  std::vector<std::string> texts;
  for (const auto& c : reference()["cases"]) texts.push_back(c["text"]);
  std::vector<std::string_view> views(texts.begin(), texts.end());
  std::vector<int32_t> out(texts.size() * 32);
  tok.encode_many(views, out.data(), 2);
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(std::vector<int32_t>(out.begin() + i * 32, out.begin() + (i + 1) * 32),
              tok.encode(texts[i]));
}

XlmrTokenizer make_cached(size_t max_len, size_t cache_bytes) {
  TokenizerOptions o{test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", max_len,
                     Pretokenize::kWordpunct, true};
  o.word_cache_bytes = cache_bytes;
  return XlmrTokenizer(o);
}

TEST(TokenizerWordCache, CachedEqualsUncachedOnEveryFixtureCase) {
  const json& ref = reference();
  for (size_t max_len : {16, 128}) {
    auto cached = make_cached(max_len, 64u << 20);
    auto plain = make_cached(max_len, 0);
    for (int pass = 0; pass < 2; ++pass)  // the second pass is served from the cache
      for (const auto& c : ref["cases"]) {
        const std::string text = c["text"];
        EXPECT_EQ(cached.encode_unpadded(text), plain.encode_unpadded(text)) << text;
        EXPECT_EQ(cached.encode(text), plain.encode(text)) << text;
      }
    EXPECT_GT(cached.word_cache_stats().hits, 0u);
    EXPECT_EQ(plain.word_cache_stats().lookups, 0u);
  }
}

// 100k deterministic texts: words drawn with Zipf-like weights from a vocabulary mixing
// scripts, digits, punctuation runs and rare long words, as natural comments do.
std::vector<std::string> synthetic_texts(size_t n) {
  const std::vector<std::string> stems = {
      "the",  "of",    "and", "Zürich", "город", "東京", "2019", "don't",    "!!!", "...",
      "café", "naïve", "x",   "_id",    "ﬁne",   "١٢٣",  "über", "İstanbul", "—",   "ok?"};
  Rng rng(11);
  std::vector<std::string> texts(n);
  for (auto& t : texts) {
    const size_t words = 1 + rng.below(8);
    for (size_t w = 0; w < words; ++w) {
      const size_t r = rng.below(1000);
      const size_t k = r < 600 ? rng.below(5) : r < 950 ? rng.below(stems.size()) : 0;
      t += stems[k];
      if (r >= 950) t += std::to_string(rng.below(100000));  // the long tail
      t += rng.below(5) ? " " : "\t";
    }
  }
  return texts;
}

TEST(TokenizerWordCache, CachedEqualsUncachedOnASyntheticCorpusOnTwoThreads) {
  const auto texts = synthetic_texts(100000);
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  auto cached = make_cached(32, 64u << 20);
  auto plain = make_cached(32, 0);
  std::vector<int32_t> a(texts.size() * 32), b(texts.size() * 32);
  cached.encode_many(views, a.data(), 2);
  plain.encode_many(views, b.data(), 2);
  EXPECT_TRUE(a == b);
  const WordCacheStats stats = cached.word_cache_stats();
  EXPECT_GT(stats.hit_rate(), 0.5);  // Zipf: most lookups hit
  EXPECT_EQ(stats.uncached, 0u);
}

TEST(TokenizerWordCache, StaysBoundedAndCorrectWhenFull) {
  const auto texts = synthetic_texts(5000);
  auto tiny = make_cached(32, 8192);  // room for a few hundred words
  auto plain = make_cached(32, 0);
  for (const auto& t : texts) ASSERT_EQ(tiny.encode_unpadded(t), plain.encode_unpadded(t)) << t;
  const WordCacheStats stats = tiny.word_cache_stats();
  EXPECT_GT(stats.uncached, 0u);
  EXPECT_GT(stats.words, 0u);
  EXPECT_LT(stats.words, 400u);  // 8 KiB: the slots and entries of fewer words than that
}

TEST(Tokenizer, ModelDefaultsToTheOneInModelPretrained) {
  test::TempDir dir;
  dir.write("sentencepiece.bpe.model",
            test::read_file(test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model"));
  Config c = load_config("", {"model.pretrained=" + dir.path()});
  EXPECT_EQ(tokenizer_options(c).model_path, dir.path("sentencepiece.bpe.model"));
  c = load_config("", {"model.pretrained=" + dir.path(), "tokenizer.model=/x/spm.model"});
  EXPECT_EQ(tokenizer_options(c).model_path, "/x/spm.model");  // a set key wins

  test::TempDir empty;
  for (const auto& overrides :
       std::vector<std::vector<std::string>>{{"model.pretrained=" + empty.path()}, {}}) {
    try {
      tokenizer_options(load_config("", overrides));
      ADD_FAILURE() << "expected an error";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.model: not set"), std::string::npos)
          << e.what();
    }
  }
}

// A model without <s> and </s> put ordinary pieces on XLM-R's special ids (a comma became
// </s>); it is refused when loaded, naming what it has.
TEST(Tokenizer, AModelWithoutXlmrsSpecialPiecesIsRefused) {
  test::TempDir dir;
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "hola, amigo " + std::to_string(i) + ". ciao mondo\n";
  const std::string input = dir.write("in.txt", lines);
  const std::string command = "spm_train --input=" + input +
                              " --model_prefix=" + dir.path("nobos") +
                              " --vocab_size=40 --hard_vocab_limit=false --bos_id=-1 --eos_id=-1 "
                              "--unk_id=0 --minloglevel=2 >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const std::string error = test::error_of([&] {
    XlmrTokenizer tok({dir.path("nobos.model"), 16, Pretokenize::kNone, true});
  });
  EXPECT_NE(error.find("has <unk>, <s>, </s> at 0, -1, -1 (-1: none), expected 0, 1, 2"),
            std::string::npos)
      << error;
}

TEST(Tokenizer, MissingModelIsAUserError) {
  const std::string error = test::error_of([] {
    XlmrTokenizer tok({"/nonexistent/spm.model", 128, Pretokenize::kNone, true});
  });
  EXPECT_NE(error.find("tokenizer.model"), std::string::npos) << error;
}

}  // namespace
}  // namespace sx::data

// The tokenizer against ../shared/fixtures/tokenizer/tokenizer_ref.json (HF's tokenizer and
// the notebook's tokenize_all): every case must match exactly.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/text.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace sx::data {
namespace {

using nlohmann::json;

json reference() {
  return json::parse(test::read_file(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json"));
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

TEST(Tokenizer, MissingModelIsAUserError) {
  try {
    XlmrTokenizer tok({"/nonexistent/spm.model", 128, Pretokenize::kNone, true});
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace sx::data

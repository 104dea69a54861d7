// Torch-free model pieces: the Triangular2 schedule, config.json, the safetensors parser.
#include <nlohmann/json.hpp>

#include <cstring>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/schedule.h"
#include "model/xlmr_config.h"
#include "test_util.h"

namespace sx::model {
namespace {

TEST(Triangular2, MatchesTensorFlowAddonsToRelative1e12) {
  auto ref = nlohmann::json::parse(test::read_file(test::fixtures_dir() + "/triangular2_ref.json"));
  Triangular2 schedule{ref["initial"].get<double>(), ref["maximal"].get<double>(),
                       ref["step_size"].get<double>()};
  const auto& lr = ref["lr"];
  ASSERT_EQ(lr.size(), 400u);
  for (size_t s = 0; s < lr.size(); ++s) {
    double want = lr[s].get<double>();
    EXPECT_NEAR(schedule(static_cast<int64_t>(s)), want, 1e-12 * std::abs(want)) << "step " << s;
  }
}

TEST(Triangular2, HalvesTheAmplitudeEachCycle) {
  Triangular2 s{1e-6, 5e-5, 30};
  EXPECT_DOUBLE_EQ(s(0), 1e-6);
  EXPECT_NEAR(s(30), 5e-5, 1e-18);
  EXPECT_NEAR(s(90) - 1e-6, (5e-5 - 1e-6) / 2, 1e-18);
  EXPECT_NEAR(s(150) - 1e-6, (5e-5 - 1e-6) / 4, 1e-18);
}

TEST(XlmrConfig, ReadsTheFixtureConfig) {
  XlmrConfig c = read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.max_position_embeddings, 130);
  EXPECT_EQ(c.vocab_size, 4002);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.hidden_dropout_prob, 0.0);
}

TEST(XlmrConfig, ErrorsNameFileAndKey) {
  test::TempDir dir;
  auto expect = [&](const std::string& json, const std::string& fragment) {
    auto path = dir.write("config.json", json);
    try {
      read_xlmr_config(path);
      ADD_FAILURE() << json;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect("{", "not valid JSON");
  expect(R"({"vocab_size": 10})", "missing key 'hidden_size'");
  expect(
      R"({"vocab_size":10,"hidden_size":30,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"max_position_embeddings":20})",
      "not a multiple of num_attention_heads");
  expect(
      R"({"vocab_size":10,"hidden_size":"big","num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"max_position_embeddings":20})",
      "'hidden_size' expects an integer");
  expect(
      R"({"vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"max_position_embeddings":20,"hidden_act":"relu"})",
      "hidden_act");
}

std::string image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

void expect_rejected(const std::string& bytes, const std::string& fragment) {
  uint64_t start = 0;
  try {
    parse_safetensors_header(bytes, bytes.size(), "f.safetensors", start);
    ADD_FAILURE() << "accepted: " << fragment;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ParsesAValidHeader) {
  std::string bytes = image(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})",
      std::string(12, '\0'));
  uint64_t start = 0;
  auto t = parse_safetensors_header(bytes, bytes.size(), "f", start);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t.at("a").dtype, StDtype::kBF16);
  EXPECT_EQ(t.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(start, bytes.size() - 12);
}

TEST(Safetensors, RejectsCorruptOrHostileFiles) {
  expect_rejected("abc", "shorter than the 8-byte header length");
  std::string huge(8, '\xff');
  expect_rejected(huge + "{}", "exceeds 100 MiB");
  std::string long_len(8, '\0');
  long_len[0] = 100;
  expect_rejected(long_len + "{}", "exceeds the file size");
  expect_rejected(image("{not json", ""), "header is not JSON");
  expect_rejected(image("[]", ""), "not a JSON object");
  expect_rejected(image(R"({"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", "x"),
                  "no known dtype");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx"),
                  "negative or non-integer");
  expect_rejected(
      image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", std::string(8, '\0')),
      "outside the data section");
  expect_rejected(
      image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
      "need 12");
  expect_rejected(
      image(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,0]}})", ""),
      "too large");
  expect_rejected(
      image(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          std::string(8, '\0')),
      "overlap");
  expect_rejected(
      image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", std::string(8, '\0')),
      "outside the data section");
}

TEST(Safetensors, TruncatedFileIsRejectedOnOpen) {
  test::TempDir dir;
  std::string full = test::read_file(test::fixtures_dir() + "/hf-tiny-xlmr/model.safetensors");
  auto path = dir.write("cut.safetensors", full.substr(0, full.size() / 2));
  try {
    SafetensorsFile f(path);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("outside the data section"), std::string::npos)
        << e.what();
  }
}

TEST(FuzzCorpus, SafetensorsInputsNeverReadOutOfBounds) {
  size_t n = 0;
  const std::string dir = std::string(SX_TEST_DATA_DIR) + "/../fuzz/corpus/safetensors";
  for (const auto& name : files::list(dir)) {
    std::string bytes = test::read_file(files::join(dir, name));
    uint64_t start = 0;
    try {
      auto t = parse_safetensors_header(bytes, bytes.size(), "corpus", start);
      for (const auto& [name, info] : t) EXPECT_LE(start + info.end, bytes.size());
    } catch (const UserError&) {
    }
    ++n;
  }
  EXPECT_GE(n, 5u);
}

}  // namespace
}  // namespace sx::model

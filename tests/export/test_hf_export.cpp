// export-hf: the directory reads back, by our safetensors reader and by `embed` with
// model.pretrained=DIR, as the checkpoint it came from; its JSON files name the right classes.
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "core/checksum.h"
#include "core/files.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "model/xlmr_config.h"
#include "train/checkpoint.h"

namespace sx {
namespace {

const std::string kTokenizer = "/tokenizer/sentencepiece.bpe.model";

// A checkpoint of the fixture model with every parameter moved, the pooling LayerNorm too.
std::string write_trained_checkpoint(const test::TempDir& dir) {
  model::XlmrConfig config =
      model::read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
  model::SiameseEncoder encoder(config, 1e-3);
  model::load_state(*encoder, model::read_hf_weights(test::fixtures_dir() + "/hf-tiny-xlmr"),
                    "fixture");
  torch::manual_seed(3);
  train::Checkpoint c;
  for (auto& [name, t] : model::named_parameters(*encoder))
    c.params[name] = (t.detach() + 0.05 * torch::randn(t.sizes())).contiguous();
  const std::string path = dir.path("best.h5");
  train::write_checkpoint(path, c);
  return path;
}

std::vector<std::vector<double>> parse_rows(const std::string& out) {
  std::vector<std::vector<double>> rows;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream values(line);
    rows.emplace_back();
    for (double v; values >> v;) rows.back().push_back(v);
  }
  return rows;
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(test::read_file(path));
}

TEST(ExportHf, RoundTripGivesTheCheckpointsWeightsAndEmbeddings) {
  test::TempDir dir;
  const std::string checkpoint = write_trained_checkpoint(dir);
  const std::string fixture = test::fixtures_dir() + "/hf-tiny-xlmr";
  const std::string out = dir.path("hf");
  auto r = test::run_cli(
      "export-hf model.pretrained=" + fixture + " tokenizer.model=" + test::fixtures_dir() +
      kTokenizer + " run.dir=" + dir.path("run") + " --checkpoint " + checkpoint + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Our reader: the same tensors under HF names, the pooling LayerNorm in its module folder.
  auto params = train::read_checkpoint(checkpoint, false).params;
  auto encoder = model::read_safetensors(out + "/model.safetensors");
  auto norm = model::read_safetensors(out + "/2_LayerNorm/model.safetensors");
  EXPECT_EQ(encoder.size() + 2, params.size());
  for (const auto& [name, t] : params) {
    if (name.rfind("pool_ln.", 0) == 0) {
      EXPECT_TRUE(torch::equal(norm.at("norm." + name.substr(8)), t)) << name;
    } else {
      ASSERT_TRUE(encoder.count(name)) << name;
      EXPECT_TRUE(torch::equal(encoder.at(name), t)) << name;
    }
  }

  // embed with model.pretrained=DIR (its own tokenizer file) equals embed of the checkpoint.
  std::string input = "You are a wonderful person\nThis is a stupid idea!!\nhola amigo\n";
  auto from_dir = test::run_cli(
      "embed model.pretrained=" + out + " tokenizer.model=" + out + "/sentencepiece.bpe.model",
      input);
  auto from_checkpoint = test::run_cli("embed model.pretrained=" + fixture +
                                           " tokenizer.model=" + test::fixtures_dir() + kTokenizer +
                                           " --checkpoint " + checkpoint,
                                       input);
  ASSERT_EQ(from_dir.exit_code, 0) << from_dir.err;
  ASSERT_EQ(from_checkpoint.exit_code, 0) << from_checkpoint.err;
  auto a = parse_rows(from_dir.out), b = parse_rows(from_checkpoint.out);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), 32u);
    for (size_t j = 0; j < a[i].size(); ++j) EXPECT_NEAR(a[i][j], b[i][j], 1e-6) << i << "," << j;
  }

  // The JSON files parse and name the classes HF and sentence-transformers load.
  auto config = read_json(out + "/config.json");
  EXPECT_EQ(config["model_type"], "xlm-roberta");
  EXPECT_EQ(config["architectures"][0], "XLMRobertaModel");
  EXPECT_EQ(config["hidden_size"], 32);
  EXPECT_EQ(config["max_position_embeddings"], 130);
  EXPECT_EQ(read_json(out + "/tokenizer_config.json")["tokenizer_class"], "XLMRobertaTokenizer");
  EXPECT_EQ(read_json(out + "/special_tokens_map.json")["pad_token"], "<pad>");
  auto modules = read_json(out + "/modules.json");
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[0]["type"], "sentence_transformers.models.Transformer");
  EXPECT_EQ(modules[1]["type"], "sentence_transformers.models.Pooling");
  EXPECT_EQ(modules[1]["path"], "1_Pooling");
  EXPECT_EQ(modules[2]["type"], "sentence_transformers.models.LayerNorm");
  EXPECT_EQ(read_json(out + "/1_Pooling/config.json")["pooling_mode_mean_tokens"], true);
  EXPECT_EQ(read_json(out + "/2_LayerNorm/config.json")["dimension"], 32);
  EXPECT_EQ(read_json(out + "/sentence_bert_config.json")["max_seq_length"], 128);
  const std::string card = test::read_file(out + "/README.md");
  EXPECT_NE(card.find("st[2].norm.eps = 0.001"), std::string::npos);
  // The read-back line pools as the training did (another model.pool_ln_eps than the default
  // gave other embeddings from it).
  EXPECT_NE(card.find(" model.pool_ln_eps=0.001` reads this directory back"), std::string::npos)
      << card;
  EXPECT_NE(card.find("wordpunct_tokenize"), std::string::npos);
}

TEST(ExportHf, Bf16WeightsAndARefusedOverwrite) {
  test::TempDir dir;
  const std::string checkpoint = write_trained_checkpoint(dir);
  const std::string base = "export-hf model.pretrained=" + test::fixtures_dir() +
                           "/hf-tiny-xlmr tokenizer.model=" + test::fixtures_dir() + kTokenizer +
                           " run.dir=" + dir.path("run") + " --checkpoint " + checkpoint +
                           " --out " + dir.path("hf");
  auto r = test::run_cli(base + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  model::SafetensorsFile file(dir.path("hf") + "/model.safetensors");
  const auto& info = file.tensors().at("embeddings.word_embeddings.weight");
  EXPECT_EQ(info.dtype, model::StDtype::kBF16);
  auto params = train::read_checkpoint(checkpoint, false).params;
  auto back = model::read_safetensors(dir.path("hf") + "/model.safetensors");
  const torch::Tensor& want = params.at("embeddings.word_embeddings.weight");
  EXPECT_TRUE(torch::equal(back.at("embeddings.word_embeddings.weight"),
                           want.to(torch::kBFloat16).to(torch::kFloat)));

  auto again = test::run_cli(base);
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("exists and is not empty"), std::string::npos) << again.err;
  EXPECT_EQ(test::run_cli(base + " --force").exit_code, 0);

  // A file HF would load with the export's (a fast tokenizer is taken before the sentencepiece
  // model; another tokenizer's gave other ids, silently) makes --force refuse, naming it.
  test::write_file(dir.path("hf/tokenizer.json"), "{}");
  test::write_file(dir.path("hf/notes.txt"), "mine");
  auto stale = test::run_cli(base + " --force");
  EXPECT_EQ(stale.exit_code, 2);
  EXPECT_NE(stale.err.find("export-hf: " + dir.path("hf") +
                           " holds tokenizer.json, which export-hf does not write"),
            std::string::npos)
      << stale.err;
  EXPECT_NE(stale.err.find("remove it or choose another --out"), std::string::npos) << stale.err;
  files::remove_all(dir.path("hf/tokenizer.json"));
  EXPECT_EQ(test::run_cli(base + " --force").exit_code, 0);  // notes.txt is left alone
  EXPECT_EQ(test::read_file(dir.path("hf/notes.txt")), "mine");
}

// The model card shows run.dir/evaluation.json's table only when that evaluation scored the
// features of the weights exported ("after"."model", however the path is spelled): an
// evaluation of features_before.h5 or of another checkpoint is left out, saying so.
TEST(ExportHf, TheModelCardsTableIsTheEvaluationOfTheseWeightsOnly) {
  test::TempDir dir;
  const std::string checkpoint = write_trained_checkpoint(dir);
  files::create_directories(dir.path("run"));
  const auto card_with = [&](const std::string& model, const std::string& xxh3 = "",
                             const nlohmann::json& embedding = nullptr) {
    nlohmann::json fold{{"language", "es"},    {"train_rows", 8},
                        {"test_rows", 4},      {"test_toxic", 2},
                        {"skipped", false},    {"auc_logistic_regression", 0.8125},
                        {"auc_centroid", 0.75}};
    nlohmann::json after{{"features", "f.h5"}, {"folds", {fold}}};
    if (!model.empty()) after["model"] = model;
    if (!xxh3.empty()) after["model_xxh3"] = xxh3;
    if (!embedding.is_null()) after["embedding"] = embedding;
    test::write_file(dir.path("run/evaluation.json"), nlohmann::json{{"after", after}}.dump());
    const std::string out = dir.path("hf");
    auto r = test::run_cli("export-hf model.pretrained=" + test::fixtures_dir() +
                           "/hf-tiny-xlmr tokenizer.model=" + test::fixtures_dir() + kTokenizer +
                           " run.dir=" + dir.path("run") + " --checkpoint " + checkpoint +
                           " --out " + out + " --force");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return test::read_file(out + "/README.md");
  };
  const std::string table = "| es | 0.8125 | 0.7500 | - |";
  EXPECT_NE(card_with("weights of " + checkpoint).find(table), std::string::npos);
  EXPECT_NE(card_with("weights of " + dir.path("run/../best.h5")).find(table), std::string::npos);
  for (const std::string& other : {"weights of " + dir.path("run/checkpoints/best.h5"),
                                   test::fixtures_dir() + "/hf-tiny-xlmr (39 tensors)"}) {
    const std::string card = card_with(other);
    EXPECT_EQ(card.find(table), std::string::npos) << other;
    EXPECT_NE(card.find("scored the features of " + other + ", not these weights"),
              std::string::npos)
        << card;
  }
  // The file's content is the one scored, wherever it was then (a run directory moved), or
  // the file has changed since (a continued run).
  EXPECT_NE(card_with("weights of " + checkpoint, file_checksum(checkpoint)).find(table),
            std::string::npos);
  EXPECT_NE(
      card_with("weights of /moved/run/checkpoints/best.h5", file_checksum(checkpoint)).find(table),
      std::string::npos);
  const std::string changed = card_with("weights of " + checkpoint, std::string(32, '0'));
  EXPECT_EQ(changed.find(table), std::string::npos);
  EXPECT_NE(changed.find("scored the features of " + checkpoint + " as it was then (XXH3 " +
                         std::string(32, '0') + "), and the file has changed since"),
            std::string::npos)
      << changed;
  const std::string unnamed = card_with("");
  EXPECT_EQ(unnamed.find(table), std::string::npos);
  EXPECT_NE(unnamed.find("does not say which weights it scored"), std::string::npos) << unnamed;
  // These weights, but features exported with another tokenizer.max_len: another model's scores
  // (they were published as this directory's). The directory's own settings keep the table.
  const std::string max_len = test::run_cli("config --get tokenizer.max_len").out;
  const std::string eps = test::run_cli("config --get model.pool_ln_eps").out;
  const std::string shorter =
      card_with("weights of " + checkpoint, "", {{"tokenizer.max_len", 16}});
  EXPECT_EQ(shorter.find(table), std::string::npos);
  EXPECT_NE(shorter.find("embedded with other settings than this directory's "
                         "(tokenizer.max_len 16, not " +
                         max_len.substr(0, max_len.find('\n')) + ")"),
            std::string::npos)
      << shorter;
  EXPECT_NE(
      card_with("weights of " + checkpoint, "",
                {{"tokenizer.max_len", std::stoll(max_len)}, {"model.pool_ln_eps", std::stod(eps)}})
          .find(table),
      std::string::npos);
}

// Issue #25: on a full disk export-hf left a directory holding config.json alone.
TEST(ExportHf, AFailedWriteLeavesNoPartOfTheDirectoryAndSaysWhy) {
  test::TempDir dir;
  const std::string checkpoint = write_trained_checkpoint(dir);
  const std::string out = dir.path("hf");
  // Room for config.json, not for model.safetensors.
  auto r = test::run_cli_with_file_limit(
      "export-hf model.pretrained=" + test::fixtures_dir() +
          "/hf-tiny-xlmr tokenizer.model=" + test::fixtures_dir() + kTokenizer +
          " run.dir=" + dir.path("run") + " --checkpoint " + checkpoint + " --out " + out,
      4096);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("export-hf: cannot write " + out + "/model.safetensors.tmp."),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(": File too large"), std::string::npos) << r.err;
  EXPECT_FALSE(files::exists(out)) << files::list(out).size() << " files left";
}

}  // namespace
}  // namespace sx

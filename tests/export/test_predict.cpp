// predict and embed on a tiny run: a checkpoint of the fixture model with every parameter
// moved, its features exported, the final classifier fitted (classifier.json, submission.csv).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <sstream>

#include "core/checksum.h"
#include "core/run_dir_lock.h"
#include "data/jigsaw.h"
#include "evaluate/evaluate.h"
#include "fixtures.h"
#include "io/hdf5.h"
#include "io/npy.h"
#include "model/weights.h"
#include "model/xlmr_config.h"
#include "train/checkpoint.h"

namespace sx {
namespace {

// The run every test reads: best.h5, features.h5, classifier.json and submission.csv.
class Predict : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new test::InferenceData();
    model::XlmrConfig config =
        model::read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
    model::SiameseEncoder encoder(config, 1e-3);
    model::load_state(*encoder, model::read_hf_weights(test::fixtures_dir() + "/hf-tiny-xlmr"),
                      "fixture");
    torch::manual_seed(5);
    train::Checkpoint c;
    for (auto& [name, t] : model::named_parameters(*encoder))
      c.params[name] = (t.detach() + 0.05 * torch::randn(t.sizes())).contiguous();
    files::create_directories(train::checkpoint_dir(data_->run));
    train::write_checkpoint(train::best_checkpoint_path(data_->run), c);
    auto exported = test::run_cli("export --config " + data_->config);
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    auto predicted = test::run_cli("predict --config " + data_->config);
    ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
  }
  static void TearDownTestSuite() { delete data_; }

  static std::string run_file(const std::string& name) { return files::join(data_->run, name); }
  static std::string cli(const std::string& command) {
    return command + " --config " + data_->config;
  }

  // submission.csv as (id, probability) rows.
  static std::vector<std::pair<int64_t, double>> submission() {
    std::istringstream in(test::read_file(run_file("submission.csv")));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "id,toxic");
    std::vector<std::pair<int64_t, double>> rows;
    while (std::getline(in, line)) {
      const auto comma = line.find(',');
      rows.emplace_back(std::stoll(line.substr(0, comma)), std::stod(line.substr(comma + 1)));
    }
    return rows;
  }

  static data::TestCorpus test_set() {
    return data::load_test_csv(data_->test_csv, {}, data::LoadOptions{});
  }
  // The first `n` test rows whose text is one line (stdin takes one text a line).
  static std::vector<size_t> one_line_rows(const data::TestCorpus& test, size_t n) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < test.size() && rows.size() < n; ++i)
      if (test.texts[i].find_first_of("\r\n") == std::string_view::npos) rows.push_back(i);
    EXPECT_EQ(rows.size(), n);
    return rows;
  }

  static test::InferenceData* data_;
};
test::InferenceData* Predict::data_ = nullptr;

TEST_F(Predict, SubmissionHasOneProbabilityPerTestIdInTheFilesOrder) {
  const auto rows = submission();
  const data::TestCorpus test = test_set();
  ASSERT_EQ(rows.size(), test.size());
  ASSERT_GT(rows.size(), 50u);
  double low = 1, high = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].first, test.ids[i]) << i;
    EXPECT_GE(rows[i].second, 0.0);
    EXPECT_LE(rows[i].second, 1.0);
    low = std::min(low, rows[i].second), high = std::max(high, rows[i].second);
  }
  EXPECT_LT(low, high);  // not one constant
}

TEST_F(Predict, ClassifierReproducesEvaluatesFitOnEveryLabeledRow) {
  auto j = nlohmann::json::parse(test::read_file(run_file("classifier.json")));
  EXPECT_EQ(j["format"], "siamese-xlmr classifier 1");
  const auto w = j["weights"].get<std::vector<double>>();
  const double b = j["bias"].get<double>();
  ASSERT_EQ(w.size(), 32u);
  EXPECT_EQ(j["fitted_on"]["features"], run_file("features.h5"));
  EXPECT_EQ(j["fitted_on"]["features_bytes"], files::size(run_file("features.h5")));
  EXPECT_EQ(j["fitted_on"]["features_xxh3"].get<std::string>().size(), 32u);

  // evaluate's logistic regression (same settings) fitted on every labeled row and scored on
  // them: classifier.json's weights on the raw embeddings give the same decision values.
  io::H5File f = io::H5File::open(run_file("features.h5"));
  const auto x = f.read_float("train/embeddings");
  const auto labels64 = f.read_int64("train/labels");
  const std::vector<int> labels(labels64.begin(), labels64.end());
  EXPECT_EQ(j["fitted_on"]["rows"], labels.size());
  const auto want = evaluate::logistic_scores(x, labels, x, 32);
  for (size_t i = 0; i < labels.size(); ++i) {
    double z = b;
    for (size_t k = 0; k < 32; ++k) z += w[k] * x[i * 32 + k];
    // Folding the standardisation into the weights reorders the sums: rounding only.
    EXPECT_NEAR(z, want[i], 1e-9 * (1 + std::abs(want[i]))) << i;
  }

  // The submission is that classifier on the test embeddings.
  const auto test_x = f.read_float("test/embeddings");
  const auto rows = submission();
  for (size_t i = 0; i < rows.size(); ++i) {
    double z = b;
    for (size_t k = 0; k < 32; ++k) z += w[k] * test_x[i * 32 + k];
    EXPECT_NEAR(rows[i].second, 1 / (1 + std::exp(-z)), 1e-8) << i;
  }
}

TEST_F(Predict, TextsFromStdinGetTheirSubmissionProbability) {
  const data::TestCorpus test = test_set();
  const auto chosen = one_line_rows(test, 6);
  std::string input;
  for (size_t i : chosen) input += std::string(test.texts[i]) + "\n";
  auto r = test::run_cli(cli("predict --texts -"), input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("weights: checkpoint " + run_file("checkpoints/best.h5")), std::string::npos)
      << r.err;
  std::istringstream out(r.out);
  const auto rows = submission();
  double p;
  size_t n = 0;
  for (; out >> p; ++n) {
    ASSERT_LT(n, 6u);
    // Embeddings agree within 1e-6 (EmbedCsv...); through the classifier's weights that is
    // well under 1e-6 in probability here.
    EXPECT_NEAR(p, rows[chosen[n]].second, 1e-6) << n;
  }
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(r.err.find("the classifier was fitted on features of"), std::string::npos) << r.err;
}

// Texts embedded with other weights than the classifier's features gave other probabilities
// than the submission's, silently; a submission ignored --checkpoint and the like.
TEST_F(Predict, OtherWeightsThanTheFeaturesAreSaid) {
  auto texts = test::run_cli(cli("predict --texts - --pretrained"), "hello\n");
  ASSERT_EQ(texts.exit_code, 0) << texts.err;
  EXPECT_NE(texts.err.find("the classifier was fitted on features of weights of " +
                           run_file("checkpoints/best.h5")),
            std::string::npos)
      << texts.err;
  auto dash = test::run_cli(cli("predict --force --out -"));
  EXPECT_EQ(dash.exit_code, 2);
  EXPECT_NE(dash.err.find("--out -: predict writes the submission as a file"), std::string::npos)
      << dash.err;
  for (const char* flag : {"--pretrained", "--allow-random", "--checkpoint x.h5"}) {
    auto r = test::run_cli(cli(std::string("predict --force ") + flag));
    EXPECT_EQ(r.exit_code, 2) << flag;
    EXPECT_NE(r.err.find(" chooses the weights predict --texts embeds with"), std::string::npos)
        << flag << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << flag << r.err;
  }
}

// The weights' content decides: a copy of the exported checkpoint elsewhere (a run directory
// moved) embeds as the features did, and a checkpoint rewritten since the export (a run
// continued) is said to have changed.
TEST_F(Predict, ACheckpointChangedSinceTheFeaturesIsSaid) {
  test::TempDir dir;
  const std::string weights = dir.path("weights.h5"), moved = dir.path("moved.h5");
  test::write_file(weights, test::read_file(run_file("checkpoints/best.h5")));
  test::write_file(moved, test::read_file(weights));
  auto exported = test::run_cli(cli("export --checkpoint " + weights) +
                                " run.dir=" + dir.path("run") + " run.log_level=warn");
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const auto texts = [&](const std::string& checkpoint) {
    return cli("predict --texts - --features " + dir.path("run/features.h5") + " --checkpoint " +
               checkpoint);
  };
  auto same = test::run_cli(texts(moved), "hello\n");
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.err.find("the classifier was fitted on"), std::string::npos) << same.err;
  train::Checkpoint other = train::read_checkpoint(weights, false);  // other weights
  for (auto& [name, tensor] : other.params) tensor.mul_(0.5);
  train::write_checkpoint(weights, other);
  ASSERT_NE(file_checksum(weights), file_checksum(moved));
  // A submission from the features of the checkpoint as it was: said, not refused.
  auto submission = test::run_cli(
      cli("predict --features " + dir.path("run/features.h5") + " --out " + dir.path("s.csv")) +
      " run.dir=" + dir.path("run"));
  ASSERT_EQ(submission.exit_code, 0) << submission.err;
  EXPECT_NE(submission.err.find("holds the embeddings of " + weights +
                                " as it was when they were exported (XXH3 " + file_checksum(moved) +
                                "); it has changed since"),
            std::string::npos)
      << submission.err;
  auto changed = test::run_cli(texts(weights), "hello\n");
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_NE(changed.err.find("embedded with checkpoint " + weights +
                             ", which has changed since the export (XXH3 " + file_checksum(moved) +
                             " then, " + file_checksum(weights) + " now"),
            std::string::npos)
      << changed.err;
}

// Settings that make embeddings other than the training's: export-hf would describe another
// model than the trained one (refused); export and embed say so. (A run directory as training
// leaves it: the checkpoint's configuration hash, config.resolved.yaml.)
TEST_F(Predict, EmbeddingSettingsOtherThanTheTrainingsAreSaid) {
  test::TempDir dir;
  const std::string run = dir.path("trained"), best = train::best_checkpoint_path(run);
  train::Checkpoint trained = train::read_checkpoint(run_file("checkpoints/best.h5"), false);
  trained.state.config_hash = config_result_hash(load_config(data_->config, {}));
  files::create_directories(train::checkpoint_dir(run));
  train::write_checkpoint(best, trained);
  test::write_file(run + "/config.resolved.yaml", test::read_file(data_->config));
  const std::string at = " run.dir=" + run,
                    other = at + " tokenizer.max_len=16 model.pool_ln_eps=0.5";
  const std::string said = "the settings that make embeddings differ from the training of " + best +
                           " (tokenizer.max_len: 32 then, 16 now; model.pool_ln_eps: ";
  auto hf = test::run_cli(cli("export-hf --out " + dir.path("hf")) + other);
  EXPECT_EQ(hf.exit_code, 2) << hf.err;
  EXPECT_NE(hf.err.find("export-hf: " + said), std::string::npos) << hf.err;
  EXPECT_EQ(test::count_lines(hf.err), 1u) << hf.err;
  EXPECT_FALSE(files::exists(dir.path("hf")));
  auto features = test::run_cli(cli("export") + other);
  EXPECT_EQ(features.exit_code, 0) << features.err;
  EXPECT_NE(features.err.find("export: " + said), std::string::npos) << features.err;
  auto embed = test::run_cli(cli("embed") + other, "hello\n");
  EXPECT_EQ(embed.exit_code, 0) << embed.err;
  EXPECT_NE(embed.err.find(said), std::string::npos) << embed.err;
  auto same = test::run_cli(cli("export-hf --out " + dir.path("same")) + at);
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.err.find("the settings that make embeddings differ"), std::string::npos)
      << same.err;

  // The tokenizer by its content (a helper's other sentencepiece model went unsaid): the
  // checkpoint records the training's file; a copy of that file elsewhere is the same one.
  const std::string tokenizer = test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model";
  trained.state.inputs =
      "tokenizer.model=" + file_identity(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json");
  train::write_checkpoint(best, trained);
  const std::string other_file =
      "tokenizer.model differs: " +
      std::to_string(files::size(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json")) +
      " bytes";
  auto hf_other = test::run_cli(cli("export-hf --out " + dir.path("hf-other")) + at);
  EXPECT_EQ(hf_other.exit_code, 2) << hf_other.err;
  EXPECT_NE(hf_other.err.find(other_file), std::string::npos) << hf_other.err;
  EXPECT_EQ(test::count_lines(hf_other.err), 1u) << hf_other.err;
  for (const std::string& command : {cli("embed") + at, cli("export --force") + at}) {
    auto warned = test::run_cli(command, "hello\n");
    EXPECT_EQ(warned.exit_code, 0) << command << "\n" << warned.err;
    EXPECT_NE(warned.err.find(other_file), std::string::npos) << command << "\n" << warned.err;
  }
  trained.state.inputs = "tokenizer.model=" + file_identity(tokenizer) + "\n";
  train::write_checkpoint(best, trained);
  files::create_directories(dir.path("copy"));
  const std::string copy = dir.write("copy/sentencepiece.bpe.model", test::read_file(tokenizer));
  auto copied =
      test::run_cli(cli("export-hf --out " + dir.path("copied")) + at + " tokenizer.model=" + copy);
  EXPECT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(copied.err.find("differ"), std::string::npos) << copied.err;
}

// Features exported again on other data beside the run's features_before.h5: `evaluate
// features.h5` was refused ("evaluate each file alone") with no way to do so but moving a file.
TEST_F(Predict, EvaluateLeavesOutAFeaturesBeforeOfAnotherLabeledSetSayingSo) {
  test::TempDir dir;
  const std::string run = dir.path("run"), features = run + "/features.h5";
  auto other = test::run_cli("data synth --out " + dir.path("other") + " --rows 2000 --seed 4");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  auto exported = test::run_cli(cli("export --checkpoint " + run_file("checkpoints/best.h5")) +
                                " run.dir=" + run +
                                " data.multilingual_csv=" + dir.path("other/validation.csv"));
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  test::write_file(run + "/features_before.h5", test::read_file(run_file("features.h5")));
  auto alone = test::run_cli("evaluate " + features);
  EXPECT_EQ(alone.exit_code, 0) << alone.err;
  EXPECT_NE(alone.err.find("hold the features of different labeled sets"), std::string::npos)
      << alone.err;
  EXPECT_NE(alone.err.find(features + " is evaluated alone (--no-before leaves"), std::string::npos)
      << alone.err;
  EXPECT_EQ(alone.out.find("before:"), std::string::npos) << alone.out;
  auto refused = test::run_cli("evaluate " + features + " --before " + run + "/features_before.h5");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("evaluate each file alone (--no-before)"), std::string::npos)
      << refused.err;
  auto quiet = test::run_cli("evaluate " + features + " --no-before");
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  EXPECT_EQ(quiet.out, alone.out);
  auto both = test::run_cli("evaluate " + features + " --no-before --before " + features);
  EXPECT_EQ(both.exit_code, 2) << both.err;
}

TEST_F(Predict, RefusesToOverwriteItsOutputsWithoutForce) {
  const std::string before = test::read_file(run_file("submission.csv"));
  auto again = test::run_cli(cli("predict"));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("exists; pass --force"), std::string::npos) << again.err;
  EXPECT_EQ(test::count_lines(again.err), 1u) << again.err;
  auto forced = test::run_cli(cli("predict --force"));
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(test::read_file(run_file("submission.csv")), before);  // deterministic
}

TEST_F(Predict, EmbedCsvToNpyAndHdf5EqualsTheExportedFeatures) {
  test::TempDir dir;
  const std::string csv = " --csv " + data_->test_csv + " --text-column content";
  auto npy = test::run_cli(cli("embed" + csv + " --out " + dir.path("e.npy")));
  ASSERT_EQ(npy.exit_code, 0) << npy.err;
  EXPECT_TRUE(npy.out.empty());
  EXPECT_NE(npy.err.find("weights: checkpoint " + run_file("checkpoints/best.h5")),
            std::string::npos)
      << npy.err;
  auto h5 = test::run_cli(cli("embed" + csv + " --id-column id --out " + dir.path("e.h5")));
  ASSERT_EQ(h5.exit_code, 0) << h5.err;

  io::H5File features = io::H5File::open(run_file("features.h5"));
  const auto want = features.read_float("test/embeddings");
  const auto ids = features.read_int64("test/ids");
  io::NpyMatrix m = io::read_npy(dir.path("e.npy"));
  EXPECT_EQ(m.rows, ids.size());
  EXPECT_EQ(m.cols, 32u);
  EXPECT_LT(test::max_abs_diff(m.values, want), 1e-6);

  io::H5File e = io::H5File::open(dir.path("e.h5"));
  EXPECT_EQ(e.attr_string("format"), "siamese-xlmr embeddings 1");
  EXPECT_EQ(e.attr_string("model"), "checkpoint " + run_file("checkpoints/best.h5"));
  EXPECT_EQ(e.read_float("embeddings"), m.values);
  const auto text_ids = e.read_strings("ids");
  ASSERT_EQ(text_ids.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(text_ids[i], std::to_string(ids[i]));
  EXPECT_EQ(e.read_int64("rows"), features.read_int64("test/rows"));

  // An existing --out is kept unless --force.
  auto again = test::run_cli(cli("embed" + csv + " --out " + dir.path("e.npy")));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("exists; pass --force"), std::string::npos) << again.err;
}

TEST_F(Predict, EmbedRefusesARandomInitialisationUnlessAllowed) {
  test::TempDir dir;
  const std::string model_config = dir.write(
      "config.json",
      R"({"vocab_size": 4002, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 70, "type_vocab_size": 1, "pad_token_id": 1,
    "layer_norm_eps": 1e-5, "hidden_act": "gelu"})");
  const std::string random = cli("embed") + " model.pretrained= model.config=" + model_config +
                             " run.dir=" + dir.path("empty-run");
  auto refused = test::run_cli(random, "hello\nworld\n");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--allow-random"), std::string::npos) << refused.err;
  EXPECT_EQ(test::count_lines(refused.err), 1u) << refused.err;
  EXPECT_TRUE(refused.out.empty());

  auto allowed = test::run_cli(random + " --allow-random", "hello\nworld\n");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_EQ(test::count_lines(allowed.out), 2u);
  EXPECT_NE(allowed.err.find("weights: random initialisation"), std::string::npos) << allowed.err;
}

TEST_F(Predict, EmbedWithoutOutPrintsTextAsBefore) {
  // stdin in, text floats out: the same numbers as the .npy rows of the same texts.
  const data::TestCorpus test = test_set();
  const auto chosen = one_line_rows(test, 3);
  std::string input;
  for (size_t i : chosen) input += std::string(test.texts[i]) + "\n";
  auto r = test::run_cli(cli("embed"), input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  io::H5File features = io::H5File::open(run_file("features.h5"));
  const auto want = features.read_float("test/embeddings");
  std::istringstream out(r.out);
  std::vector<float> got;
  for (float v; out >> v;) got.push_back(v);
  ASSERT_EQ(got.size(), 3u * 32);
  std::vector<float> rows;
  for (size_t i : chosen)
    rows.insert(rows.end(), want.begin() + i * 32, want.begin() + (i + 1) * 32);
  EXPECT_LT(test::max_abs_diff(got, rows), 1e-6);
}

// Texts are embedded as the features' rows were, or their probabilities are not the
// submission's: each setting the features record is checked, model.pool_ln_eps too (it was
// not: 0.5 gave 4.7e-6 where the features' 1e-3 gave 1.3e-4, silently).
TEST_F(Predict, TextsWithOtherEmbeddingSettingsThanTheFeaturesAreRefused) {
  for (const std::string& setting :
       {std::string("tokenizer.max_len=16"), std::string("tokenizer.keep_eos=false"),
        std::string("model.pool_ln_eps=0.5")}) {
    auto r = test::run_cli(cli("predict --texts -") + " run.log_level=warn " + setting, "hola\n");
    EXPECT_EQ(r.exit_code, 2) << setting << r.err;
    const std::string key = setting.substr(0, setting.find('='));
    EXPECT_NE(r.err.find(run_file("features.h5") + " was exported with " + key + " = "),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(" but the configuration has " + setting.substr(setting.find('=') + 1)),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(r.out.empty()) << setting;
  }
}

// classifier.json names the labeled file its features came from, not the configuration's
// (features exported with another data.multilingual_csv said the configuration's).
TEST_F(Predict, TheClassifierNamesTheLabeledFileOfItsFeatures) {
  test::TempDir dir;
  const std::string other = dir.write("other.csv", "id,comment_text,lang,toxic\n1,x,es,1\n");
  auto r = test::run_cli(
      cli("predict --features " + run_file("features.h5") + " --out " + dir.path("s.csv")) +
      " run.log_level=warn run.dir=" + dir.path("run") + " data.multilingual_csv=" + other);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(test::read_file(dir.path("run/classifier.json")));
  const std::string labeled = files::join(data_->data, "validation.csv");
  EXPECT_EQ(j["fitted_on"]["dataset"], labeled);
  EXPECT_EQ(j["fitted_on"]["dataset_bytes"], files::size(labeled));
}

// Features of a checkpoint record its content, and their evaluation repeats it: export-hf
// then knows whether an evaluation scored the weights it exports, not just a file of that name.
TEST_F(Predict, FeaturesAndTheirEvaluationRecordTheCheckpointsContent) {
  const std::string best = run_file("checkpoints/best.h5");
  const io::H5File features = io::H5File::open(run_file("features.h5"));
  ASSERT_EQ(features.attr_string("model"), "weights of " + best);
  EXPECT_EQ(features.attr_string("model_xxh3"), file_checksum(best));
  test::TempDir dir;
  const std::string copy = dir.path("features.h5");
  test::write_file(copy, test::read_file(run_file("features.h5")));
  auto r = test::run_cli("evaluate " + copy);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(test::read_file(dir.path("evaluation.json")));
  EXPECT_EQ(j["after"]["model_xxh3"], file_checksum(best));
}

TEST_F(Predict, ATokenizerTheModelCannotTakeIsOneLineNotATorchError) {
  // The fixture model has 130 positions and 4002 ids: a longer tokenizer.max_len, or a
  // tokenizer with more ids than a model's vocabulary, failed in the forward with torch's
  // "index out of range" and a stack trace (exit 1).
  test::TempDir dir;
  const std::string quiet = " run.log_level=warn";
  const std::string too_long = quiet + " tokenizer.max_len=200";
  for (const std::string& command :
       {cli("embed") + too_long, cli("embed --out " + dir.path("e.npy")) + too_long,
        cli("export --checkpoint " + run_file("checkpoints/best.h5")) + too_long +
            " run.dir=" + dir.path("run"),
        cli("export-hf --out " + dir.path("hf")) + too_long}) {
    auto r = test::run_cli(command, "hello\nworld\n");
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.err;
    EXPECT_EQ(r.err,
              "siamese-xlmr: error: tokenizer.max_len 200 needs more positions than the model "
              "has (max_position_embeddings 130)\n")
        << command;
    EXPECT_TRUE(r.out.empty()) << command;
  }
  const std::string small_vocab = dir.write(
      "config.json",
      R"({"vocab_size": 2002, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 70, "type_vocab_size": 1, "pad_token_id": 1,
    "layer_norm_eps": 1e-5, "hidden_act": "gelu"})");
  auto r = test::run_cli(cli("embed --allow-random") + quiet + " model.pretrained= model.config=" +
                             small_vocab + " run.dir=" + dir.path("empty-run"),
                         "referencia\n");  // id 2459 with the fixture tokenizer
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err,
            "siamese-xlmr: error: tokenizer.model has 4002 ids but the model's vocabulary has "
            "2002\n");
  EXPECT_TRUE(r.out.empty());
}

TEST_F(Predict, PathMistakesAreOneLineBeforeAnyWork) {
  // Each was an "internal error: cannot rename ..." (exit 1) or an error naming a temporary file
  // after the embedding or the fit, or (--texts DIR, --texts with --out) nothing at all, exit 0.
  test::TempDir dir;
  const std::string a_dir = dir.path("out.npy");
  files::create_directories(a_dir);
  const std::string missing = dir.path("no-such-dir/e.h5");
  const std::string quiet = " run.log_level=warn";
  for (auto [command, why] : {
           std::pair{cli("embed --force --out " + a_dir), a_dir + " is a directory"},
           std::pair{cli("embed --out " + a_dir), a_dir + " is a directory"},
           std::pair{cli("embed --out " + missing),
                     "the directory " + dir.path("no-such-dir") + " does not exist"},
           std::pair{cli("predict --force --out " + a_dir), a_dir + " is a directory"},
           std::pair{cli("predict --force --out " + missing),
                     "the directory " + dir.path("no-such-dir") + " does not exist"},
           std::pair{cli("predict --texts " + dir.path("")), std::string(" is a directory")},
           std::pair{cli("predict --texts - --out " + dir.path("p.csv")),
                     std::string("writes no file")},
       }) {
    auto r = test::run_cli(command + quiet, "hello\n");
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << command << "\n" << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << command << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << command << "\n" << r.out;
    EXPECT_FALSE(files::exists(dir.path("p.csv")));
    EXPECT_EQ(files::list(dir.path("")), std::vector<std::string>{"out.npy"}) << command;
  }
}

TEST_F(Predict, ExportIntoARunDirThatDoesNotExistIsOneLineAndMakesNothing) {
  // A mistyped run.dir was created, with its .lock, and every CSV read before "no checkpoint".
  test::TempDir dir;
  const std::string typo = dir.path("rnus/demo");
  auto r = test::run_cli(cli("export") + " run.dir=" + typo);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("run.dir: " + typo + " does not exist"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(files::exists(dir.path("rnus")));
}

TEST_F(Predict, FeaturesGivenAsACheckpointAreNamedAsSuch) {
  // Was "attribute 'format' holds string values, expected integer".
  test::TempDir dir;
  const std::string features = run_file("features.h5");
  for (const std::string& command :
       {cli("embed --checkpoint " + features),
        cli("export-hf --out " + dir.path("hf") + " --checkpoint " + features)}) {
    auto r = test::run_cli(command + " run.log_level=warn", "hello\n");
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_EQ(r.err, "siamese-xlmr: error: checkpoint " + features +
                         " is unusable: not a siamese-xlmr checkpoint but a file of format "
                         "'siamese-xlmr features 1'\n")
        << command;
  }
}

// A NaN test row was written to submission.csv as "-nan" with exit 0; a checkpoint given as
// --features "had no test set".
TEST_F(Predict, ANonFiniteTestRowOrACheckpointAsFeaturesIsOneLine) {
  test::TempDir dir;
  {
    io::H5File f = io::H5File::create(dir.path("nan.h5"));
    const std::vector<float> x{0.5f, 1.0f, -0.5f, 2.0f, 1.5f, std::nanf("")};
    const std::vector<int64_t> labels{0, 1}, ids{7, 8, 9};
    f.write("train/embeddings", x.data(), {2, 2});
    f.write("train/labels", labels.data(), {2});
    f.write("test/embeddings", x.data(), {3, 2});
    f.write("test/ids", ids.data(), {3});
    f.close();
  }
  const std::string best = run_file("checkpoints/best.h5");
  for (const auto& [features, why] :
       {std::pair{dir.path("nan.h5"), dir.path("nan.h5") +
                                          ": test/embeddings holds a non-finite value at row 2, "
                                          "column 1"},
        std::pair{best, best + " is not a features file (no train/embeddings)"}}) {
    auto r = test::run_cli(cli("predict --features " + features + " --out " + dir.path("s.csv")) +
                           " run.log_level=warn run.dir=" + dir.path("run"));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
    EXPECT_FALSE(files::exists(dir.path("s.csv")));
  }
}

TEST_F(Predict, ExportRefusesAFeaturesPathThatIsADirectory) {
  // Was "internal error: cannot rename ..." (exit 1) after embedding both sets.
  test::TempDir dir;
  files::create_directories(dir.path("run/features.h5"));
  auto r = test::run_cli(cli("export --force --checkpoint " + run_file("checkpoints/best.h5")) +
                         " run.log_level=warn run.dir=" + dir.path("run"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "siamese-xlmr: error: export: " + dir.path("run/features.h5") +
                       " is a directory, expected the features file to write\n");
}

TEST_F(Predict, EmbedRefusesAnIdThatIsNotUtf8) {
  // It was written as is into the HDF5 `ids`, declared UTF-8: h5py's ids.asstr() then raised
  // UnicodeDecodeError. A bad row now, by file and line (the texts' invalid bytes are dropped).
  test::TempDir dir;
  const std::string csv = dir.write("ids.csv", "id,text\nok,hello\n\xff\xfe,world\n");
  const std::string embed =
      cli("embed --csv " + csv + " --text-column text --id-column id --out " + dir.path("e.h5")) +
      " run.log_level=warn";
  auto r = test::run_cli(embed);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "siamese-xlmr: error: --csv: " + csv +
                       ": 1 bad row: line 3: id is not valid UTF-8. Fix the file or set "
                       "data.bad_rows=skip to drop such rows\n");
  EXPECT_FALSE(files::exists(dir.path("e.h5")));
  auto skipped = test::run_cli(embed + " data.bad_rows=skip");
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_EQ(io::H5File::open(dir.path("e.h5")).read_strings("ids"), std::vector<std::string>{"ok"});
}

TEST_F(Predict, RefusesATestCsvOtherThanTheFeatures) {
  // submission.csv silently had the rows of the test set the features were exported with.
  test::TempDir dir;
  const std::string other = dir.write("test.csv", "id,content,lang\n1,a new comment,en\n");
  auto r = test::run_cli(cli("predict --force --out " + dir.path("s.csv")) +
                         " run.log_level=warn data.test_csv=" + other);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("holds the test set of " + data_->test_csv), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("but data.test_csv " + other + " has 35 bytes"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(files::exists(dir.path("s.csv")));
  // The same size with other bytes (two ids swapped, a text edited): refused too.
  std::string edited = test::read_file(data_->test_csv);
  size_t at = edited.find(',', edited.find('\n') + 1);  // in the first row's text
  while (at < edited.size() && !std::isalpha(static_cast<unsigned char>(edited[at]))) ++at;
  ASSERT_LT(at, edited.size());
  edited[at] = edited[at] == 'x' ? 'y' : 'x';
  const std::string same_size = dir.write("same.csv", edited);
  auto s = test::run_cli(cli("predict --force --out " + dir.path("s.csv")) +
                         " run.log_level=warn data.test_csv=" + same_size);
  EXPECT_EQ(s.exit_code, 2) << s.err;
  EXPECT_NE(s.err.find("has changed since (same size, other bytes: XXH3 " +
                       file_checksum(data_->test_csv) + " at export, " + file_checksum(same_size) +
                       " now)"),
            std::string::npos)
      << s.err;
  EXPECT_EQ(test::count_lines(s.err), 1u) << s.err;
  EXPECT_FALSE(files::exists(dir.path("s.csv")));
}

TEST_F(Predict, SaysHowManyTestIdsTheSubmissionLacks) {
  // With data.bad_rows: skip, a bad row of the test file was left out of features.h5 and so of
  // submission.csv, which lacked its id without a word.
  test::TempDir dir;
  const std::string bad_test =
      dir.write("test.csv", test::read_file(data_->test_csv) + "x1,an id that is no number,en\n" +
                                "900001,a row with,one field too many,en\n");
  const std::string run =
      " run.log_level=warn run.dir=" + dir.path("run") + " data.test_csv=" + bad_test;
  const std::string exported = cli("export --checkpoint " + run_file("checkpoints/best.h5")) + run;
  auto refused = test::run_cli(exported);  // data.bad_rows: fail, the default, stops at them
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find(bad_test + ": 2 bad rows"), std::string::npos) << refused.err;

  auto e = test::run_cli(exported + " data.bad_rows=skip");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.err.find("the test set lacks 2 rows of data.test_csv " + bad_test), std::string::npos)
      << e.err;
  io::H5File features = io::H5File::open(dir.path("run/features.h5"));
  EXPECT_EQ(features.attr_int("test_rows_skipped"), 2);
  EXPECT_EQ(features.read_int64("test/ids").size(), test_set().size());

  auto p = test::run_cli(cli("predict") + run + " data.bad_rows=skip");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.err.find("[warning] " + dir.path("run/submission.csv") + " lacks 2 rows of " +
                       bad_test + " that were left out as bad"),
            std::string::npos)
      << p.err;
  EXPECT_EQ(test::count_lines(p.err), 1u) << p.err;
}

// ---- one command at a time in a run.dir (issue #25)

// A command of the program started in the background (its output in `log`), which the test
// waits for or signals by its pid.
class Started {
 public:
  Started(const std::string& args, const std::string& log) {
    const std::string command =
        "exec '" + std::string(SX_BINARY) + "' " + args + " >'" + log + "' 2>&1 </dev/null";
    const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
    EXPECT_EQ(posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ),
              0);
  }
  ~Started() {  // a test that failed early leaves nothing running
    if (ended()) return;
    kill(pid_, SIGKILL);
    exit_code();
  }
  pid_t pid() const { return pid_; }
  // Whether it has ended (collected without waiting).
  bool ended() {
    int status = 0;
    if (code_ < 0 && waitpid(pid_, &status, WNOHANG) == pid_) code_ = code_of(status);
    return code_ >= 0;
  }
  int exit_code() {
    int status = 0;
    if (code_ < 0 && waitpid(pid_, &status, 0) == pid_) code_ = code_of(status);
    return code_;
  }

 private:
  static int code_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid_ = -1;
  int code_ = -1;
};

// Waits until run_dir/.lock names `started` as holding it for `command` (then stops it there,
// holding the lock, with SIGSTOP); false if it ended first or 120 s passed.
bool stop_holding(Started& started, const std::string& run_dir, const std::string& command) {
  const std::string holder =
      "`" + command + "` (pid " + std::to_string(static_cast<long>(started.pid())) + " on ";
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < end && !started.ended()) {
    if (test::read_file(files::join(run_dir, ".lock")).rfind(holder, 0) == 0)
      return kill(started.pid(), SIGSTOP) == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

std::string in_use_by(const std::string& run_dir, const std::string& command, pid_t pid) {
  return "run.dir " + run_dir + " is in use by `" + command + "` (pid " +
         std::to_string(static_cast<long>(pid)) + " on ";
}

TEST_F(Predict, ExportAndPredictAreRefusedWhileAnotherCommandHoldsTheRunDir) {
  const std::string features = test::read_file(run_file("features.h5"));
  const std::string classifier = test::read_file(run_file("classifier.json"));
  const RunDirLock training(data_->run, "train");  // as a live training's rank 0 holds it
  for (const char* command : {"export --force", "predict --force"}) {
    auto r = test::run_cli(cli(command));
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.err;
    EXPECT_NE(r.err.find(in_use_by(data_->run, "train", getpid())), std::string::npos)
        << command << "\n"
        << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << command << "\n" << r.err;
  }
  EXPECT_TRUE(test::read_file(run_file("features.h5")) == features) << "features.h5 replaced";
  EXPECT_TRUE(test::read_file(run_file("classifier.json")) == classifier)
      << "classifier.json replaced";
}

// predict without features.h5 names a holder that will write one (train, export); another
// holder (an evaluate, a predict on other features) will not: features.h5 is simply missing.
TEST_F(Predict, AMissingFeaturesFileNamesOnlyAHolderThatWillWriteIt) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  for (const char* holder : {"train", "export", "evaluate", "predict"}) {
    const RunDirLock lock(run, holder);
    auto r = test::run_cli(cli("predict") + " run.dir=" + run);
    EXPECT_EQ(r.exit_code, 2) << holder << "\n" << r.err;
    const bool writer = std::string(holder) == "train" || std::string(holder) == "export";
    EXPECT_EQ(r.err.find(in_use_by(run, holder, getpid())) != std::string::npos, writer)
        << holder << "\n"
        << r.err;
    EXPECT_EQ(r.err.find("features.h5 not found") != std::string::npos, !writer) << holder << "\n"
                                                                                 << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << holder << "\n" << r.err;
  }
}

// export-hf of a run under way would publish its best.h5 of the moment: refused, with the way
// to export a checkpoint as it is now; another export-hf reading the run does not stop it.
TEST_F(Predict, ExportHfOfTheRunsWeightsWaitsForItsTraining) {
  test::TempDir dir;
  {
    const RunDirLock training(data_->run, "train");
    auto r = test::run_cli(cli("export-hf --out " + dir.path("hf")));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(in_use_by(data_->run, "train", getpid())), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("pass --checkpoint PATH to export one of its checkpoints as it is now"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(files::exists(dir.path("hf")));
    auto named = test::run_cli(cli("export-hf --out " + dir.path("named") + " --checkpoint " +
                                   run_file("checkpoints/best.h5")));
    EXPECT_EQ(named.exit_code, 0) << named.err;
  }
  const RunDirLock reading(RunDirLock::Reading{}, data_->run, "unused");
  auto r = test::run_cli(cli("export-hf --out " + dir.path("hf")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A writer meanwhile is told a reader holds the directory, not the last writer's name.
  auto predict = test::run_cli(cli("predict --force"));
  EXPECT_EQ(predict.exit_code, 2) << predict.err;
  EXPECT_NE(
      predict.err.find("run.dir " + data_->run +
                       " is being read by `export-hf` (or `predict`), which is still running"),
      std::string::npos)
      << predict.err;
}

// `evaluate features_before.h5` replaced the run's evaluation.json (the one the model card
// reads) with the untrained encoder's: it writes evaluation_before.json.
TEST_F(Predict, EvaluatingTheFeaturesBeforeTrainingKeepsTheRunsEvaluation) {
  test::TempDir dir;
  const std::string bytes = test::read_file(run_file("features.h5"));
  test::write_file(dir.path("features.h5"), bytes);
  test::write_file(dir.path("features_before.h5"), bytes);
  auto after = test::run_cli("evaluate " + dir.path("features.h5"));
  ASSERT_EQ(after.exit_code, 0) << after.err;
  const std::string evaluation = test::read_file(dir.path("evaluation.json"));
  auto before = test::run_cli("evaluate " + dir.path("features_before.h5"));
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_NE(before.out.find("written: " + dir.path("evaluation_before.json")), std::string::npos)
      << before.out;
  EXPECT_EQ(test::read_file(dir.path("evaluation.json")), evaluation);
}

// evaluate in a run.dir another command holds: the table is printed (evaluating reads only),
// then one line says evaluation.json was not written and why, and what to do instead; exit 2.
TEST_F(Predict, EvaluatePrintsItsTableAndSaysWhyEvaluationJsonWasNotWritten) {
  const std::string json = run_file("evaluation.json");
  const bool had_json = files::exists(json);
  const std::string before = had_json ? test::read_file(json) : "";
  const RunDirLock training(data_->run, "train");
  auto r = test::run_cli("evaluate " + run_file("features.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find("language   rows  toxic"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("written:"), std::string::npos) << r.out;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("evaluate: the table above is complete, but " + json +
                       " was not written: " + in_use_by(data_->run, "train", getpid())),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("wait for it to end, or copy the features files to another folder and "
                       "evaluate them there"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(files::exists(json), had_json);
  if (had_json) {
    EXPECT_EQ(test::read_file(json), before);
  }
}

TEST_F(Predict, ASecondExportIsRefusedWhileTheFirstWorks) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  const std::string export_into_run =
      cli("export") + " run.dir=" + run + " --checkpoint " + run_file("checkpoints/best.h5");
  // export.batch_size=1: the lock is held from before the data is loaded until features.h5 is
  // written, one text at a time (seconds); the test stops the export as soon as it holds it.
  Started first(export_into_run + " export.batch_size=1", dir.path("first.log"));
  ASSERT_TRUE(stop_holding(first, run, "export"))
      << "the first export never held " << run << ": " << test::read_file(dir.path("first.log"));
  auto second = test::run_cli(export_into_run + " --force");
  kill(first.pid(), SIGCONT);
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_NE(second.err.find(in_use_by(run, "export", first.pid())), std::string::npos)
      << second.err;
  EXPECT_EQ(first.exit_code(), 0) << test::read_file(dir.path("first.log"));
  EXPECT_TRUE(files::exists(files::join(run, "features.h5")));
}

TEST_F(Predict, ExportAndPredictAreRefusedWhileATrainingRunsInTheRunDir) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  // A training of about a minute here; the test stops it as soon as it holds run.dir.
  Started training(cli("train") + " run.dir=" + run +
                       " train.pairs_per_rank=4 data.train_pairs=800 data.val_pairs=64",
                   dir.path("train.log"));
  ASSERT_TRUE(stop_holding(training, run, "train"))
      << "the training never held " << run << ": " << test::read_file(dir.path("train.log"));
  auto r = test::run_cli(cli("export") + " run.dir=" + run + " --checkpoint " +
                         run_file("checkpoints/best.h5"));
  // predict, whose features.h5 the training writes at its end, names the training too (it said
  // that features.h5 was not found).
  auto p = test::run_cli(cli("predict") + " run.dir=" + run);
  kill(training.pid(), SIGKILL);  // stopped: the test ends it
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(in_use_by(run, "train", training.pid())), std::string::npos) << r.err;
  EXPECT_FALSE(files::exists(files::join(run, "features.h5")));
  EXPECT_EQ(p.exit_code, 2) << p.err;
  EXPECT_NE(p.err.find(in_use_by(run, "train", training.pid())), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("pass --features FILE to use the features of another run"),
            std::string::npos)
      << p.err;
  EXPECT_EQ(test::count_lines(p.err), 1u) << p.err;
}

// ---- a full disk (issue #25): outputs appear together or not at all, with the system's reason

TEST_F(Predict, AFailedWriteLeavesNeitherOutputAndSaysWhy) {
  test::TempDir dir;
  const std::string run = dir.path("run"), out = dir.path("s.csv");
  // Room for classifier.json (the first file written), not for submission.csv.
  const size_t limit = files::size(run_file("classifier.json"));
  ASSERT_LT(limit, files::size(run_file("submission.csv")));
  auto r = test::run_cli_with_file_limit(cli("predict") + " run.dir=" + run + " --features " +
                                             run_file("features.h5") + " --out " + out,
                                         limit);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("predict: cannot write " + out + ".tmp."), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": File too large"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(files::exists(files::join(run, "classifier.json")));
  EXPECT_EQ(files::list(dir.path()), (std::vector<std::string>{"run"}));  // no temporary
  EXPECT_EQ(files::list(run), (std::vector<std::string>{".lock"}));
}

}  // namespace
}  // namespace sx

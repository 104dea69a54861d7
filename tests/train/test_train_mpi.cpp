// Multi-rank training under `mpirun -np 2` (CTest label "mpi"): replicas stay identical,
// resume is bitwise, every stop rule stops both ranks at the same step with a loadable
// checkpoint, and a dead rank ends the job.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "data/jigsaw.h"
#include "io/hdf5.h"
#include "train/checkpoint.h"
#include "train/train_fixture.h"

namespace sx::train {
namespace {

using test::TempDir;

std::map<std::string, torch::Tensor> params_at(const std::string& run_dir, int64_t step) {
  return read_checkpoint(step_checkpoint_path(run_dir, step)).params;
}

double max_param_diff(const std::map<std::string, torch::Tensor>& a,
                      const std::map<std::string, torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a)
    worst = std::max(worst, (t - b.at(name)).abs().max().item<double>());
  return worst;
}

bool bitwise_equal(const Checkpoint& a, const Checkpoint& b) {
  if (a.params.size() != b.params.size()) return false;
  for (const auto& [name, t] : a.params)
    if (!torch::equal(t, b.params.at(name))) return false;
  return torch::equal(a.adam_m, b.adam_m) && torch::equal(a.adam_v, b.adam_v);
}

TEST(TrainMpi, TwoRanksOfFourEqualOneRankOfEight) {
  TempDir one, two;
  // The fixture model has no dropout.
  auto r1 =
      test::train(1, test::train_config(one.path()), "train.pairs_per_rank=8 train.max_steps=5");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  auto r2 =
      test::train(2, test::train_config(two.path()), "train.pairs_per_rank=4 train.max_steps=5");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_LT(max_param_diff(params_at(one.path("run"), 5), params_at(two.path("run"), 5)), 1e-6);
  // The 2-rank run reduced its gradients during backward and only the touched embedding rows.
  const std::string log = test::read_file(two.path("run/log/rank-0.log"));
  const auto line = log.substr(log.find("all-reduce of step 1: "));
  EXPECT_NE(line.find(" embedding rows"), std::string::npos) << line;
  EXPECT_EQ(line.find(" 0 launched during backward"), std::string::npos) << line;
}

// With tokenizer.share_node two ranks of one node tokenize once into a shared window, agree
// on the pair sequence and train the same weights as one rank with its lazy store.
TEST(TrainMpi, RanksOfANodeShareTheTokenIdsAndTrainAsOneRank) {
  TempDir one, two;
  auto r1 =
      test::train(1, test::train_config(one.path()), "train.pairs_per_rank=8 train.max_steps=5");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  auto r = test::train(2, test::train_config(two.path()),
                       "train.pairs_per_rank=4 train.max_steps=5 tokenizer.share_node=true");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(max_param_diff(params_at(one.path("run"), 5), params_at(two.path("run"), 5)), 1e-6);
  const std::string log0 = test::read_file(two.path("run/log/rank-0.log"));
  const std::string log1 = test::read_file(two.path("run/log/rank-1.log"));
  EXPECT_NE(log0.find("tokenized once per node (2 ranks share"), std::string::npos) << log0;
  auto fingerprints = [](const std::string& log) {
    const size_t at = log.find("pair sequences: ");
    return at == std::string::npos ? std::string() : log.substr(at, log.find('\n', at) - at);
  };
  EXPECT_FALSE(fingerprints(log0).empty());
  EXPECT_EQ(fingerprints(log0), fingerprints(log1));
}

TEST(TrainMpi, Bf16GradientsOnTheWireStayCloseToFp32) {
  TempDir fp32, bf16;
  auto a = test::train(2, test::train_config(fp32.path()), "train.max_steps=5");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b =
      test::train(2, test::train_config(bf16.path()), "train.max_steps=5 dist.grad_dtype=bf16");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const double diff =
      max_param_diff(params_at(fp32.path("run"), 5), params_at(bf16.path("run"), 5));
  // A smoke test that the key reaches the wire (the numerics are test_reducer's): the runs
  // differ, but by less than Adam's steps (at most ~lr each, ~4e-5 over these 5) would let a
  // wrong gradient move the weights. Measured: 3e-6.
  EXPECT_GT(diff, 0);
  RecordProperty("max_param_diff", std::to_string(diff));
  EXPECT_LT(diff, 1e-5);
}

class Resume : public ::testing::TestWithParam<int> {};

TEST_P(Resume, StopAndResumeIsBitwiseEqualToAnUninterruptedRun) {
  const int stop_at = GetParam();  // 7: inside epoch 2; 10: at the end of epoch 2
  TempDir whole, parts;
  // Random initialisation with dropout exercises the (seed, rank, step) randomness.
  auto with_dropout = [](const TempDir& dir) {
    std::string yaml = test::read_file(test::train_config(dir.path()));
    std::string model =
        "model:\n  pretrained: \"\"\n  config: " + test::dropout_model_config(dir.path()) + "\n";
    yaml =
        yaml.substr(0, yaml.find("\nmodel:") + 1) + model + yaml.substr(yaml.find("\ntrain:") + 1);
    return test::write_dir_file(dir.path(), "dropout.yaml", yaml);
  };
  const std::string config_whole = with_dropout(whole), config_parts = with_dropout(parts);
  auto w = test::train(2, config_whole, "train.max_steps=14");
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto p1 = test::train(2, config_parts, "train.max_steps=" + std::to_string(stop_at));
  ASSERT_EQ(p1.exit_code, 0) << p1.err;
  auto p2 = test::train(2, config_parts, "train.max_steps=14 --resume auto");
  ASSERT_EQ(p2.exit_code, 0) << p2.err;
  EXPECT_NE(test::read_file(parts.path("run/log/rank-0.log")).find("resumed from"),
            std::string::npos);
  Checkpoint a = read_checkpoint(step_checkpoint_path(whole.path("run"), 14));
  Checkpoint b = read_checkpoint(step_checkpoint_path(parts.path("run"), 14));
  EXPECT_TRUE(bitwise_equal(a, b)) << "max diff " << max_param_diff(a.params, b.params);
  EXPECT_EQ(a.state.pairs_consumed, b.state.pairs_consumed);
  EXPECT_EQ(a.state.adam_iterations, b.state.adam_iterations);
  EXPECT_EQ(a.state.best_val_loss, b.state.best_val_loss);
}

INSTANTIATE_TEST_SUITE_P(InsideAndAtEpochEnd, Resume, ::testing::Values(7, 10));

TEST(TrainMpi, TimeBasedStopStopsBothRanksAtTheSameStepWithACheckpoint) {
  TempDir dir;
  auto r = test::train(2, test::train_config(dir.path(), "  max_epochs: 100000\n"),
                       "run.max_duration=3s");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = dir.path("run");
  long s0 = test::stopped_step(run, 0), s1 = test::stopped_step(run, 1);
  EXPECT_GT(s0, 0);
  EXPECT_EQ(s0, s1);
  EXPECT_NE(test::read_file(run + "/log/rank-0.log").find("time-based stopping"),
            std::string::npos);
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run, s0)).state.step, s0);
}

TEST(TrainMpi, EarlyStoppingStopsBothRanksAtTheSameStep) {
  TempDir dir;
  // A zero learning rate never improves on the first epoch: patience 2 stops after epoch 3.
  auto r =
      test::train(2, test::train_config(dir.path(), "  patience: 2\n  lr_min: 0\n  lr_max: 0\n"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = dir.path("run");
  EXPECT_EQ(test::stopped_step(run, 0), 15);
  EXPECT_EQ(test::stopped_step(run, 1), 15);
  EXPECT_NE(test::read_file(run + "/log/rank-0.log").find("early stopping"), std::string::npos);
  EXPECT_TRUE(files::exists(best_checkpoint_path(run)));
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run, 15)).state.epochs_without_improvement, 2);
}

TEST(TrainMpi, SigtermOnOneRankStopsBothWithACheckpointAndTheRequeueCode) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path());
  const std::string run_dir = dir.path("run");
  long pid = -1;
  for (int i = 0; i < 400 && (pid = test::rank_pid(run_dir, 1)) < 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  // Let it train a few steps first.
  for (int i = 0; i < 400 && test::count_occurrences(test::read_file(run_dir + "/metrics.jsonl"),
                                                     "\"step\"") < 3;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(static_cast<pid_t>(pid), SIGTERM);
  int rc = run.wait(60);
  EXPECT_EQ(rc, 75) << test::read_file(dir.path("out"));
  long s0 = test::stopped_step(run_dir, 0), s1 = test::stopped_step(run_dir, 1);
  EXPECT_GT(s0, 0);
  EXPECT_EQ(s0, s1);
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run_dir, s0)).state.step, s0);
}

TEST(TrainMpi, TruncatedCheckpointIsRefusedAndAutoFallsBack) {
  TempDir dir;
  auto config = test::train_config(dir.path());
  auto r = test::train(2, config, "train.max_steps=10");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = dir.path("run");
  const std::string newest = step_checkpoint_path(run, 10);
  std::string bytes = test::read_file(newest);
  test::write_file(newest, bytes.substr(0, bytes.size() / 2));

  auto refused = test::train(2, config, "train.max_steps=12 --resume " + newest);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("checkpoint " + newest + " is unusable"), std::string::npos)
      << refused.err;

  auto fallback = test::train(2, config, "train.max_steps=12 --resume auto");
  EXPECT_EQ(fallback.exit_code, 0) << fallback.err;
  std::string log = test::read_file(run + "/log/rank-0.log");
  EXPECT_NE(log.find("is unusable"), std::string::npos);
  EXPECT_NE(log.find("resumed from " + step_checkpoint_path(run, 5)), std::string::npos) << log;
}

TEST(TrainMpi, AKilledRankEndsTheJobWithin30Seconds) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path());
  long pid = -1;
  for (int i = 0; i < 400 && (pid = test::rank_pid(dir.path("run"), 1)) < 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  int rc = run.wait(30);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(rc, -1) << "job still running 30 s after a rank was killed";
  EXPECT_NE(rc, 0);
  EXPECT_LT(took, 30.0);
}

TEST(TrainMpi, NonFiniteStepsAreSkippedAndStopTraining) {
  TempDir dir;
  // An absurd learning rate drives the weights to inf/NaN within a few steps.
  auto r = test::train(
      2, test::train_config(dir.path(), "  lr_min: 1e30\n  lr_max: 1e30\n  max_bad_steps: 3\n"),
      "train.max_steps=40");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const std::string run = dir.path("run");
  std::string metrics = test::read_file(run + "/metrics.jsonl");
  EXPECT_GE(test::count_occurrences(metrics, "\"skipped\":true"), 3u);
  auto newest = list_step_checkpoints(run);
  ASSERT_FALSE(newest.empty());
  Checkpoint c = read_checkpoint(newest.front());  // loadable, and no NaN got into it
  for (const auto& [name, t] : c.params) EXPECT_FALSE(torch::isnan(t).any().item<bool>()) << name;
}

TEST(TrainMpi, MetricsHaveStepAndEpochLines) {
  TempDir dir;
  auto r = test::train(2, test::train_config(dir.path()), "train.max_steps=10");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t steps = 0, epochs = 0;
  std::istringstream lines(test::read_file(dir.path("run/metrics.jsonl")));
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") {
      ++steps;
      EXPECT_GT(j["pairs_per_s"].get<double>(), 0);
      EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
      EXPECT_TRUE(j.contains("lr"));
    } else if (j["type"] == "epoch") {
      ++epochs;
      EXPECT_TRUE(j["val_loss"].is_number());
      EXPECT_TRUE(j["best_val_loss"].is_number());
    }
  }
  EXPECT_EQ(steps, 10u);
  EXPECT_EQ(epochs, 2u);
}

}  // namespace
}  // namespace sx::train

namespace sx::train {
namespace {

// features.h5 against the CSV files it was made from (issue: export).
TEST(TrainMpi, ExportedFeaturesMatchTheInputFiles) {
  TempDir dir;
  auto r = test::train(2, test::train_config(dir.path()), "train.max_steps=5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"features.h5", "features_before.h5"}) {
    io::H5File f = io::H5File::open(dir.path(std::string("run/") + name));
    const int64_t hidden = f.attr_int("hidden_size");
    EXPECT_EQ(hidden, 32);
    auto dims = f.dims("train/embeddings");
    const uint64_t n = dims[0];
    EXPECT_EQ(dims[1], 32u);
    auto langs = f.read_strings("train/langs");
    auto labels = f.read_int64("train/labels");
    auto rows = f.read_int64("train/rows");
    ASSERT_EQ(langs.size(), n);
    EXPECT_TRUE(std::is_sorted(langs.begin(), langs.end()));  // grouped, sorted as the notebook
    // Folds: one per language, disjoint, together covering every row, test = that language.
    auto fold_langs = f.members("folds");
    EXPECT_EQ(fold_langs, (std::vector<std::string>{"en", "es", "it", "tr"}));
    for (const auto& lang : fold_langs) {
      auto tr = f.read_int64("folds/" + lang + "/train_index"),
           te = f.read_int64("folds/" + lang + "/test_index");
      EXPECT_EQ(tr.size() + te.size(), n) << lang;
      std::set<int64_t> all(tr.begin(), tr.end());
      for (auto i : te) {
        EXPECT_TRUE(all.insert(i).second) << lang;  // disjoint
        EXPECT_EQ(langs[i], lang);
      }
      for (auto i : tr) EXPECT_NE(langs[i], lang);
      EXPECT_EQ(all.size(), n);
      EXPECT_EQ(f.dims("languages/" + lang + "/embeddings")[0], te.size());
    }
    // Labels and row numbers point at the right rows of validation.csv.
    data::LoadOptions o;
    auto ml = data::load_labeled_csv(files::join(test::synth_data_dir(), "validation.csv"),
                                     {"comment_text", {"toxic"}, "lang"}, o);
    for (uint64_t k = 0; k < n; ++k) {
      if (langs[k] == "en") continue;
      EXPECT_EQ(ml.langs[rows[k]], langs[k]);
      EXPECT_EQ(ml.labels[rows[k]], labels[k]);
    }
    // The test matrix carries the test file's ids in order.
    auto test = data::load_test_csv(files::join(test::synth_data_dir(), "test.csv"), {}, o);
    auto ids = f.read_int64("test/ids");
    EXPECT_EQ(ids, test.ids);
    EXPECT_EQ(f.dims("test/embeddings")[0], test.size());
  }
}

}  // namespace
}  // namespace sx::train

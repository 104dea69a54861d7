// The training loop in-process on one rank (train/replica.h, train/loop.h): what it does is
// read from its state, metrics.jsonl, checkpoints and exit codes, not from log prose.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <limits>
#include <sstream>

#include "core/config.h"
#include "core/files.h"
#include "fixtures.h"
#include "model/encoder_factory.h"
#include "model/siamese_loss.h"
#include "mpi_main.h"
#include "stop_signal_scope.h"
#include "train/checkpoint.h"
#include "train/flat_params.h"
#include "train/legacy_checkpoint.h"
#include "train/loop.h"
#include "train/replica.h"
#include "train/run_dir.h"
#include "train/signals.h"
#include "train/trainer.h"

namespace sx::train {
namespace {

using test::TempDir;

// A replica set up and connected for `config` on this one rank.
struct Running {
  Config config;
  Replica r;
  explicit Running(Config c, const TrainOptions& options = {}) : config(std::move(c)) {
    Checkpoint checkpoint;
    if (set_up_replica(config, test::mpi_env(), options, r, checkpoint) != kExitOk)
      throw std::runtime_error("set-up failed");
    connect_replica(config, test::mpi_env(), r, checkpoint);
  }
};

Config tiny_config(const TempDir& dir, const std::vector<std::string>& overrides) {
  return load_config(test::train_config(dir.path()), overrides);
}

std::vector<nlohmann::json> metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(test::read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Loop, RunsToMaxStepsThroughAnEpochAndFinishesWithFeatures) {
  TempDir dir;
  Running s(tiny_config(dir, {"train.max_steps=7"}));  // epochs of 5 steps of 4 pairs
  ASSERT_EQ(s.r.global_batch, 4);
  std::vector<std::string> exported;
  int code = -1;
  {
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    EXPECT_EQ(run_until_stop(loop), StopReason::kMaxSteps);
    code = loop.finish(StopReason::kMaxSteps, [&](const std::string& p) { exported.push_back(p); });
  }
  EXPECT_EQ(code, kExitOk);
  EXPECT_EQ(exported, std::vector<std::string>{s.config.run.dir + "/features.h5"});
  EXPECT_EQ(s.r.state.step, 7);
  EXPECT_EQ(s.r.state.epoch, 1);
  EXPECT_EQ(s.r.state.pairs_consumed, 28);
  const auto lines = metrics(s.config.run.dir);
  std::vector<int64_t> steps;
  int64_t epochs = 0;
  for (const auto& j : lines) {
    if (j["type"] == "step") steps.push_back(j["step"].get<int64_t>());
    if (j["type"] == "epoch") {
      ++epochs;
      EXPECT_EQ(j["step"].get<int64_t>(), 5);
      EXPECT_TRUE(std::isfinite(j["val_loss"].get<double>()));
    }
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(epochs, 1);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front()["event"], "start");
  EXPECT_EQ(lines.back()["event"], "job_time");
  // The epoch end wrote best.h5 and step 5, the stop step 7; training can resume from 7.
  EXPECT_TRUE(files::exists(best_checkpoint_path(s.config.run.dir)));
  EXPECT_TRUE(files::exists(step_checkpoint_path(s.config.run.dir, 5)));
  // The features came from the reloaded best weights, and their "model" attribute says so.
  EXPECT_EQ(s.r.model_description, "weights of " + best_checkpoint_path(s.config.run.dir));
  const std::string last = step_checkpoint_path(s.config.run.dir, 7);
  const Checkpoint c = read_checkpoint(last);
  EXPECT_NO_THROW(check_resumable(c, last));
  EXPECT_EQ(c.state.pairs_consumed, 28);
}

// Weights that give no finite validation loss (finite steps can still overflow them) end the
// run with exit 4 and no checkpoint of them. Early stopping took NaN for "no improvement" and
// the run exported NaN features with exit 0.
TEST(Loop, ANonFiniteValidationLossStopsWithoutSavingTheWeights) {
  TempDir dir;
  Running s(tiny_config(dir, {"train.max_steps=20"}));  // epochs of 5 steps
  Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  while (!loop.epoch_ended()) {
    ASSERT_EQ(loop.stop_check(), StopReason::kNone);
    ASSERT_EQ(loop.step(), StopReason::kNone);
  }
  s.r.trainee.flat->params().fill_(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(loop.end_epoch(), StopReason::kNonFiniteValidation);
  bool exported = false;
  EXPECT_EQ(
      loop.finish(StopReason::kNonFiniteValidation, [&](const std::string&) { exported = true; }),
      kExitNonFinite);
  EXPECT_FALSE(exported);
  EXPECT_FALSE(files::exists(best_checkpoint_path(s.config.run.dir)));
  EXPECT_FALSE(files::exists(step_checkpoint_path(s.config.run.dir, 5)));
  const auto lines = metrics(s.config.run.dir);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["event"], "stop");
  EXPECT_EQ(lines.back()["detail"], "a validation loss that is not finite");
}

// A run that stopped before its first validation exports its last weights; the features' "model"
// attribute said the initial encoder (a random initialisation, or model.pretrained).
TEST(Loop, FeaturesOfARunWithoutBestH5SayTheyAreTheLastWeights) {
  TempDir dir;
  Running s(tiny_config(dir, {"train.max_steps=3"}));  // epochs of 5 steps: no validation
  Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
  EXPECT_EQ(s.r.model_description,
            "the last weights, step 3 (no " + best_checkpoint_path(s.config.run.dir) + ")");
}

// Validation goes through the packed text batch and the model's one encode path; its mean DBL
// loss equals each pair's texts tokenized alone, padded, and encoded as HF's rows.
TEST(Loop, ValidationLossIsTheMeanDblLossOfTheValidationPairs) {
  TempDir dir;
  Running s(tiny_config(dir, {"export.batch_size=5"}));  // batches that split the pairs unevenly
  Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  const double packed = loop.validation_loss();
  model::SiameseEncoder& model = s.r.trainee.model;
  model->eval();
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (size_t i = 0; i < s.r.val_pairs.size(); ++i) {
    const data::Pair& p = s.r.val_pairs[i];
    std::vector<int32_t> rows = s.r.tokenizer->encode(s.r.split.validation.texts[p.left]);
    const std::vector<int32_t> right = s.r.tokenizer->encode(s.r.split.validation.texts[p.right]);
    rows.insert(rows.end(), right.begin(), right.end());
    torch::Tensor ids = torch::tensor(rows, torch::kLong).view({2, -1});
    torch::Tensor e = model->forward(ids);
    sum += model::dbl_loss(model::pair_distance(e.narrow(0, 0, 1), e.narrow(0, 1, 1)),
                           torch::full({1}, static_cast<float>(p.label)), s.config.train.margin)
               .item<double>();
  }
  model->train();
  ASSERT_EQ(s.r.val_pairs.size(), 64u);
  EXPECT_NEAR(packed, sum / 64, 1e-5 * std::abs(packed));
}

// A stop signal between steps: the step checkpoint, exit kExitRequeue, and a stop event
// saying why in metrics.jsonl.
TEST(Loop, AStopSignalCheckpointsAndAsksForARequeue) {
  TempDir dir;
  Running s(tiny_config(dir, {}));
  int code = -1;
  {
    test::StopSignalScope scope;
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    ASSERT_EQ(loop.stop_check(), StopReason::kNone);
    ASSERT_EQ(loop.step(), StopReason::kNone);
    std::raise(SIGUSR1);  // dist.stop_signal's default; set_up_replica installed the handlers
    EXPECT_EQ(loop.stop_check(), StopReason::kSignal);
    code = loop.finish(StopReason::kSignal, [](const std::string&) { FAIL() << "exported"; });
  }
  EXPECT_EQ(code, kExitRequeue);
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(s.config.run.dir, 1)).state.step, 1);
  const auto lines = metrics(s.config.run.dir);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["event"], "stop");
  EXPECT_EQ(lines.back()["detail"], describe(StopReason::kSignal));
}

// Runs the trainer in run.dir with a stop signal that came during the set-up (a Slurm warning
// leaves little time), and returns the paths it wrote features to.
std::vector<std::string> train_stopped_at_set_up(const Config& config) {
  test::StopSignalScope scope;
  install_stop_handlers();
  std::raise(SIGUSR1);
  std::vector<std::string> written;
  TrainOptions options;
  options.write_features = [&](const FeatureSource&, const std::string& path) {
    written.push_back(path);
  };
  EXPECT_EQ(run_training(config, test::mpi_env(), options), kExitRequeue);
  return written;
}

// Resumes the run in run.dir for one step and returns the paths it wrote features to.
std::vector<std::string> resume_for_one_step(const Config& config) {
  Config c = config;
  c.train.max_steps = 1;
  std::vector<std::string> written;
  TrainOptions options;
  options.resume = "auto";
  options.write_features = [&](const FeatureSource&, const std::string& path) {
    written.push_back(path);
  };
  EXPECT_EQ(run_training(c, test::mpi_env(), options), kExitOk);
  return written;
}

// A stop signal during the set-up: the export before training, minutes at scale, is skipped;
// the run checkpoints at once and asks for a requeue. Its resume, from step 0, writes the
// features before training it skipped: the run's results are those of a run never stopped.
TEST(Trainer, AStopSignalDuringTheSetUpSkipsTheExportBeforeTrainingUntilTheResume) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  ASSERT_TRUE(config.export_.before_training);
  EXPECT_EQ(train_stopped_at_set_up(config), std::vector<std::string>{});
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(config.run.dir, 0)).state.step, 0);
  const std::string before = files::join(config.run.dir, "features_before.h5");
  const std::string after = files::join(config.run.dir, "features.h5");
  EXPECT_EQ(resume_for_one_step(config), (std::vector<std::string>{before, after}));
}

// A resume from step 0 keeps a features_before.h5 that is there: it has the same weights.
TEST(Trainer, AResumeFromStepZeroKeepsTheFeaturesBeforeTrainingThatAreThere) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  EXPECT_EQ(train_stopped_at_set_up(config), std::vector<std::string>{});
  const std::string before = files::join(config.run.dir, "features_before.h5");
  test::write_file(before, "written by the run");
  EXPECT_EQ(resume_for_one_step(config),
            std::vector<std::string>{files::join(config.run.dir, "features.h5")});
}

// A finished run continued for more epochs (train.max_epochs raised, the only change) trains on
// from its last checkpoint to the new cap; it was refused as another configuration, and so was
// the advice's other run.dir. Any other change is still refused (ARefusedResume...).
TEST(Trainer, AFinishedRunContinuesForMoreEpochs) {
  TempDir dir;
  const Config one = tiny_config(dir, {"train.max_epochs=1"});  // epochs of 5 steps
  TrainOptions options;
  options.write_features = [](const FeatureSource&, const std::string&) {};
  ASSERT_EQ(run_training(one, test::mpi_env(), options), kExitOk);
  ASSERT_EQ(list_step_checkpoints(one.run.dir).front(), step_checkpoint_path(one.run.dir, 5));
  options.resume = "auto";
  ASSERT_EQ(run_training(tiny_config(dir, {"train.max_epochs=2"}), test::mpi_env(), options),
            kExitOk);
  const Checkpoint last = read_checkpoint(list_step_checkpoints(one.run.dir).front());
  EXPECT_EQ(last.state.step, 10);
  EXPECT_EQ(last.state.epoch, 2);
  EXPECT_EQ(last.state.max_epochs, 2);
  // The first run's checkpoints are still known by the continued run's config.resolved.yaml:
  // the check of the settings that make embeddings skipped them (another hash).
  const std::string first = step_checkpoint_path(one.run.dir, 5);
  ASSERT_TRUE(files::exists(first));
  const TrainState then = read_checkpoint(first, false).state;
  ASSERT_NE(then.config_hash, last.state.config_hash);
  const auto changes =
      config_changes_since(first, then, tiny_config(dir, {"tokenizer.max_len=16"}));
  EXPECT_TRUE(std::any_of(changes.begin(), changes.end(), [](const std::string& change) {
    return change.rfind("tokenizer.max_len: 32 then, 16 now", 0) == 0;
  })) << changes.size();
}

// Trains `steps` steps in run.dir (an epoch is 5) and ends as a finished run does.
void train_steps(const Config& config, int64_t steps) {
  Config c = config;
  c.train.max_steps = steps;
  Running s(c);
  Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
}

// A resume refused at set-up (another configuration) leaves run.dir as it was: its
// config.resolved.yaml is the run's, not the refused one's (issue #25).
TEST(Loop, ARefusedResumeChangesNothingInRunDir) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  train_steps(config, 3);
  const std::string resolved = config.run.dir + "/config.resolved.yaml";
  const std::string before = test::read_file(resolved);
  Config other = config;
  other.train.margin = 2.0;  // a key that changes results
  TrainOptions resume;
  resume.resume = "auto";
  Replica r;
  Checkpoint checkpoint;
  EXPECT_EQ(set_up_replica(other, test::mpi_env(), resume, r, checkpoint), kExitUserError);
  EXPECT_EQ(test::read_file(resolved), before);
}

// An unusable best.h5 in a resumed run is refused at set-up, not when the run ends.
TEST(Loop, AResumeWithACorruptBestCheckpointIsRefusedAtSetUp) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  train_steps(config, 6);  // best.h5 at the epoch's end (step 5)
  const std::string best = best_checkpoint_path(config.run.dir);
  std::string bytes = test::read_file(best);
  ASSERT_GT(bytes.size(), 4096u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i)
    bytes[i] = static_cast<char>(~bytes[i]);
  test::write_file(best, bytes);
  TrainOptions resume;
  resume.resume = "auto";
  Replica r;
  Checkpoint checkpoint;
  testing::internal::CaptureStderr();
  EXPECT_EQ(set_up_replica(config, test::mpi_env(), resume, r, checkpoint), kExitUserError);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.state.step, 0);  // nothing was resumed
  // The way out names the best epoch's step checkpoint, which holds the same weights (deleting
  // best.h5 instead ended the run with other weights than its best).
  EXPECT_NE(log.find("or copy " + step_checkpoint_path(config.run.dir, 5) +
                     " over it (the best epoch's step checkpoint, the same weights)"),
            std::string::npos)
      << log;
}

// A run killed before its first checkpoint leaves only metrics.jsonl; the next fresh start
// (a requeue's --resume auto, or a plain restart) writes its own: one start event, each step
// once; the dead run's lines go into previous-<time>/ (issue #25).
TEST(Loop, AFreshStartAfterARunKilledBeforeItsFirstCheckpointHasItsOwnMetrics) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  files::create_directories(config.run.dir);
  test::write_file(config.run.dir + "/metrics.jsonl",
                   "{\"type\":\"event\",\"event\":\"start\",\"step\":0}\n"
                   "{\"type\":\"step\",\"step\":1}\n{\"type\":\"st");  // torn by the kill
  for (const std::string resume : {"auto", ""}) {
    Config c = config;
    c.train.max_steps = 2;
    TrainOptions options;
    options.resume = resume;
    Running s(c, options);
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
    int64_t starts = 0;
    std::vector<int64_t> steps;
    for (const auto& j : metrics(c.run.dir)) {
      starts += j["type"] == "event" && j["event"] == "start";
      if (j["type"] == "step") steps.push_back(j["step"].get<int64_t>());
    }
    EXPECT_EQ(starts, 1) << "resume '" << resume << "'";
    EXPECT_EQ(steps, (std::vector<int64_t>{1, 2})) << "resume '" << resume << "'";
    // The next round starts in a directory with this run's checkpoints: a fresh start needs
    // --force, so the second round's fresh start is given a directory like the first's.
    files::remove_all(c.run.dir + "/checkpoints");
    files::remove_all(c.run.dir + "/features.h5");
  }
}

// --resume auto with every step checkpoint unusable does not tell the user to pass --resume
// auto: it names them and the ways on (issue #25).
TEST(Loop, AResumeWhereEveryStepCheckpointIsUnusableSaysWhatToDo) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  train_steps(config, 3);
  test::write_file(step_checkpoint_path(config.run.dir, 3), "not a checkpoint");
  TrainOptions resume;
  resume.resume = "auto";
  Checkpoint checkpoint;
  {
    Replica r;  // holds run.dir's lock while it lives
    EXPECT_EQ(set_up_replica(config, test::mpi_env(), resume, r, checkpoint), kExitUserError);
  }
  for (const auto& name : files::list(config.run.dir))  // nothing moved without --force
    EXPECT_NE(name.rfind("previous-", 0), 0u) << name;
  EXPECT_EQ(list_step_checkpoints(config.run.dir).size(), 1u);
  resume.force = true;  // with --force: moved aside, a fresh start
  Replica fresh;
  EXPECT_EQ(set_up_replica(config, test::mpi_env(), resume, fresh, checkpoint), kExitOk);
  EXPECT_TRUE(fresh.resumed_from.empty());
  EXPECT_TRUE(list_step_checkpoints(config.run.dir).empty());
}

// Checkpoints record the order of Adam's moments (optimizer/layout, format 4) and a resume reads
// them by name. Today's layout (each layer's q, k and v back to back) differs from the plain
// reverse registration order of format 3 files (earlier releases), so reading those by position
// would hand one parameter's moments to another: the same state written either way resumes to
// the same moments.
TEST(Loop, AResumeReadsAdamsMomentsByNameInTheFilesLayout) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  train_steps(config, 3);
  const std::string path = step_checkpoint_path(config.run.dir, 3);
  const Checkpoint written = read_checkpoint(path);
  TrainOptions resume;
  resume.resume = "auto";
  torch::Tensor m, v;
  {
    Running s(config, resume);
    ASSERT_EQ(s.r.resumed_from, path);
    EXPECT_EQ(written.moment_layout, s.r.trainee.flat->names());
    EXPECT_NE(written.moment_layout, s.r.trainee.flat->registration_order());
    m = s.r.trainee.adam->m().clone();
    v = s.r.trainee.adam->v().clone();
    EXPECT_TRUE(torch::equal(m, written.adam_m));
    EXPECT_GT(v.abs().sum().item<double>(), 0);
  }
  // The same state as the releases of format 3 wrote it.
  model::SiameseEncoder plain_model = model::build_encoder(config).encoder;
  FlatParameters plain(*plain_model);
  Checkpoint legacy = written;
  legacy.adam_m = plain.rearranged(written.adam_m, written.moment_layout);
  legacy.adam_v = plain.rearranged(written.adam_v, written.moment_layout);
  ASSERT_FALSE(torch::equal(legacy.adam_v, written.adam_v));
  test::write_checkpoint_without_layout(path, legacy);
  ASSERT_EQ(read_checkpoint(path).format, 3);
  Running s(config, resume);
  ASSERT_EQ(s.r.resumed_from, path);
  EXPECT_TRUE(torch::equal(s.r.trainee.adam->m(), m));
  EXPECT_TRUE(torch::equal(s.r.trainee.adam->v(), v));
}

// train.embedding_adam_overlap through the loop (train/rows_adam.h): the epoch's validation, the
// checkpoints, a stop and a resume all see the whole update, deferred rows included. 7 steps (an
// epoch of 5, stopped after 3 and resumed) end with the parameters, the moments, the validation
// loss and best.h5 bitwise those of 7 uninterrupted steps without it.
TEST(Loop, TheEmbeddingAdamOverlapTrainsAndResumesBitwiseAsWithout) {
  TempDir off_dir, on_dir;
  const Config off = tiny_config(off_dir, {});
  const Config on = tiny_config(on_dir, {"train.embedding_adam_overlap=true"});
  train_steps(off, 7);
  train_steps(on, 3);
  {
    Config c = on;
    c.train.max_steps = 7;
    TrainOptions resume;
    resume.resume = "auto";
    Running s(c, resume);
    ASSERT_EQ(s.r.resumed_from, step_checkpoint_path(on.run.dir, 3));
    ASSERT_NE(s.r.trainee.rows_adam, nullptr);
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
  }
  using PathOf = std::string (*)(const std::string&);
  const PathOf step_7 = [](const std::string& dir) { return step_checkpoint_path(dir, 7); };
  for (const auto& [path_of, with_optimizer] :
       {std::pair{step_7, true}, std::pair{PathOf(&best_checkpoint_path), false}}) {
    const std::string file = path_of("");
    const Checkpoint a = read_checkpoint(path_of(off.run.dir), with_optimizer);
    const Checkpoint b = read_checkpoint(path_of(on.run.dir), with_optimizer);
    ASSERT_EQ(a.params.size(), b.params.size());
    for (const auto& [name, t] : a.params)
      EXPECT_TRUE(torch::equal(t, b.params.at(name))) << file << ": " << name;
    if (!with_optimizer) continue;
    EXPECT_TRUE(torch::equal(a.adam_m, b.adam_m)) << file;
    EXPECT_TRUE(torch::equal(a.adam_v, b.adam_v)) << file;
  }
  const auto val_loss = [](const std::string& dir) {
    for (const auto& j : metrics(dir))
      if (j["type"] == "epoch") return j["val_loss"].get<double>();
    return -1.0;
  };
  EXPECT_EQ(val_loss(off.run.dir), val_loss(on.run.dir));
  EXPECT_GT(val_loss(off.run.dir), 0);
}

// export.batch_size only sizes the validation batches: the loss was each chunk's float mean
// times its pairs and changed in the eighth digit with it (0.6666669249 at 128, 0.6666669385
// at 3), enough to tip early stopping in a near tie and to break a bitwise resume.
TEST(Loop, TheValidationLossDoesNotDependOnExportBatchSize) {
  std::vector<double> losses;
  for (const char* size :
       {"export.batch_size=3", "export.batch_size=16", "export.batch_size=128"}) {
    TempDir dir;
    Running s(tiny_config(dir, {size}));
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    losses.push_back(loop.validation_loss());
  }
  EXPECT_GT(losses[0], 0);
  EXPECT_EQ(losses[1], losses[0]);
  EXPECT_EQ(losses[2], losses[0]);
}

// An epoch resumed mid-way reported the mean training loss of its steps after the resume only:
// the sum so far travels in the step checkpoint (format 5), and the epoch lines of a run stopped
// at step 3 and 7 and resumed equal the uninterrupted run's.
TEST(Loop, AnEpochResumedMidwayReportsTheLossOfAllItsSteps) {
  TempDir whole_dir, parts_dir;
  const Config whole = tiny_config(whole_dir, {});
  const Config parts = tiny_config(parts_dir, {});
  train_steps(whole, 12);  // epochs of 5 steps: ends at 5 and 10
  train_steps(parts, 3);
  for (int64_t steps : {7, 12}) {
    Config c = parts;
    c.train.max_steps = steps;
    TrainOptions resume;
    resume.resume = "auto";
    Running s(c, resume);
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
  }
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(parts.run.dir, 7)).format, kCheckpointFormat);
  const auto epoch_losses = [](const std::string& dir) {
    std::vector<double> losses;
    for (const auto& j : metrics(dir))
      if (j["type"] == "epoch") losses.push_back(j["loss"].get<double>());
    return losses;
  };
  const std::vector<double> expected = epoch_losses(whole.run.dir);
  ASSERT_EQ(expected.size(), 2u);
  EXPECT_EQ(epoch_losses(parts.run.dir), expected);
}

// A run that early stopping ended, resumed (a requeue, or a crash in the final export): it stops
// again before any step, as the epoch and step limits do, rather than train another epoch.
TEST(Loop, AResumedRunThatEarlyStoppingEndedStopsBeforeAnyStep) {
  TempDir dir;
  Running s(tiny_config(dir, {"train.patience=2"}));
  s.r.state.best_val_loss = 0.5;
  s.r.state.epochs_without_improvement = 2;  // as the checkpoint of the stopping epoch says
  Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  EXPECT_EQ(loop.stop_check(), StopReason::kEarlyStopping);
  s.r.state.epochs_without_improvement = 1;
  Loop going_on(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
  EXPECT_EQ(going_on.stop_check(), StopReason::kNone);
}

// --resume PATH from an earlier step starts another history: once the run is accepted, the step
// checkpoints past it and a best.h5 written past it go into previous-<time>/checkpoints/, so
// that a requeue's --resume auto continues the new history (and the pruning does not drop the
// resumed file for the abandoned ones), and the end of the run does not reload the abandoned
// history's best weights.
TEST(Loop, AResumeFromAnEarlierStepSetsTheLaterHistoryAside) {
  TempDir dir;
  const Config config = tiny_config(dir, {"train.checkpoint_every=2", "train.keep_checkpoints=9"});
  train_steps(config, 7);  // step checkpoints 2, 4, 5 (the epoch's end, best.h5 too), 6 and 7
  const std::string four = step_checkpoint_path(config.run.dir, 4);
  ASSERT_TRUE(files::exists(four));
  const auto aside = [&] {
    std::vector<std::string> names;
    for (const auto& name : files::list(config.run.dir))
      if (name.rfind("previous-", 0) == 0)
        for (const auto& file : files::list(config.run.dir + "/" + name + "/checkpoints"))
          names.push_back(file);
    std::sort(names.begin(), names.end());
    return names;
  };
  TrainOptions resume;
  resume.resume = four;
  {
    Config refused = config;
    refused.train.margin = 2.0;  // refused at set-up: nothing moves
    Replica r;
    Checkpoint checkpoint;
    EXPECT_EQ(set_up_replica(refused, test::mpi_env(), resume, r, checkpoint), kExitUserError);
    EXPECT_TRUE(aside().empty());
  }
  // The outputs of the abandoned history's end stayed beside the new history's checkpoints,
  // and its metrics lines past the step were dropped: they go aside with its checkpoints.
  test::write_file(config.run.dir + "/features.h5", "the abandoned history's features");
  test::write_file(config.run.dir + "/classifier.json", "{}");
  Running s(config, resume);
  ASSERT_EQ(s.r.resumed_from, four);
  EXPECT_EQ(list_step_checkpoints(config.run.dir),
            (std::vector<std::string>{four, step_checkpoint_path(config.run.dir, 2)}));
  EXPECT_FALSE(files::exists(best_checkpoint_path(config.run.dir)));
  EXPECT_EQ(aside(), (std::vector<std::string>{"best.h5", "step-0000000005.h5",
                                               "step-0000000006.h5", "step-0000000007.h5"}));
  std::string previous;
  for (const auto& name : files::list(config.run.dir))
    if (name.rfind("previous-", 0) == 0) previous = config.run.dir + "/" + name;
  for (const char* name : {"features.h5", "classifier.json"}) {
    EXPECT_FALSE(files::exists(config.run.dir + "/" + name)) << name;
    EXPECT_TRUE(files::exists(previous + "/" + name)) << name;
  }
  bool step_7 = false;
  for (const auto& line : metrics(previous))
    step_7 = step_7 || (line.value("type", "") == "step" && line.value("step", 0) == 7);
  EXPECT_TRUE(step_7) << "the abandoned history's metrics are not in " << previous;
}

// --resume PATH of another run into a run.dir holding a run of its own: that run's step
// checkpoints below PATH's step stayed, so a requeue's --resume auto before this run's first
// checkpoint continued that other run, and its metrics lines stayed in this run's file.
TEST(Loop, AResumeOfAnotherRunsCheckpointSetsTheRunDirsOwnRunAside) {
  TempDir dir, other;
  const Config a = tiny_config(dir, {"train.checkpoint_every=2", "train.keep_checkpoints=9"});
  train_steps(a, 7);
  Config b = a;
  b.run.dir = other.path("run");
  train_steps(b, 3);  // step checkpoints 2 and 3 of another lineage
  ASSERT_EQ(list_step_checkpoints(b.run.dir).size(), 2u);
  TrainOptions resume;
  resume.resume = step_checkpoint_path(a.run.dir, 7);
  Running s(b, resume);
  EXPECT_TRUE(list_step_checkpoints(b.run.dir).empty());
  std::string previous;
  for (const auto& name : files::list(b.run.dir))
    if (name.rfind("previous-", 0) == 0) previous = b.run.dir + "/" + name;
  ASSERT_FALSE(previous.empty());
  EXPECT_EQ(list_step_checkpoints(previous).size(), 2u);
  for (const auto& line : metrics(b.run.dir))
    EXPECT_NE(line.value("type", ""), "step") << line.dump();
  bool step_3 = false;
  for (const auto& line : metrics(previous))
    step_3 = step_3 || (line.value("type", "") == "step" && line.value("step", 0) == 3);
  EXPECT_TRUE(step_3) << "the other run's metrics are not in " << previous;
}

// Temporary files of killed checkpoint writers are removed when a run takes the directory.
// A rollback with --resume PATH set the later history's best.h5 aside and exported the last
// weights ("best.h5 is missing"); the best of the resumed history is its epoch-end checkpoint
// at best_step (format 5), restored as best.h5, in run.dir and in a new run.dir alike.
TEST(Loop, ARollbackRestoresTheBestWeightsOfItsHistory) {
  TempDir dir, other;
  const Config config = tiny_config(dir, {});
  train_steps(config, 12);  // epochs end at 5 and 10
  const std::string from = step_checkpoint_path(config.run.dir, 5);
  const Checkpoint at_5 = read_checkpoint(from, false);
  ASSERT_EQ(at_5.state.best_step, 5);  // the first validation always improves
  for (const std::string& run_dir : {config.run.dir, other.path("run")}) {
    Config c = config;
    c.run.dir = run_dir;
    Config resumed = c;
    resumed.train.max_steps = 7;  // no further epoch end: the export reloads best.h5
    TrainOptions options;
    options.resume = from;
    Running s(resumed, options);
    const Checkpoint best = read_checkpoint(best_checkpoint_path(c.run.dir), false);
    EXPECT_EQ(best.state.step, 5) << c.run.dir;
    for (const auto& [name, t] : at_5.params)
      EXPECT_TRUE(torch::equal(t, best.params.at(name))) << c.run.dir << ": " << name;
    Loop loop(s.config, test::mpi_env(), s.r, JobBudget(0, 1, 1));
    ASSERT_EQ(loop.finish(run_until_stop(loop), [](const std::string&) {}), kExitOk);
    EXPECT_EQ(s.r.model_description, "weights of " + best_checkpoint_path(c.run.dir));
  }
}

TEST(Loop, ARunRemovesTheTemporaryFilesOfKilledCheckpointWriters) {
  TempDir dir;
  const Config config = tiny_config(dir, {});
  train_steps(config, 3);
  const std::string stale = step_checkpoint_path(config.run.dir, 4) + ".tmp.12345";
  test::write_file(stale, std::string(1 << 16, 'x'));
  // A killed export's and metrics writer's, in run.dir itself; a user's file that only looks
  // alike stays.
  const std::string features = config.run.dir + "/features.h5.tmp.777";
  const std::string metrics_tmp = config.run.dir + "/metrics.jsonl.tmp.778";
  const std::string users = config.run.dir + "/notes.txt.tmp.779";
  for (const auto& path : {features, metrics_tmp, users}) test::write_file(path, "x");
  TrainOptions resume;
  resume.resume = "auto";
  Running s(config, resume);
  EXPECT_FALSE(files::exists(stale));
  EXPECT_FALSE(files::exists(features));
  EXPECT_FALSE(files::exists(metrics_tmp));
  EXPECT_TRUE(files::exists(users));
  EXPECT_EQ(s.r.resumed_from, step_checkpoint_path(config.run.dir, 3));
}

}  // namespace
}  // namespace sx::train

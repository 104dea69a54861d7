// Training pieces without MPI: stop rules, the epoch plan, checkpoints, flat buffers.
#include <sys/wait.h>
#include <time.h>
#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "core/checksum.h"
#include "core/error.h"
#include "core/hash.h"
#include "io/hdf5.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "stop_signal_scope.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/flat_params.h"
#include "train/legacy_checkpoint.h"
#include "train/metrics.h"
#include "train/progress.h"
#include "train/run_dir.h"
#include "train/run_inputs.h"
#include "train/signals.h"
#include "train/state_fields.h"
#include "train/stopping.h"

namespace sx::train {
namespace {

TEST(EarlyStopping, KerasSemanticsStrictImprovementAndReset) {
  EarlyStopping e{2};
  EXPECT_TRUE(e.update(1.0));
  EXPECT_FALSE(e.update(1.0));  // equal is not an improvement (min_delta 0)
  EXPECT_FALSE(e.should_stop());
  EXPECT_TRUE(e.update(0.9));  // resets the counter
  EXPECT_EQ(e.epochs_without_improvement, 0);
  EXPECT_FALSE(e.update(0.95));
  EXPECT_FALSE(e.update(0.91));
  EXPECT_TRUE(e.should_stop());
  EXPECT_DOUBLE_EQ(e.best, 0.9);
}

TEST(EpochPlan, TheNotebooksRule) {
  // 500000 pairs, 1000 validation pairs, 32 per step on one replica. The notebook's
  // validation steps are val_pairs // batch (floor): 31, not 32.
  EpochPlan p = plan_epochs(500000, 1000, 32, 0, 0);
  EXPECT_EQ(p.train_batches, 15625);
  EXPECT_EQ(p.val_batches, 31);
  EXPECT_EQ(p.steps_per_epoch, 620);
  EXPECT_EQ(p.max_epochs, 252);  // max(30, round(10 * 15625 / 620))
  EpochPlan small = plan_epochs(1000, 1000, 64, 0, 0);
  EXPECT_EQ(small.steps_per_epoch, 15);  // training batches are fewer than 20 x validation batches
  EXPECT_EQ(small.max_epochs, 30);
  EXPECT_EQ(plan_epochs(1000, 100, 4, 7, 3).steps_per_epoch, 7);
  EXPECT_EQ(plan_epochs(1000, 100, 4, 7, 3).max_epochs, 3);
  EXPECT_EQ(plan_epochs(1000, 10, 16, 0, 0).val_batches, 0);  // fewer than one batch
  EXPECT_EQ(plan_epochs(1000, 10, 16, 0, 0).steps_per_epoch, 1);
  // The cap rounds as Python's round, half to even: 10 x 13 / 4 = 32.5 gives 32, 10 x 27 / 8 =
  // 33.75 gives 34, 10 x 15 / 4 = 37.5 gives 38.
  EXPECT_EQ(plan_epochs(13 * 8, 1000, 8, 4, 0).max_epochs, 32);
  EXPECT_EQ(plan_epochs(27 * 8, 1000, 8, 8, 0).max_epochs, 34);
  EXPECT_EQ(plan_epochs(15 * 8, 1000, 8, 4, 0).max_epochs, 38);
}

TEST(PairPlan, KeepsTheStepRulesAtItsOwnBatchAndThePairCountsAtAnother) {
  // 5 steps of 8 pairs per epoch, 3 epochs, a half-cycle of 2 epochs.
  const PairPlan plan = plan_in_pairs(plan_epochs(1000, 100, 8, 5, 3), 2.0);
  EXPECT_EQ(plan.global_batch, 8);
  EXPECT_EQ(plan.pairs_per_epoch, 40);
  EXPECT_EQ(plan.max_epochs, 3);
  EXPECT_DOUBLE_EQ(plan.lr_step_pairs, 80);
  EXPECT_FALSE(plan.empty());
  EXPECT_TRUE(PairPlan{}.empty());
  // At its own batch: the step-counting rules (epoch every 5 steps, cap after 15).
  for (int64_t step = 1; step <= 15; ++step) {
    const int64_t consumed = step * 8, epochs = (step - 1) / 5;
    EXPECT_EQ(plan.ends_epoch(consumed, epochs), step % 5 == 0) << step;
    EXPECT_EQ(plan.epochs_done(consumed), step == 15) << step;
    EXPECT_EQ(plan.steps_done(consumed, 7), step >= 7) << step;
  }
  EXPECT_FALSE(plan.steps_done(1 << 20, 0));  // 0 = no cap
  EXPECT_EQ(plan.steps_per_epoch(8), 5);
  // At a batch of 16 from pair 24 (after 3 steps of 8): the epoch ends with the step that
  // reaches or crosses pair 40, the next with the one reaching 80; the cap of 7 steps of 8
  // pairs is pair 56.
  EXPECT_FALSE(plan.ends_epoch(24, 0));
  EXPECT_TRUE(plan.ends_epoch(40, 0));
  EXPECT_FALSE(plan.ends_epoch(56, 1));
  EXPECT_TRUE(plan.ends_epoch(88, 1));
  EXPECT_FALSE(plan.steps_done(40, 7));
  EXPECT_TRUE(plan.steps_done(56, 7));
  EXPECT_EQ(plan.steps_per_epoch(16), 3);
  EXPECT_EQ(plan.steps_per_epoch(32), 2);
}

// The caps the configuration accepts go up to 2^63 - 1 pairs' worth and beyond: counted in
// pairs they must never be reached early by wrapping around (a huge train.max_steps once
// stopped at step 0, a huge steps_per_epoch gave "0 steps per epoch" or a negative schedule).
TEST(PairPlan, HugeCapsAreNeverReachedRatherThanWrappedAround) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const PairPlan plan = plan_in_pairs(plan_epochs(1000, 100, 8, 5, kMax), 2.0);
  EXPECT_FALSE(plan.epochs_done(1 << 30));
  EXPECT_FALSE(plan.steps_done(1 << 30, int64_t{1} << 61));
  EXPECT_FALSE(plan.steps_done(1 << 30, kMax));
  const PairPlan long_epochs = plan_in_pairs(plan_epochs(1000, 100, 8, kMax, 3), 2.0);
  EXPECT_EQ(long_epochs.pairs_per_epoch, kMax);
  EXPECT_FALSE(long_epochs.empty());
  EXPECT_FALSE(long_epochs.ends_epoch(1 << 30, 0));
  EXPECT_FALSE(long_epochs.ends_epoch(1 << 30, 5));
  EXPECT_EQ(long_epochs.steps_per_epoch(8), kMax / 8 + 1);
  const PairPlan odd = plan_in_pairs(plan_epochs(1000, 100, 8, (int64_t{1} << 60) + 1, 3), 2.0);
  EXPECT_EQ(odd.pairs_per_epoch, kMax);  // 8 x (2^60 + 1) > 2^63 - 1
  EXPECT_GT(odd.steps_per_epoch(8), 0);
}

// A simulated job: set-up, export, then steps of `step` seconds until the budget says stop,
// then the wrap-up taking `wrap_up` seconds. Returns the job's end.
double simulate(JobBudget& b, double set_up, double export_before, double step, double wrap_up,
                int64_t* steps = nullptr) {
  double now = set_up;
  b.end_of(JobBudget::kSetUp, now);
  if (export_before > 0) b.end_of(JobBudget::kExportBefore, now += export_before);
  double last = 0;
  int64_t n = 0;
  while (!b.should_stop(now, last) && n < 1000000) now += last = step, ++n;
  b.end_of(JobBudget::kTraining, now);
  b.end_of(JobBudget::kWrapUp, now += wrap_up);
  if (steps) *steps = n;
  return now;
}

TEST(JobBudget, SetUpExportsAndTrainingFitTheWholeBudget) {
  // 2.5 h budget, 10 min set-up, 5 min export, 2 s steps; the final export as long as the
  // first: the job ends inside the budget, with the notebook's spare export's worth left.
  JobBudget b(9000, 1e5, 64);
  int64_t steps = 0;
  const double end = simulate(b, 600, 300, 2.0, 300, &steps);
  EXPECT_LE(end, 9000);
  EXPECT_GE(end, 9000 - 300 - 2 - 1e-9);                   // stopped no earlier than it had to
  EXPECT_EQ(steps, (9000 - 600 - 300 - 2 * 300 - 2) / 2);  // the last step ends by 9000 - 2 x 300
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kSetUp), 600);
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kExportBefore), 300);
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kWrapUp), 300);
  EXPECT_NE(b.summary().find("job time 8698.000 s"), std::string::npos) << b.summary();
  EXPECT_NE(b.summary().find("of the 9000.000 s budget"), std::string::npos) << b.summary();
  // Even a final export twice as slow as the first still fits.
  JobBudget slow(9000, 1e5, 64);
  EXPECT_LE(simulate(slow, 600, 300, 2.0, 600), 9000 + 1e-9);
}

TEST(JobBudget, WithoutAnExportBeforeTrainingItIsEstimatedFromTheStepsPace) {
  // 6400 texts to export per rank, 64 texts per step of 1 s: estimate 100 s (forward only
  // really takes about a third: the estimate errs long).
  JobBudget b(1000, 6400, 64);
  EXPECT_DOUBLE_EQ(b.expected_export_seconds(1.0), 100);
  const double end = simulate(b, 50, 0, 1.0, 100);
  EXPECT_LE(end, 1000);
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kTraining), 1000 - 50 - 200 - 1);
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kExportBefore), 0);
}

TEST(JobBudget, AValidationIsReservedSoTheFirstEpochCanBeValidatedWithinTheBudget) {
  // 6400 texts to export and 640 to validate per rank, 64 texts per step of 1 s: the export
  // is estimated at 100 s, the validation at 10 s; training stops 10 s earlier than without
  // the validation's reserve, and the job (with that validation in its wrap-up) fits.
  JobBudget b(1000, 6400, 64);
  b.reserve_validation(640);
  EXPECT_DOUBLE_EQ(b.expected_validation_seconds(1.0), 10);
  const double end = simulate(b, 50, 0, 1.0, 10 + 100);
  EXPECT_LE(end, 1000);
  EXPECT_DOUBLE_EQ(b.duration_of(JobBudget::kTraining), 1000 - 50 - 200 - 10 - 1);
}

TEST(JobBudget, AnExportBeforeTrainingOfFewerTextsPredictsTheFinalOneInProportion) {
  // export.before_training_test: false: the export before training embeds the 1000 labeled
  // texts of the 10000 the final export embeds; it took 30 s, so the final one takes 300 s.
  JobBudget b(9000, 10000, 64);
  b.export_before_covers(1000);
  b.end_of(JobBudget::kSetUp, 600);
  b.end_of(JobBudget::kExportBefore, 630);
  EXPECT_DOUBLE_EQ(b.expected_export_seconds(2.0), 300);
  JobBudget all(9000, 10000, 64);
  all.end_of(JobBudget::kSetUp, 600);
  all.end_of(JobBudget::kExportBefore, 630);
  EXPECT_DOUBLE_EQ(all.expected_export_seconds(2.0), 30);
}

TEST(JobBudget, ASetUpLongerThanTheBudgetStopsBeforeTheFirstStepAndNoneNeverStops) {
  JobBudget late(100, 10, 10);
  int64_t steps = -1;
  simulate(late, 120, 1, 0.5, 1, &steps);
  EXPECT_EQ(steps, 0);
  JobBudget none(0, 10, 10);
  EXPECT_FALSE(none.limited());
  EXPECT_FALSE(none.should_stop(1e9, 1e9));
  EXPECT_EQ(none.summary().find("budget"), std::string::npos);
}

Checkpoint sample() {
  Checkpoint c;
  c.state.step = 12;
  c.state.epoch = 2;
  c.state.pairs_consumed = 96;
  c.state.adam_iterations = 11;
  c.state.best_val_loss = 0.5;
  c.state.epochs_without_improvement = 1;
  c.state.train_seconds = 3.5;
  c.state.world_size = 2;
  c.state.config_hash = "abc";
  c.state.accumulation_steps = 2;
  c.state.set_plan(plan_in_pairs(plan_epochs(1000, 100, 8, 5, 3), 2.0));
  c.state.lr_pairs = 88;
  c.params["encoder.layer.0.attention.self.query.weight"] = torch::randn({4, 3});
  c.params["pool_ln.bias"] = torch::randn({3});
  c.adam_m = torch::randn({15});
  c.adam_v = torch::rand({15});
  return c;
}

TEST(TrainingProgress, TimeToTheEpochsEndCountsTheStepsLeftInIt) {
  EXPECT_EQ(steps_left_in_epoch(1, 60), 59);
  EXPECT_EQ(steps_left_in_epoch(37, 60), 23);
  EXPECT_EQ(steps_left_in_epoch(60, 60), 0);  // the step that ends the epoch
  EXPECT_EQ(steps_left_in_epoch(61, 60), 59);
  EXPECT_EQ(steps_left_in_epoch(0, 60), 60);
}

TEST(TrainingProgress, BarAndLineShowStepEpochLossPaceAndTimesLeft) {
  TrainingStatus s;
  s.step = 97;
  s.epoch = 1;
  s.steps_per_epoch = 60;
  s.max_epochs = 30;
  s.loss = 0.27113;
  s.pairs_per_s = 41.26;
  s.epoch_left_s = 12.4;
  s.budget_left_s = 220;
  EXPECT_EQ(status_bar(s),
            "step 97 | epoch 2/30 [######....] 37/60, ends in 12s | 3m40s of run.max_duration "
            "left | loss 0.2711 | 41.3 pairs/s");
  EXPECT_EQ(status_line(s),
            "progress: step 97 (epoch 2/30, 37/60): loss 0.27113 (smoothed), 41.3 pairs/s, epoch "
            "ends in 12s, 3m40s of run.max_duration left");
  // No budget, no finite loss yet, no pace yet.
  s.budget_left_s = -1;
  s.loss = std::nan("");
  s.epoch_left_s = -1;
  EXPECT_EQ(status_line(s),
            "progress: step 97 (epoch 2/30, 37/60): loss ? (smoothed), 41.3 pairs/s, epoch ends "
            "in ?");
  EXPECT_EQ(status_bar(s).find('\r'), std::string::npos);  // the status line adds it
}

TEST(TrainingProgress, SmoothingStartsAsAMeanAndSkipsNonFiniteValues) {
  Smoothed m(0.1);
  EXPECT_TRUE(std::isnan(m.value()));
  m.add(2);
  EXPECT_DOUBLE_EQ(m.value(), 2);
  m.add(4);  // weight 1/2 while the count is small: the mean
  EXPECT_DOUBLE_EQ(m.value(), 3);
  m.add(std::nan(""));  // a skipped step
  m.add(INFINITY);
  EXPECT_DOUBLE_EQ(m.value(), 3);
  for (int i = 0; i < 100; ++i) m.add(10);
  EXPECT_NEAR(m.value(), 10, 1e-3);
}

std::vector<nlohmann::json> json_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(test::read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(MetricsLog, AResumedRunDropsTheStepsPastItsCheckpointAndSaysWhereItStarted) {
  test::TempDir dir;
  const std::string path = dir.path("metrics.jsonl");
  {
    MetricsLog log(path);
    log.start({0, "", 2, 8, "abc"});
    for (int64_t step = 1; step <= 7; ++step)
      log.step(step, (step - 1) / 5, 0.5, 1e-3, 10, 100, false, 0.1, 0.01);
    log.epoch(1, 5, 0.4, 0.4, true, 1.0, 0.5, nullptr);
  }
  // A line torn by a kill goes too.
  test::write_file(path, test::read_file(path) + "{\"type\":\"st");
  {
    MetricsLog log(path, 5);
    log.start({5, "run/checkpoints/step-5.h5", 2, 8, "abc"});
    log.step(6, 1, 0.5, 1e-3, 10, 100, false, 0.1, 0.01);
  }
  std::vector<int64_t> steps;
  std::vector<std::string> starts;
  for (const auto& j : json_lines(path)) {
    if (j["type"] == "step") steps.push_back(j["step"]);
    if (j["type"] == "event" && j["event"] == "start") starts.push_back(j["detail"]);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(starts,
            (std::vector<std::string>{"fresh start", "resumed from run/checkpoints/step-5.h5"}));
  const auto lines = json_lines(path);
  EXPECT_EQ(lines.back()["type"], "step");
  EXPECT_EQ(lines[lines.size() - 2]["resumed_from"], "run/checkpoints/step-5.h5");
  EXPECT_EQ(lines[lines.size() - 2]["world_size"], 2);
  EXPECT_EQ(lines[lines.size() - 2]["global_batch"], 8);
  EXPECT_EQ(lines[lines.size() - 2]["config_hash"], "abc");
  // The epoch line at step 5 belongs to the checkpoint: kept.
  EXPECT_EQ(
      std::count_if(lines.begin(), lines.end(), [](const auto& j) { return j["type"] == "epoch"; }),
      1);
  EXPECT_EQ(repair_metrics(dir.path("missing.jsonl"), 3).dropped(), 0u);
}

// A line torn by a killed writer cannot fuse with the next line of a fresh run either, and a
// line that does not parse is dropped and reported by its number, not silently (issue #25).
TEST(MetricsLog, ATornLastLineAndCorruptLinesAreDroppedAndReported) {
  test::TempDir dir;
  const std::string path = dir.path("metrics.jsonl");
  test::write_file(
      path, "{\"type\":\"step\",\"step\":1}\nnot json\n{\"type\":\"step\",\"step\":2}\n{\"ty");
  const MetricsRepair r = repair_metrics(path, -1);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(r.corrupt_lines, std::vector<size_t>{2});
  EXPECT_EQ(r.past_step, 0u);
  {
    MetricsLog log(path);
    log.event("stop", 2, "why");
  }
  const auto lines = json_lines(path);  // every line parses: nothing fused
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2]["event"], "stop");
  EXPECT_EQ(repair_metrics(path, -1).dropped(), 0u);  // nothing left to repair
}

TEST(MetricsLog, EpochLinesCarryTheCentroidAucPerLanguageAndItsMean) {
  test::TempDir dir;
  const std::string path = dir.path("metrics.jsonl");
  {
    MetricsLog log(path);
    CentroidAuc auc{{{"es", 0.75}, {"tr", std::nan("")}}, 0.75, 0.5};
    log.epoch(1, 5, 0.4, 0.4, true, 1.0, 0.5, &auc);
    log.epoch(2, 10, 0.4, 0.4, false, 2.0, 0.5);  // train.epoch_auc false: no field
  }
  const auto lines = json_lines(path);
  EXPECT_EQ(lines[0]["centroid_auc"]["es"], 0.75);
  EXPECT_TRUE(lines[0]["centroid_auc"]["tr"].is_null());
  EXPECT_EQ(lines[0]["centroid_auc_mean"], 0.75);
  EXPECT_FALSE(lines[1].contains("centroid_auc"));
}

TEST(Checkpoint, RoundTripsEveryField) {
  test::TempDir dir;
  Checkpoint c = sample();
  write_checkpoint(dir.path("c.h5"), c);
  Checkpoint back = read_checkpoint(dir.path("c.h5"));
  EXPECT_EQ(back.state.step, 12);
  EXPECT_EQ(back.state.pairs_consumed, 96);
  EXPECT_EQ(back.state.adam_iterations, 11);
  EXPECT_EQ(back.state.config_hash, "abc");
  EXPECT_DOUBLE_EQ(back.state.train_seconds, 3.5);
  EXPECT_EQ(back.state.accumulation_steps, 2);
  EXPECT_EQ(back.state.plan().global_batch, 8);
  EXPECT_EQ(back.state.plan().pairs_per_epoch, 40);
  EXPECT_EQ(back.state.plan().max_epochs, 3);
  EXPECT_DOUBLE_EQ(back.state.plan().lr_step_pairs, 80);
  EXPECT_EQ(back.state.lr_pairs, 88);
  for (const auto& [name, t] : c.params) EXPECT_TRUE(torch::equal(t, back.params.at(name))) << name;
  EXPECT_TRUE(torch::equal(c.adam_m, back.adam_m));
  EXPECT_FALSE(files::exists(dir.path("c.h5.tmp")));
}

TEST(Checkpoint, TruncatedOrCorruptedFilesAreRefusedClearly) {
  test::TempDir dir;
  Checkpoint c = sample();
  write_checkpoint(dir.path("c.h5"), c);
  std::string bytes = test::read_file(dir.path("c.h5"));
  test::write_file(dir.path("cut.h5"), bytes.substr(0, bytes.size() - 200));
  // Flip one bit inside the stored optimizer moments (bytes outside datasets may be padding).
  std::string v(static_cast<const char*>(c.adam_v.data_ptr()), c.adam_v.nbytes());
  size_t at = bytes.find(v);
  ASSERT_NE(at, std::string::npos);
  std::string flipped = bytes;
  flipped[at + 5] ^= 0x10;
  test::write_file(dir.path("flip.h5"), flipped);
  test::write_file(dir.path("text.h5"), "not a checkpoint");
  for (const char* name : {"cut.h5", "flip.h5", "text.h5", "missing.h5"}) {
    try {
      read_checkpoint(dir.path(name));
      ADD_FAILURE() << name << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("checkpoint " + dir.path(name) + " is unusable"),
                std::string::npos)
          << e.what();
    }
  }
}

Checkpoint of_lineage(const std::string& lineage) {
  Checkpoint c = sample();
  c.state.lineage = lineage;
  return c;
}

TEST(Checkpoint, ListingIsNewestFirstAndPruningKeepsTheNewest) {
  test::TempDir dir;
  files::create_directories(checkpoint_dir(dir.path()));
  for (int64_t step : {5, 10, 100, 20})
    write_checkpoint(step_checkpoint_path(dir.path(), step), of_lineage("run-a"));
  auto all = list_step_checkpoints(dir.path());
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0], step_checkpoint_path(dir.path(), 100));
  EXPECT_EQ(all[3], step_checkpoint_path(dir.path(), 5));
  EXPECT_EQ(checkpoint_lineage(all[0]), "run-a");
  prune_step_checkpoints(dir.path(), 2, "run-a");
  EXPECT_EQ(list_step_checkpoints(dir.path()),
            (std::vector<std::string>{step_checkpoint_path(dir.path(), 100),
                                      step_checkpoint_path(dir.path(), 20)}));
}

// Issue #12: pruning kept an earlier run's higher-numbered step files and deleted the one just
// written. It now removes only the pruning run's own older files, never the newest of all.
TEST(Checkpoint, PruningTouchesOnlyItsOwnRunsFilesAndNeverTheNewest) {
  test::TempDir dir;
  const std::string run = dir.path();
  files::create_directories(checkpoint_dir(run));
  auto path = [&](int64_t step) { return step_checkpoint_path(run, step); };
  for (int64_t step : {50, 60}) write_checkpoint(path(step), of_lineage("earlier"));
  write_checkpoint(path(40), of_lineage(""));  // a file without a lineage (formats 1 and 2)
  test::write_file(path(45), "not a checkpoint");
  for (int64_t step : {5, 10, 15}) write_checkpoint(path(step), of_lineage("this"));
  prune_step_checkpoints(run, 1, "this");
  EXPECT_EQ(list_step_checkpoints(run),
            (std::vector<std::string>{path(60), path(50), path(45), path(40), path(15)}));
  // Even asked to keep none, the newest file of all stays.
  prune_step_checkpoints(run, 0, "earlier");
  EXPECT_EQ(list_step_checkpoints(run),
            (std::vector<std::string>{path(60), path(45), path(40), path(15)}));
  prune_step_checkpoints(run, 0, "");  // no lineage: nothing is anyone's to prune
  EXPECT_EQ(list_step_checkpoints(run).size(), 4u);
}

// Issue #12 (item 8): every field of the state's one list reaches the file and comes back.
TEST(Checkpoint, EveryStateFieldRoundTrips) {
  test::TempDir dir;
  Checkpoint c = sample();
  c.state = test::distinct_state(3);
  // A step checkpoint (moments with their layout) is of the newest format, which holds every
  // field; best.h5 and the like stay format 3 (TheMomentsLayoutRoundTripsAndIsChecked).
  c.moment_layout = {"pool_ln.bias", "encoder.layer.0.attention.self.query.weight"};
  write_checkpoint(dir.path("c.h5"), c);
  EXPECT_EQ(test::field_texts(read_checkpoint(dir.path("c.h5")).state), test::field_texts(c.state));
  // A changed field changes the checksum: the state is covered by it.
  io::H5File f = io::H5File::open(dir.path("c.h5"));
  const std::string checksum = f.attr_string("checksum");
  f.close();
  c.state.lineage += "x";
  write_checkpoint(dir.path("d.h5"), c);
  EXPECT_NE(io::H5File::open(dir.path("d.h5")).attr_string("checksum"), checksum);
}

// Releases before format 6 hashed numbers cut to 6 significant digits: a sweep's train.lr_max
// of 17 digits, requeued across the upgrade, was refused as changed ("3.16228e-05 then,
// 3.1622776601683795e-05 now"). Their checkpoints still match that hash; a checkpoint of this
// release holds the exact one, so a change past the sixth digit is one.
TEST(Checkpoint, AnEarlierReleasesHashOfSixDigitsStillMatchesItsCheckpoints) {
  const Config config = load_config("", {"train.lr_max=3.1622776601683795e-05"});
  TrainState earlier;  // as read from a file of format 5: config_hash_form 1
  earlier.config_hash = config_result_hash_of_six_digits(config);
  ASSERT_NE(earlier.config_hash, config_result_hash(config));
  EXPECT_TRUE(config_hash_matches(earlier, config));
  EXPECT_TRUE(config_hash_matches(earlier, load_config("", {"train.lr_max=3.16228e-05"})));
  TrainState exact = earlier;
  exact.config_hash_form = kConfigHashOfExactNumbers;
  EXPECT_FALSE(config_hash_matches(exact, config));
  exact.config_hash = config_result_hash(config);
  EXPECT_TRUE(config_hash_matches(exact, config));
  EXPECT_FALSE(config_hash_matches(exact, load_config("", {"train.lr_max=3.1622777e-05"})));
  EXPECT_FALSE(config_hash_matches(exact, load_config("", {"train.lr_max=3.16228e-05"})));
}

// The refusal of such a run's resume with one real change also listed "train.lr_max: 3.16228e-05
// then, 3.1622776601683795e-05 now": its config.resolved.yaml holds the six digits.
TEST(Checkpoint, AnEarlierReleasesResolvedConfigShowsOnlyRealChanges) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  files::create_directories(checkpoint_dir(run));
  test::write_file(run + "/config.resolved.yaml", "train:\n  lr_max: 3.16228e-05\n");
  TrainState earlier;  // config_hash_form 1
  earlier.config_hash =
      config_result_hash_of_six_digits(load_config("", {"train.lr_max=3.1622776601683795e-05"}));
  const std::string path = step_checkpoint_path(run, 5);
  EXPECT_EQ(
      config_changes_since(path, earlier, load_config("", {"train.lr_max=3.1622776601683795e-05"})),
      std::vector<std::string>{});
  EXPECT_EQ(config_changes_since(
                path, earlier,
                load_config("", {"train.lr_max=3.1622776601683795e-05", "train.patience=7"})),
            (std::vector<std::string>{"train.patience: 9 then, 7 now"}));
}

// train.balance_ranks, dist.grad_dtype, run.threads, ... are not in the hash: a resume that
// changed one was accepted without a word, and no longer continued bit for bit.
TEST(Checkpoint, KeysThatChangeRoundingAreToldAfterTheirRun) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  files::create_directories(checkpoint_dir(run));
  test::write_file(run + "/config.resolved.yaml", "train:\n  balance_ranks: true\n");
  TrainState then;
  then.config_hash = config_result_hash(load_config("", {}));
  then.config_hash_form = kConfigHashOfExactNumbers;
  const std::string path = step_checkpoint_path(run, 5);
  const Config now =
      load_config("", {"train.balance_ranks=false", "dist.grad_dtype=bf16", "run.log_level=warn"});
  ASSERT_TRUE(config_hash_matches(then, now));
  EXPECT_EQ(number_changes_since(path, then, now),
            (std::vector<std::string>{"train.balance_ranks: true then, false now",
                                      "dist.grad_dtype: fp32 then, bf16 now"}));
  EXPECT_EQ(number_changes_since(path, then, load_config("", {"run.log_level=warn"})),
            std::vector<std::string>{});
  // Another run's file (its hash differs) tells nothing.
  test::write_file(run + "/config.resolved.yaml", "train:\n  patience: 3\n");
  EXPECT_EQ(number_changes_since(path, then, now), std::vector<std::string>{});
}

TEST(Checkpoint, NamesThatAreNotStepNumbersAreNeverTheNewest) {
  test::TempDir dir;
  files::create_directories(checkpoint_dir(dir.path()));
  for (int64_t step : {7, 30}) write_checkpoint(step_checkpoint_path(dir.path(), step), sample());
  for (const char* name : {"step-final.h5", "step-zzzzzzzzzz.h5", "step-.h5", "step-12.h5.bak",
                           "step-0000000030 (copy).h5"})
    test::write_file(checkpoint_dir(dir.path()) + "/" + name, "x");
  // An unpadded number still sorts by its value.
  write_checkpoint(checkpoint_dir(dir.path()) + "/step-9.h5", sample());
  EXPECT_EQ(list_step_checkpoints(dir.path()),
            (std::vector<std::string>{step_checkpoint_path(dir.path(), 30),
                                      checkpoint_dir(dir.path()) + "/step-9.h5",
                                      step_checkpoint_path(dir.path(), 7)}));
}

TEST(Checkpoint, OptimizerMomentsMustCoverEveryParameter) {
  test::TempDir dir;
  Checkpoint c = sample();
  c.adam_m = torch::randn({14});
  c.adam_v = torch::rand({14});
  write_checkpoint(dir.path("short.h5"), c);
  try {
    read_checkpoint(dir.path("short.h5"));
    FAIL() << "accepted moments for 14 of 15 parameters";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("expected one per parameter (15)"), std::string::npos)
        << e.what();
  }
}

// optimizer/layout names the parameters in the order of the moments' values: written, read,
// covered by the checksum (a file that lost it is corrupt, not taken for one without it),
// and refused when it does not name every parameter once. A file without it (written before it
// was recorded) loads with an empty layout.
TEST(Checkpoint, TheMomentsLayoutRoundTripsAndIsChecked) {
  test::TempDir dir;
  Checkpoint c = sample();
  c.moment_layout = {"pool_ln.bias", "encoder.layer.0.attention.self.query.weight"};
  write_checkpoint(dir.path("c.h5"), c);
  const Checkpoint back = read_checkpoint(dir.path("c.h5"));
  EXPECT_EQ(back.moment_layout, c.moment_layout);
  EXPECT_EQ(back.format, kCheckpointFormat);
  {
    io::H5File f = io::H5File::open(dir.path("c.h5"));
    EXPECT_EQ(f.read_strings("optimizer/layout"), c.moment_layout);
  }
  // Without a layout (moments of an unknown order) or without moments (best.h5): format 3, as
  // before the layout, so that earlier releases still read best.h5.
  Checkpoint unrecorded = c;
  unrecorded.moment_layout.clear();
  write_checkpoint(dir.path("none.h5"), unrecorded);
  EXPECT_TRUE(read_checkpoint(dir.path("none.h5")).moment_layout.empty());
  EXPECT_EQ(read_checkpoint(dir.path("none.h5")).format, 3);
  Checkpoint weights_only = c;
  weights_only.adam_m = weights_only.adam_v = torch::Tensor();
  write_checkpoint(dir.path("best.h5"), weights_only);
  EXPECT_TRUE(read_checkpoint(dir.path("best.h5"), false).moment_layout.empty());
  EXPECT_EQ(read_checkpoint(dir.path("best.h5"), false).format, 3);

  auto refusal = [&](const std::string& path) {
    try {
      read_checkpoint(path);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  for (const auto& [file, layout, says] :
       std::vector<std::tuple<std::string, std::vector<std::string>, std::string>>{
           {"twice.h5", {"pool_ln.bias", "pool_ln.bias"}, "names 'pool_ln.bias' twice"},
           {"foreign.h5",
            {"pool_ln.bias", "pool_ln.weight"},
            "names 'pool_ln.weight', which params/ lacks"},
           {"short.h5", {"pool_ln.bias"}, "names 1 parameters, params/ holds 2"}}) {
    Checkpoint bad = sample();
    bad.moment_layout = layout;
    write_checkpoint(dir.path(file), bad);
    const std::string message = refusal(dir.path(file));
    EXPECT_NE(
        message.find("checkpoint " + dir.path(file) + " is unusable: optimizer/layout " + says),
        std::string::npos)
        << message;
  }
  // A format 4 file whose layout is gone: refused, not read in format 3's order.
  test::write_checkpoint_without_layout(dir.path("stripped.h5"), c, 4);
  EXPECT_NE(refusal(dir.path("stripped.h5"))
                .find("holds optimizer moments but no optimizer/layout (their order)"),
            std::string::npos)
      << refusal(dir.path("stripped.h5"));
  // c.h5's layout under none.h5's checksum: the checksum covers the layout.
  auto checksum_of = [&](const std::string& path) {
    return io::H5File::open(path).attr_string("checksum");
  };
  const std::string own = checksum_of(dir.path("c.h5")), without = checksum_of(dir.path("none.h5"));
  ASSERT_NE(own, without);
  std::string bytes = test::read_file(dir.path("c.h5"));
  const size_t at = bytes.find(own);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, own.size(), without);
  test::write_file(dir.path("relabelled.h5"), bytes);
  EXPECT_NE(refusal(dir.path("relabelled.h5")).find("checksum mismatch"), std::string::npos);
}

TEST(Checkpoint, FormatOneFilesWithFnvChecksumsStillLoad) {
  test::TempDir dir;
  Checkpoint c = sample();
  test::write_legacy_checkpoint(dir.path("old.h5"), c, 1, 10.0);
  Checkpoint back = read_checkpoint(dir.path("old.h5"));
  EXPECT_EQ(back.state.step, 12);
  EXPECT_EQ(back.state.adam_iterations, 11);
  EXPECT_TRUE(torch::equal(c.adam_v, back.adam_v));
  EXPECT_TRUE(back.state.plan().empty());
  EXPECT_EQ(back.format, 1);
  // The same bytes under today's format number fail the (XXH3) checksum.
  write_checkpoint(dir.path("new.h5"), c);
  EXPECT_NE(test::read_file(dir.path("new.h5")), test::read_file(dir.path("old.h5")));
}

// Formats 1 and 2 were retired for training: their weights load (export, embed, predict), a
// resume from them is refused in one line that says what still works; so is a resume from a
// checkpoint that training did not write.
TEST(Checkpoint, TrainingResumesOnlyFromCheckpointsOfFormat3OrLaterThatTrainingWrote) {
  test::TempDir dir;
  Checkpoint c = sample();
  EXPECT_NO_THROW(check_resumable(c, "c.h5"));
  for (int format : {1, 2}) {
    const std::string path = dir.path("old" + std::to_string(format) + ".h5");
    test::write_legacy_checkpoint(path, c, format, 10.0);
    const Checkpoint old = read_checkpoint(path);
    EXPECT_EQ(old.format, format);
    const std::string e = test::error_of([&] { check_resumable(old, path); });
    EXPECT_NE(e.find("is of format " + std::to_string(format)), std::string::npos) << e;
    EXPECT_NE(e.find("weights still load in export"), std::string::npos) << e;
  }
  test::write_checkpoint_without_layout(dir.path("old3.h5"), c);  // the release before layouts
  const Checkpoint three = read_checkpoint(dir.path("old3.h5"));
  EXPECT_EQ(three.format, 3);
  EXPECT_TRUE(three.moment_layout.empty());
  EXPECT_TRUE(torch::equal(three.adam_v, c.adam_v));
  EXPECT_NO_THROW(check_resumable(three, dir.path("old3.h5")));
  Checkpoint weights_only = sample();
  weights_only.state.set_plan({});
  weights_only.state.lr_pairs = 0;
  write_checkpoint(dir.path("none.h5"), weights_only);
  const std::string e = test::error_of(
      [&] { check_resumable(read_checkpoint(dir.path("none.h5")), dir.path("none.h5")); });
  EXPECT_NE(e.find("was not written by training"), std::string::npos) << e;
}

TEST(Checkpoint, AnInvalidPlanIsRefusedAndNoPlanIsEmpty) {
  test::TempDir dir;
  Checkpoint none = sample();
  none.state.set_plan({});
  none.state.lr_pairs = 0;
  write_checkpoint(dir.path("none.h5"), none);
  EXPECT_TRUE(read_checkpoint(dir.path("none.h5")).state.plan().empty());
  Checkpoint c = sample();
  c.state.pairs_per_epoch = -40;
  write_checkpoint(dir.path("c.h5"), c);
  try {
    read_checkpoint(dir.path("c.h5"));
    FAIL() << "accepted a negative epoch";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("schedule in pairs is invalid"), std::string::npos)
        << e.what();
  }
}

TEST(Checkpoint, FormatTwoFilesStillLoadWithoutTheNewerFields) {
  test::TempDir dir;
  Checkpoint c = sample();
  test::write_legacy_checkpoint(dir.path("two.h5"), c, 2, 30.0);
  Checkpoint back = read_checkpoint(dir.path("two.h5"));
  EXPECT_EQ(back.state.step, 12);
  EXPECT_EQ(back.state.config_hash, "abc");
  EXPECT_DOUBLE_EQ(back.state.lr_step_size, 30);
  EXPECT_EQ(back.state.inputs, "");  // fields of format 3 keep their initial values
  EXPECT_EQ(back.state.lineage, "");
  EXPECT_TRUE(torch::equal(c.adam_m, back.adam_m));
  EXPECT_EQ(checkpoint_lineage(dir.path("two.h5")), "");
}

TEST(RunDir, AFreshStartIntoAUsedRunDirIsRefusedOrWithForceMovesItsFilesAside) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  files::create_directories(run + "/checkpoints");
  files::create_directories(run + "/log");
  // Logs, a resolved config and the untrained encoder's features (a start stopped before its
  // first checkpoint): nothing to refuse.
  test::write_file(run + "/log/rank-0.log", "log");
  test::write_file(run + "/config.resolved.yaml", "run: {}");
  test::write_file(run + "/features_before.h5", "features before");
  EXPECT_EQ(claim_run_dir(run, false, Claimant::kFreshStart), "");
  test::write_file(run + "/features.h5", "features");
  test::write_file(run + "/metrics.jsonl", "{}");
  test::write_file(run + "/my-notes.txt", "the user's own file");
  write_checkpoint(step_checkpoint_path(run, 10), sample());
  write_checkpoint(best_checkpoint_path(run), sample());
  EXPECT_EQ(earlier_run_results(run),
            (std::vector<std::string>{"checkpoints/step-0000000010.h5", "checkpoints/best.h5",
                                      "features.h5"}));
  try {
    claim_run_dir(run, false, Claimant::kFreshStart);
    FAIL() << "a used run.dir was claimed without --force";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("holds an earlier run"), std::string::npos) << what;
    EXPECT_NE(what.find("pass --resume auto"), std::string::npos) << what;
    EXPECT_NE(what.find("--force"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_TRUE(files::exists(best_checkpoint_path(run)));  // untouched

  const std::string previous = claim_run_dir(run, true, Claimant::kFreshStart);
  EXPECT_EQ(files::parent(previous), run);
  EXPECT_EQ(files::list(previous),
            (std::vector<std::string>{"checkpoints", "config.resolved.yaml", "features.h5",
                                      "features_before.h5", "log", "metrics.jsonl"}));
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(previous, 10)).state.step, 12);
  EXPECT_TRUE(earlier_run_results(run).empty());
  EXPECT_EQ(test::read_file(run + "/my-notes.txt"), "the user's own file");  // not the run's
  // Again within the same second: a folder of its own. A resume's claim leaves the logs.
  test::write_file(run + "/features.h5", "features");
  files::create_directories(run + "/log");
  const std::string again = claim_run_dir(run, true, Claimant::kResumeFoundNothing);
  EXPECT_NE(again, previous);
  EXPECT_TRUE(files::exists(again + "/features.h5"));
  EXPECT_TRUE(files::exists(run + "/log"));
}

// --resume auto that finds no step checkpoint, only best.h5 (a disk that filled at the first
// epoch's step checkpoint, after best.h5): the refusal says why best.h5 is no resume point and
// to add --force, not to pass the --resume auto the user passed.
TEST(RunDir, AResumeThatFindsOnlyBestH5SaysToAddForce) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  files::create_directories(run + "/checkpoints");
  write_checkpoint(best_checkpoint_path(run), sample());
  test::write_file(run + "/metrics.jsonl", "{}");
  const std::string e =
      test::error_of([&] { claim_run_dir(run, false, Claimant::kResumeFoundNothing); });
  EXPECT_EQ(e, "--resume auto: run.dir " + run +
                   " holds no step checkpoint to resume from, only an earlier run's results "
                   "(checkpoints/best.h5): best.h5 keeps the weights without the optimizer state "
                   "a resume needs, so pass --force as well to move them into " +
                   run + "/previous-<time>/ and start afresh");
  EXPECT_TRUE(files::exists(best_checkpoint_path(run)));
  files::remove_all(best_checkpoint_path(run));
  test::write_file(run + "/features.h5", "features");
  EXPECT_EQ(test::error_of([&] { claim_run_dir(run, false, Claimant::kResumeFoundNothing); }),
            "--resume auto: run.dir " + run +
                " holds no step checkpoint to resume from, only an earlier run's results "
                "(features.h5): pass --force as well to move them into " +
                run + "/previous-<time>/ and start afresh");
  EXPECT_FALSE(claim_run_dir(run, true, Claimant::kResumeFoundNothing)
                   .empty());  // with --force: moved aside
  EXPECT_TRUE(earlier_run_results(run).empty());
}

// A directory where the run writes a result made the training fail only when it ended (found
// by an adversarial run: run.dir/features.h5 a directory, with --resume auto).
TEST(RunDir, AnOutputThatIsADirectoryIsRefusedUpFront) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  files::create_directories(run + "/checkpoints");
  EXPECT_NO_THROW(check_run_outputs_are_files(run));
  for (const char* name : {"features.h5", "evaluation.json", "checkpoints/best.h5"}) {
    files::create_directories(run + "/" + name);
    const std::string what = test::error_of([&] { check_run_outputs_are_files(run); });
    EXPECT_NE(what.find(run + "/" + name + " is a directory, expected a file"), std::string::npos)
        << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    std::filesystem::remove(run + "/" + name);
  }
}

TEST(RunInputs, FileIdentitiesMatchCopiesAndSeeChangesAtEitherEnd) {
  test::TempDir dir;
  std::string big(3 << 20, 'a');  // 3 MiB: its first and last MiB are hashed
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 23);
  test::write_file(dir.path("a"), big);
  test::write_file(dir.path("copy"), big);
  EXPECT_EQ(file_identity(dir.path("a")), file_identity(dir.path("copy")));
  EXPECT_EQ(file_identity(dir.path("a")).rfind(std::to_string(big.size()) + ":", 0), 0u);
  std::string last = big;
  last[last.size() - 10] = '!';
  test::write_file(dir.path("last"), last);
  EXPECT_NE(file_identity(dir.path("last")), file_identity(dir.path("a")));
  test::write_file(dir.path("longer"), big + "x");
  EXPECT_NE(file_identity(dir.path("longer")), file_identity(dir.path("a")));
  test::write_file(dir.path("small"), "tiny");
  EXPECT_NE(file_identity(dir.path("small")), file_identity(dir.path("a")));
  EXPECT_THROW(file_identity(dir.path("missing")), std::runtime_error);

  const std::string then = "data.train_csv=10:aa\ndata.multilingual_csv=20:bb\n";
  EXPECT_EQ(describe_inputs_change(then, then), "");
  EXPECT_EQ(describe_inputs_change(then, "data.train_csv=10:aa\ndata.multilingual_csv=21:cc\n"),
            "data.multilingual_csv differs: 20 bytes, hash bb in the checkpoint; now 21 bytes, "
            "hash cc");
  EXPECT_EQ(describe_inputs_change(then, then + "data.test_csv=5:dd\n"),
            "data.test_csv differs: none in the checkpoint; now 5 bytes, hash dd");
}

TEST(FlatParameters, ParametersAndGradientsAreViewsOfTwoBuffers) {
  model::XlmrConfig c;
  c.vocab_size = 50, c.hidden_size = 8, c.num_hidden_layers = 1, c.num_attention_heads = 2;
  c.intermediate_size = 16, c.max_position_embeddings = 20;
  model::SiameseEncoder m(c);
  model::init_weights(*m, 1);
  auto before = model::named_parameters(*m);
  std::map<std::string, torch::Tensor> copies;
  for (auto& [n, t] : before) copies[n] = t.detach().clone();
  FlatParameters flat(*m);
  EXPECT_EQ(flat.slots().numel(), kStepSlots);  // the named scalars sit behind the gradients
  EXPECT_EQ(flat.slot(StepSlot::kTokens).data_ptr<float>(),
            flat.grads().data_ptr<float>() + flat.size() + 1);
  const char* base = static_cast<const char*>(flat.params().data_ptr());
  for (auto& [name, p] : model::named_parameters(*m)) {
    EXPECT_TRUE(torch::equal(p, copies.at(name))) << name;  // values kept
    const char* ptr = static_cast<const char*>(p.data_ptr());
    EXPECT_GE(ptr, base);
    EXPECT_LT(ptr, base + flat.size() * 4);
  }
  // Backward accumulates straight into the flat gradient buffer.
  torch::Tensor ids = torch::tensor({0, 5, 6, 2, 1}, torch::kLong).view({1, 5});
  m->forward(ids).sum().backward();
  flat.collect_grads();
  double direct = 0;
  for (auto& [name, p] : model::named_parameters(*m)) direct += p.grad().abs().sum().item<double>();
  EXPECT_NEAR(flat.grads().abs().sum().item<double>(), direct, 1e-6 * direct);
  EXPECT_GT(direct, 0);
  flat.zero_grads();
  for (auto& [name, p] : model::named_parameters(*m))
    EXPECT_EQ(p.grad().abs().sum().item<double>(), 0) << name;
}

// The fused projection's groups (model: adjacent_parameters) are laid out back to back in their
// order, at the place of their first member in reverse registration order; everything else keeps
// that order. Values stored over one layout are read back into another by name.
TEST(FlatParameters, AdjacentGroupsLieBackToBackAndValuesMoveBetweenLayoutsByName) {
  model::XlmrConfig c;
  c.vocab_size = 50, c.hidden_size = 8, c.num_hidden_layers = 2, c.num_attention_heads = 2;
  c.intermediate_size = 16, c.max_position_embeddings = 20;
  model::SiameseEncoder grouped_model(c), plain_model(c);
  const auto groups = grouped_model->adjacent_parameters();
  ASSERT_EQ(groups.size(), 4u);  // per layer: the weights, the biases
  EXPECT_EQ(groups[1], (std::vector<std::string>{"encoder.layer.0.attention.self.query.bias",
                                                 "encoder.layer.0.attention.self.key.bias",
                                                 "encoder.layer.0.attention.self.value.bias"}));
  FlatParameters grouped(*grouped_model, groups), plain(*plain_model);
  EXPECT_EQ(plain.names(), plain.registration_order());
  EXPECT_EQ(grouped.registration_order(), plain.registration_order());
  EXPECT_NE(grouped.names(), plain.names());
  std::map<std::string, const FlatParameters::Entry*> entry;
  for (const auto& e : grouped.entries()) entry[e.name] = &e;
  for (const auto& group : groups)
    for (size_t i = 1; i < group.size(); ++i)
      EXPECT_EQ(entry.at(group[i])->offset,
                entry.at(group[i - 1])->offset + entry.at(group[i - 1])->numel)
          << group[i];
  // Outside the groups the order is the plain one.
  std::vector<std::string> rest_grouped, rest_plain;
  std::set<std::string> in_group;
  for (const auto& group : groups) in_group.insert(group.begin(), group.end());
  for (const auto& n : grouped.names())
    if (!in_group.count(n)) rest_grouped.push_back(n);
  for (const auto& n : plain.names())
    if (!in_group.count(n)) rest_plain.push_back(n);
  EXPECT_EQ(rest_grouped, rest_plain);

  // A value per element naming its parameter and position, in the plain layout, read into the
  // grouped one: every parameter's slice holds its own values.
  torch::Tensor in_plain = torch::empty({plain.size()});
  for (size_t i = 0; i < plain.entries().size(); ++i) {
    const auto& e = plain.entries()[i];
    in_plain.narrow(0, e.offset, e.numel)
        .copy_(torch::arange(e.numel, torch::kFloat) + 1000.0f * static_cast<float>(i));
  }
  const torch::Tensor in_grouped = grouped.rearranged(in_plain, plain.names());
  for (size_t i = 0; i < plain.entries().size(); ++i) {
    const auto& e = plain.entries()[i];
    EXPECT_TRUE(torch::equal(in_grouped.narrow(0, entry.at(e.name)->offset, e.numel),
                             in_plain.narrow(0, e.offset, e.numel)))
        << e.name;
  }
  EXPECT_TRUE(torch::equal(plain.rearranged(in_grouped, grouped.names()), in_plain));
  EXPECT_TRUE(torch::equal(grouped.rearranged(in_grouped, grouped.names()), in_grouped));

  // A layout that is not this model's is refused, saying how.
  std::vector<std::string> twice = plain.names();
  twice[1] = twice[0];
  std::vector<std::string> shorter = plain.names();
  shorter.pop_back();
  std::vector<std::string> foreign = plain.names();
  foreign[2] = "encoder.layer.9.output.dense.weight";
  auto message = [&](const std::vector<std::string>& order, const torch::Tensor& values) {
    try {
      grouped.rearranged(values, order);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(twice, in_plain).find("twice or a parameter the model lacks"),
            std::string::npos);
  EXPECT_NE(message(foreign, in_plain).find("'encoder.layer.9.output.dense.weight' twice or"),
            std::string::npos);
  EXPECT_NE(message(shorter, in_plain).find("lists"), std::string::npos);
  EXPECT_NE(message(plain.names(), in_plain.narrow(0, 1, plain.size() - 1))
                .find("values, the model's parameters"),
            std::string::npos);
}

// What a CUDA graph's capture is checked against: a gradient autograd replaced (not
// accumulated into its slot) is named, and collect_grads puts it back.
TEST(FlatParameters, AGradientThatLeftItsSlotIsNamed) {
  model::XlmrConfig c;
  c.vocab_size = 50, c.hidden_size = 8, c.num_hidden_layers = 1, c.num_attention_heads = 2;
  c.intermediate_size = 16, c.max_position_embeddings = 20;
  model::SiameseEncoder m(c);
  model::init_weights(*m, 1);
  FlatParameters flat(*m);
  EXPECT_EQ(flat.stray_grad(), "");
  m->forward(torch::tensor({0, 5, 6, 2, 1}, torch::kLong).view({1, 5})).sum().backward();
  EXPECT_EQ(flat.stray_grad(), "");  // backward accumulated in place
  torch::Tensor p = flat.parameters()[3];
  p.mutable_grad() = torch::ones_like(p);
  EXPECT_EQ(flat.stray_grad(), flat.entries()[3].name);
  flat.collect_grads();
  EXPECT_EQ(flat.stray_grad(), "");
  EXPECT_EQ(flat.grads()
                .narrow(0, flat.entries()[3].offset, flat.entries()[3].numel)
                .sum()
                .item<double>(),
            static_cast<double>(flat.entries()[3].numel));
}

// Ctrl-C is a stop request as SIGTERM is, except in a process started with SIGINT ignored
// (`nohup`, `cmd &` in a script), which keeps ignoring it.
TEST(Signals, CtrlCIsAStopRequestUnlessItWasIgnoredAtTheStart) {
  test::StopSignalScope scope;
  std::signal(SIGINT, SIG_DFL);  // whatever this test binary was started with
  install_stop_handlers();
  std::raise(SIGINT);
  EXPECT_TRUE(stop_requested());
  EXPECT_EQ(stop_signal_number(), SIGINT);
  clear_stop_request();

  std::signal(SIGINT, SIG_IGN);
  install_stop_handlers();
  std::raise(SIGINT);
  EXPECT_FALSE(stop_requested());
}

// Both warning signals ask for a stop, whichever dist.stop_signal names: the other one, left to
// its default action, ended a rank without a checkpoint (scancel --signal=USR1 to a job that
// configured USR2).
TEST(Signals, BothWarningSignalsAndSigtermAreStopRequests) {
  test::StopSignalScope scope;
  install_stop_handlers();
  for (int sig : {SIGUSR1, SIGUSR2, SIGTERM}) {
    std::raise(sig);
    EXPECT_TRUE(stop_requested()) << sig;
    EXPECT_EQ(stop_signal_number(), sig);
    clear_stop_request();
  }
}

// The stop names the first signal, and a second Ctrl-C a second or more after the first ends
// the process at once (a set-up or an export can take minutes); one within the second is the
// same Ctrl-C delivered twice (timeout(1) sends it to its child and to the child's group). The
// child reports each check through a pipe, so a Ctrl-C that ended it too early shows.
TEST(Signals, TheFirstSignalIsKeptAndALaterSecondCtrlCEndsTheProcess) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // async-signal-safe calls only, in a fork of a threaded process
    ::close(report[0]);
    std::signal(SIGINT, SIG_DFL);
    install_stop_handlers();
    std::raise(SIGINT);
    std::raise(SIGTERM);
    const char first = stop_signal_number() == SIGINT ? 'f' : 'F';
    if (::write(report[1], &first, 1) != 1) ::_exit(3);
    std::raise(SIGINT);  // the same Ctrl-C again: still a stop request
    const char again = stop_signal_number() == SIGINT ? 'a' : 'A';
    if (::write(report[1], &again, 1) != 1) ::_exit(3);
    const timespec later{1, 200 * 1000 * 1000};
    ::nanosleep(&later, nullptr);
    std::raise(SIGINT);
    ::_exit(5);  // not reached when the second Ctrl-C ended the process
  }
  ::close(report[1]);
  std::string reported;
  char c = 0;
  while (::read(report[0], &c, 1) == 1) reported += c;
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(reported, "fa") << "f: the first signal is kept, a: a Ctrl-C within the second is "
                               "the same one (capitals: the check failed; missing: it ended)";
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

}  // namespace
}  // namespace sx::train

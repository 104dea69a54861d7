// Multi-rank training under `mpirun -np 2` (CTest label "mpi"): replicas stay identical,
// resume is bitwise, every stop rule stops both ranks at the same step with a loadable
// checkpoint, and a dead rank ends the job.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <numeric>
#include <set>

#include "core/strings.h"
#include "data/jigsaw.h"
#include "fixtures.h"
#include "io/hdf5.h"
#include "model/schedule.h"
#include "train/checkpoint.h"
#include "train/legacy_checkpoint.h"

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

// The step lines of metrics.jsonl (of every run that appended to it), by step.
std::map<int64_t, nlohmann::json> metric_lines(const std::string& run_dir,
                                               const std::string& type) {
  std::map<int64_t, nlohmann::json> out;
  std::istringstream lines(test::read_file(run_dir + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == type) out[j["step"].get<int64_t>()] = j;
  }
  return out;
}

// train.accumulation_steps: W ranks x A micro-batches of P pairs take the same global batch
// as W x A ranks, all-reduce once per step, and so take the same steps (the fixture model has
// no dropout). Only the summation order differs.
TEST(TrainMpi, AccumulatedMicroBatchesEqualMoreRanks) {
  TempDir acc4, four, two_by_two;
  const std::string steps = " train.pairs_per_rank=8 train.max_steps=5";
  auto a = test::train(1, test::train_config(acc4.path()), "train.accumulation_steps=4" + steps);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = test::train(4, test::train_config(four.path()), steps);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto c =
      test::train(2, test::train_config(two_by_two.path()), "train.accumulation_steps=2" + steps);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const std::string acc_run = acc4.path("run"), four_run = four.path("run"),
                    mixed_run = two_by_two.path("run");
  EXPECT_LT(max_param_diff(params_at(acc_run, 5), params_at(four_run, 5)), 1e-6);
  EXPECT_LT(max_param_diff(params_at(acc_run, 5), params_at(mixed_run, 5)), 1e-6);
  // Adam's update hardly sees the gradient's scale; its first moment does: the accumulated
  // gradient is the global batch's mean, not the sum over micro-batches.
  const torch::Tensor m_acc = read_checkpoint(step_checkpoint_path(acc_run, 5)).adam_m,
                      m_four = read_checkpoint(step_checkpoint_path(four_run, 5)).adam_m;
  const double m_scale = m_four.abs().max().item<double>(),
               m_diff = (m_acc - m_four).abs().max().item<double>();
  char relative[32];
  std::snprintf(relative, sizeof relative, "%.3g", m_diff / m_scale);
  RecordProperty("adam_m_relative_diff", relative);
  EXPECT_GT(m_scale, 0);
  EXPECT_LT(m_diff, 1e-5 * m_scale);
  for (const std::string& run : {acc_run, four_run, mixed_run}) {
    const Checkpoint k = read_checkpoint(step_checkpoint_path(run, 5));
    EXPECT_EQ(k.state.pairs_consumed, 5 * 32) << run;  // 5 steps of the global batch of 32
    EXPECT_EQ(k.state.epoch, 1) << run;                // steps_per_epoch 5: one epoch
    EXPECT_EQ(k.state.plan().pairs_per_epoch, 5 * 32) << run;
  }
  // The same global batches: the same losses, step by step.
  auto la = metric_lines(acc_run, "step"), lb = metric_lines(four_run, "step");
  ASSERT_EQ(la.size(), 5u);
  ASSERT_EQ(lb.size(), 5u);
  for (int64_t step = 1; step <= 5; ++step)
    EXPECT_NEAR(la[step]["loss"].get<double>(), lb[step]["loss"].get<double>(), 1e-6) << step;
  EXPECT_NE(test::read_file(acc_run + "/log/rank-0.log").find("x 4 accumulation steps"),
            std::string::npos);
  // With accumulation the 2-rank run still reduced during (the last micro-batch's) backward.
  const std::string log = test::read_file(mixed_run + "/log/rank-0.log");
  const auto line = log.substr(log.find("all-reduce of step 1: "));
  EXPECT_EQ(line.find(" 0 launched during backward"), std::string::npos) << line;
}

// With data.share_node two ranks of one node load, split and build the pairs once into shared
// windows, agree on the pair sequence and train the same weights as one rank that loaded
// everything itself.
TEST(TrainMpi, RanksOfANodeShareTheCorporaAndTrainAsOneRank) {
  TempDir one, two;
  auto r1 =
      test::train(1, test::train_config(one.path()), "train.pairs_per_rank=8 train.max_steps=5");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  auto r = test::train(2, test::train_config(two.path()),
                       "train.pairs_per_rank=4 train.max_steps=5 data.share_node=true");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(max_param_diff(params_at(one.path("run"), 5), params_at(two.path("run"), 5)), 1e-6);
  const std::string log0 = test::read_file(two.path("run/log/rank-0.log"));
  const std::string log1 = test::read_file(two.path("run/log/rank-1.log"));
  EXPECT_NE(log0.find("corpora and pairs built once per node (2 ranks share"), std::string::npos)
      << log0;
  EXPECT_EQ(log1.find("rows read"), std::string::npos) << log1;  // rank 1 loaded nothing
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

// A run resumed with another global batch keeps the schedule in pairs (issue #12): epochs of
// 20 pairs (5 steps of 4), a learning-rate half-cycle of 20 pairs, train.max_steps=10 = pair
// 40. Three steps of 4 pairs on 1 rank, then steps of 8 pairs on 2 ranks: the epochs end with
// the steps reaching pairs 20 and 44 (steps 4 and 7), the cap stops at step 7, and each
// step's rate is the schedule at the pairs of the updates before it.
TEST(TrainMpi, AResumeOnMoreRanksFollowsThePairCount) {
  TempDir dir;
  const auto config =
      test::train_config(dir.path(), "  lr_step_epochs: 1\n  lr_min: 1e-5\n  lr_max: 1e-4\n");
  const std::string run = dir.path("run");
  auto first = test::train(1, config, "train.max_steps=3");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto second = test::train(2, config, "train.max_steps=10 --resume auto");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const std::string log = test::read_file(run + "/log/rank-0.log");
  EXPECT_NE(log.find("resuming with a global batch of 8 pairs (2 ranks x 4 pairs x 1 "
                     "accumulation steps) instead of the checkpoint's 4"),
            std::string::npos)
      << log;
  // The log holds both runs: the second one's stop comes last.
  EXPECT_NE(log.rfind("training stopped at step 7 (after epoch 2): train.max_steps reached"),
            std::string::npos)
      << log;

  auto epochs = metric_lines(run, "epoch");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs.begin()->first, 4);
  EXPECT_EQ(epochs.rbegin()->first, 7);
  auto steps = metric_lines(run, "step");
  ASSERT_EQ(steps.size(), 7u);
  const model::Triangular2 schedule{1e-5, 1e-4, 20};
  const int64_t lr_pairs_before[] = {0, 4, 8, 12, 20, 28, 36};
  const int64_t epoch_of_step[] = {0, 0, 0, 0, 1, 1, 1};  // epochs completed before the step
  for (int64_t step = 1; step <= 7; ++step) {
    const auto& j = steps[step];
    EXPECT_NEAR(j["lr"].get<double>(), schedule(double(lr_pairs_before[step - 1])), 1e-15)
        << "step " << step;
    EXPECT_EQ(j["epoch"].get<int64_t>(), epoch_of_step[step - 1]) << "step " << step;
  }
  const Checkpoint last = read_checkpoint(step_checkpoint_path(run, 7));
  EXPECT_EQ(last.state.pairs_consumed, 44);
  EXPECT_EQ(last.state.lr_pairs, 44);
  EXPECT_EQ(last.state.epoch, 2);
  EXPECT_EQ(last.state.world_size, 2);
  EXPECT_EQ(last.state.plan().global_batch, 4);
  EXPECT_EQ(last.state.plan().pairs_per_epoch, 20);
  EXPECT_DOUBLE_EQ(last.state.plan().lr_step_pairs, 20);
}

// train.checkpoint_every by steps: besides the epoch end (5) and the stop (8), every 3 steps.
TEST(TrainMpi, CheckpointEveryNStepsWritesThoseSteps) {
  TempDir dir;
  auto r = test::train(2, test::train_config(dir.path()),
                       "train.checkpoint_every=3 train.keep_checkpoints=100 train.max_steps=8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run = dir.path("run");
  std::vector<std::string> expected;
  for (int64_t step : {8, 6, 5, 3}) expected.push_back(step_checkpoint_path(run, step));
  EXPECT_EQ(list_step_checkpoints(run), expected);
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run, 3)).state.step, 3);
}

// train.checkpoint_every by duration: rank 0's clock decides, every rank learns it at the
// step boundary. No epoch ends and no stop until a checkpoint exists, so it is an interval one.
TEST(TrainMpi, CheckpointEveryDurationWritesCheckpointsBetweenEpochEnds) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path(),
                          "train.steps_per_epoch=1000000 train.checkpoint_every=1s "
                          "train.keep_checkpoints=100");
  const std::string run_dir = dir.path("run");
  const long pid = test::wait_for_rank_pid(run_dir, 1);
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  ASSERT_TRUE(test::wait_until([&] { return !list_step_checkpoints(run_dir).empty(); }, 120))
      << "no interval checkpoint within 120 s";
  ::kill(static_cast<pid_t>(pid), SIGTERM);
  EXPECT_EQ(run.wait(60), 75) << test::read_file(dir.path("out"));
  const long stopped = test::stopped_step(run_dir, 0);
  EXPECT_EQ(test::stopped_step(run_dir, 1), stopped);
  const auto all = list_step_checkpoints(run_dir);
  EXPECT_GE(all.size(), 2u);  // the interval one(s) and the stop's
  EXPECT_EQ(all.front(), step_checkpoint_path(run_dir, stopped));
  EXPECT_NE(test::read_file(run_dir + "/log/rank-0.log").find("(train.checkpoint_every 1s)"),
            std::string::npos);
}

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
  const long pid = test::wait_for_rank_pid(run_dir, 1);
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  // Let it train a few steps first (on a busy machine the start can take a while).
  ASSERT_GE(test::wait_for_steps(run_dir, 3), 3u) << test::read_file(dir.path("out"));
  ::kill(static_cast<pid_t>(pid), SIGTERM);
  int rc = run.wait(60);
  EXPECT_EQ(rc, 75) << test::read_file(dir.path("out"));
  long s0 = test::stopped_step(run_dir, 0), s1 = test::stopped_step(run_dir, 1);
  EXPECT_GT(s0, 0);
  EXPECT_EQ(s0, s1);
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run_dir, s0)).state.step, s0);
}

// Ctrl-C to one process without mpirun: it ended at once with 130 and no checkpoint; now it
// stops as for SIGTERM, naming the signal, and exits 75.
TEST(TrainMpi, CtrlCWithoutMpirunCheckpointsAndExits75) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(0, config, dir.path());
  const std::string run_dir = dir.path("run");
  ASSERT_GE(test::wait_for_steps(run_dir, 3), 3u) << test::read_file(dir.path("out"));
  // To the process itself (the shell and timeout(1) of a terminal would pass it on).
  const long pid = test::rank_pid(run_dir, 0);
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGINT), 0);
  EXPECT_EQ(run.wait(60), 75) << test::read_file(dir.path("out"));
  const long s0 = test::stopped_step(run_dir, 0);
  EXPECT_GT(s0, 0) << test::read_file(dir.path("out"));
  EXPECT_EQ(read_checkpoint(step_checkpoint_path(run_dir, s0)).state.step, s0);
  EXPECT_NE(test::read_file(run_dir + "/log/rank-0.log")
                .find("stopped by signal 2; checkpoint written, exiting with 75"),
            std::string::npos);
}

// run.log_level error kept from the terminal the lines launch/run.sh reads (the layout, the stop
// after the checkpoint, the job-time line at the end): the launcher took a stop for a failure.
TEST(TrainMpi, TheLinesTheLauncherReadsAreShownAtAnyLogLevel) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  auto done = test::train(2, config, "run.log_level=error train.max_steps=2");
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(done.err.find("[0/2] [info] layout: "), std::string::npos) << done.err;
  EXPECT_NE(done.err.find("[0/2] [info] job time "), std::string::npos) << done.err;
  EXPECT_EQ(done.err.find("[0/2] [info] rank "), std::string::npos) << done.err;  // else quiet

  TempDir other;
  test::BackgroundRun run(0, test::train_config(other.path(), "  max_epochs: 100000\n"),
                          other.path(), "run.log_level=error");
  ASSERT_GE(test::wait_for_steps(other.path("run"), 2), 2u) << test::read_file(other.path("out"));
  const long timeout_pid = std::stol(test::read_file(run.pid_file));  // passes SIGTERM on
  ASSERT_EQ(::kill(static_cast<pid_t>(timeout_pid), SIGTERM), 0);
  EXPECT_EQ(run.wait(60), 75) << test::read_file(other.path("out"));
  EXPECT_NE(test::read_file(other.path("out"))
                .find("[warning] stopped by signal 15; checkpoint written, exiting with 75"),
            std::string::npos)
      << test::read_file(other.path("out"));
}

// `train ... 2>&1 | head` ended the run with SIGPIPE (exit 141) once head had its lines.
TEST(TrainMpi, AClosedTerminalPipeDoesNotEndTheRun) {
  TempDir dir;
  const std::string config = test::train_config(dir.path());
  const std::string script = dir.write(
      "pipe.sh", "'" + std::string(SX_BINARY) + "' train --config '" + config +
                     "' train.max_steps=3 2>&1 | head -c 1 >/dev/null\nexit ${PIPESTATUS[0]}\n");
  auto r = test::run_command("bash '" + script + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(files::exists(dir.path("run/features.h5")));
  EXPECT_NE(test::read_file(dir.path("run/log/rank-0.log")).find("job time"), std::string::npos);
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

  // A garbage file newer still: --resume auto skips both, one warning line each saying why,
  // and takes step 5.
  const std::string garbage = step_checkpoint_path(run, 11);
  test::write_file(garbage, "\x89HDF\r\n\x1a\n garbage");
  auto fallback = test::train(2, config, "train.max_steps=12 --resume auto");
  EXPECT_EQ(fallback.exit_code, 0) << fallback.err;
  const std::string log = test::read_file(run + "/log/rank-0.log");
  auto skip_lines = [&](const std::string& path) {
    int n = 0;
    for (const auto& line : split(log, '\n'))
      if (line.find("checkpoint " + path + " is unusable: ") != std::string::npos &&
          line.find("; trying the previous one") != std::string::npos)
        ++n;
    return n;
  };
  EXPECT_EQ(skip_lines(garbage), 1) << log;
  EXPECT_EQ(skip_lines(newest), 1) << log;
  EXPECT_NE(log.find("resumed from " + step_checkpoint_path(run, 5)), std::string::npos) << log;
}

TEST(TrainMpi, AKilledRankEndsTheJobWithin30Seconds) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path());
  const std::string run_dir = dir.path("run");
  const long pid = test::wait_for_rank_pid(run_dir, 1);
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  // Killed while training (both ranks past their set-up), not while starting.
  ASSERT_GE(test::wait_for_steps(run_dir, 1), 1u) << test::read_file(dir.path("out"));
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

TEST(TrainMpi, MetricsHaveStartStepAndEpochLinesAndProgressLinesWithoutCarriageReturns) {
  TempDir dir;
  // stderr is a file here, not a terminal: progress comes as log lines (the first after step
  // 1, then every run.progress_interval), never as a bar redrawn with carriage returns.
  auto r = test::train(2, test::train_config(dir.path()),
                       "train.max_steps=10 run.progress_interval=0.1s run.max_duration=1h");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("progress: step 1 (epoch 1/"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("of run.max_duration left"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  size_t steps = 0, epochs = 0, starts = 0;
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
      // train.epoch_auc (default true): the cross-lingual score of the synthetic languages.
      ASSERT_TRUE(j["centroid_auc"].is_object()) << line;
      EXPECT_GE(j["centroid_auc"].size(), 2u) << line;
      for (const auto& [language, auc] : j["centroid_auc"].items()) {
        ASSERT_TRUE(auc.is_number()) << language;
        EXPECT_GE(auc.get<double>(), 0) << language;
        EXPECT_LE(auc.get<double>(), 1) << language;
      }
      EXPECT_GE(j["centroid_auc_mean"].get<double>(), 0);
      EXPECT_LE(j["centroid_auc_mean"].get<double>(), 1);
    } else if (j["type"] == "event" && j["event"] == "start") {
      ++starts;
      EXPECT_EQ(j["step"], 0);
      EXPECT_TRUE(j["resumed_from"].is_null());
      EXPECT_EQ(j["world_size"], 2);
      EXPECT_EQ(j["global_batch"], 8);
      EXPECT_FALSE(j["config_hash"].get<std::string>().empty());
    }
  }
  EXPECT_EQ(steps, 10u);
  EXPECT_EQ(epochs, 2u);
  EXPECT_EQ(starts, 1u);
  EXPECT_NE(test::read_file(dir.path("run/log/rank-0.log")).find("centroid AUC "),
            std::string::npos);
}

// A run resumed from an older checkpoint than its last step: the steps it repeats appear
// once in metrics.jsonl (the later lines of the first run are dropped), after a start line.
TEST(TrainMpi, MetricsAfterAResumeListEachStepOnce) {
  TempDir dir;
  auto config = test::train_config(dir.path(), "  epoch_auc: false\n");
  auto first = test::train(2, config, "train.max_steps=10");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string run = dir.path("run");
  auto resumed =
      test::train(2, config, "train.max_steps=12 --resume " + step_checkpoint_path(run, 5));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::vector<int64_t> steps, epochs;
  std::vector<nlohmann::json> starts;
  std::istringstream lines(test::read_file(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") steps.push_back(j["step"]);
    if (j["type"] == "epoch") epochs.push_back(j["epoch"]);
    if (j["type"] == "event" && j["event"] == "start") starts.push_back(j);
    if (j["type"] == "epoch") {
      EXPECT_FALSE(j.contains("centroid_auc"));  // switched off
    }
  }
  std::vector<int64_t> expected(12);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(steps, expected);
  EXPECT_EQ(epochs, (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1]["step"], 5);
  EXPECT_EQ(starts[1]["resumed_from"], step_checkpoint_path(run, 5));
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

namespace sx::train {
namespace {

// Issue #12: `train` without --resume into a run.dir holding an earlier run overwrote its
// best.h5 and features. Now it is refused on both ranks with one line; --force moves the
// earlier run's files into run.dir/previous-<time>/ and trains; `export` does not overwrite
// features.h5 without --force either.
TEST(TrainMpi, AFreshRunIntoAUsedRunDirIsRefusedAndForceMovesTheOldFilesAside) {
  TempDir dir;
  const std::string config = test::train_config(dir.path()), run = dir.path("run");
  auto first = test::train(2, config, "train.max_steps=5 export.before_training=false");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string old_step = test::read_file(step_checkpoint_path(run, 5));
  const std::string old_features = test::read_file(run + "/features.h5");
  const std::string old_lineage = checkpoint_lineage(step_checkpoint_path(run, 5));
  EXPECT_FALSE(old_lineage.empty());

  const auto start = std::chrono::steady_clock::now();
  auto refused = test::train(2, config, "train.max_steps=5 export.before_training=false");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 60);
  EXPECT_EQ(test::count_occurrences(refused.err, "holds an earlier run"), 1u) << refused.err;
  EXPECT_NE(refused.err.find("pass --resume auto to continue it, or --force"), std::string::npos)
      << refused.err;
  EXPECT_EQ(test::read_file(step_checkpoint_path(run, 5)), old_step);
  EXPECT_EQ(test::read_file(run + "/features.h5"), old_features);

  // --force first checks what the start of each input tells: a wrong file named in the
  // configuration is refused with the earlier run still in place.
  const std::string small_vocab = test::write_dir_file(
      dir.path(), "small-vocab.json",
      R"({"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 70, "type_vocab_size": 1, "pad_token_id": 1,
    "layer_norm_eps": 1e-5, "hidden_act": "gelu"})");
  const std::pair<std::string, std::string> wrong_inputs[] = {
      {"data.train_csv=" + files::join(test::synth_data_dir(), "test.csv"),
       "missing column 'comment_text'"},
      {"model.pretrained= model.config=" + small_vocab, "the model's vocabulary has 100"}};
  for (const auto& [wrong, said] : wrong_inputs) {
    auto checked = test::train(2, config, wrong + " train.max_steps=5 --force");
    EXPECT_EQ(checked.exit_code, 2) << wrong << "\n" << checked.err;
    EXPECT_NE(checked.err.find(said), std::string::npos) << wrong << "\n" << checked.err;
    EXPECT_EQ(test::read_file(step_checkpoint_path(run, 5)), old_step) << wrong;
    for (const auto& name : files::list(run))
      EXPECT_NE(name.rfind("previous-", 0), 0u) << wrong << ": " << name;
  }

  // predict's outputs of the earlier run go aside too (a fresh run kept its submission.csv).
  files::write_file(run + "/submission.csv", "id,toxic\n1,0.5\n");
  files::write_file(run + "/classifier.json", "{}");
  files::write_file(run + "/learning_curves.png", "png");  // tools/plot_run.py's
  auto forced = test::train(2, config, "train.max_steps=5 export.before_training=false --force");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_FALSE(files::exists(run + "/submission.csv"));
  EXPECT_FALSE(files::exists(run + "/classifier.json"));
  EXPECT_FALSE(files::exists(run + "/learning_curves.png"));
  std::vector<std::string> previous;
  for (const auto& name : files::list(run))
    if (name.rfind("previous-", 0) == 0) previous.push_back(files::join(run, name));
  ASSERT_EQ(previous.size(), 1u);
  EXPECT_EQ(test::read_file(step_checkpoint_path(previous[0], 5)), old_step);
  EXPECT_EQ(test::read_file(previous[0] + "/features.h5"), old_features);
  EXPECT_EQ(test::read_file(previous[0] + "/submission.csv"), "id,toxic\n1,0.5\n");
  EXPECT_TRUE(files::exists(previous[0] + "/classifier.json"));
  EXPECT_TRUE(files::exists(previous[0] + "/log/rank-1.log"));
  const std::string new_lineage = checkpoint_lineage(step_checkpoint_path(run, 5));
  EXPECT_FALSE(new_lineage.empty());
  EXPECT_NE(new_lineage, old_lineage);
  EXPECT_NE(test::read_file(run + "/log/rank-0.log").find("moved into " + previous[0]),
            std::string::npos);

  const std::string exported = test::read_file(run + "/features.h5");
  auto export_refused = test::run_command(test::mpirun(1) + " export --config '" + config + "'");
  EXPECT_EQ(export_refused.exit_code, 2) << export_refused.err;
  EXPECT_NE(export_refused.err.find("features.h5 exists; pass --force to overwrite it"),
            std::string::npos)
      << export_refused.err;
  EXPECT_EQ(test::read_file(run + "/features.h5"), exported);
  auto export_forced =
      test::run_command(test::mpirun(1) + " export --config '" + config + "' --force");
  EXPECT_EQ(export_forced.exit_code, 0) << export_forced.err;
}

// Issue #12: the result hash left out the data and the model, so resuming on other data was
// not refused. A copy of the same file elsewhere (another node's) still resumes.
TEST(TrainMpi, ResumingWithAChangedDataFileIsRefusedNamingIt) {
  TempDir dir;
  const std::string data = dir.path("data"), copy = dir.path("copy");
  files::create_directories(data);
  files::create_directories(copy);
  const std::string original =
      test::read_file(files::join(test::synth_data_dir(), "validation.csv"));
  test::write_file(data + "/validation.csv", original);
  test::write_file(copy + "/validation.csv", original);
  const std::string config = test::train_config(dir.path());
  const std::string on = " data.multilingual_csv=" + data + "/validation.csv";
  auto first = test::train(1, config, "train.max_steps=5 export.before_training=false" + on);
  ASSERT_EQ(first.exit_code, 0) << first.err;

  test::write_file(data + "/validation.csv",
                   original + "999999,an extra comment of some length,es,0\n");
  auto refused = test::train(1, config, on + " train.max_steps=10 --resume auto");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("was written with other inputs: data.multilingual_csv differs"),
            std::string::npos)
      << refused.err;

  auto resumed = test::train(
      1, config,
      "data.multilingual_csv=" + copy + "/validation.csv train.max_steps=10 --resume auto");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(test::read_file(dir.path("run/log/rank-0.log")).find("resumed from"),
            std::string::npos);
}

}  // namespace
}  // namespace sx::train

// The training loop over a set-up replica (train/replica.h), read top to bottom:
//
//   while ((reason = loop.stop_check()) == kNone) {
//     if ((reason = loop.step()) != kNone) break;
//     if (loop.epoch_ended() && (reason = loop.end_epoch()) != kNone) break;
//   }
//   return loop.finish(reason);
//
// stop_check: the step and epoch caps, and one collective through which every rank learns of
// a signal and of rank 0's decisions on time and interval checkpoints; step: this rank's
// micro-batches (made ahead on the prefetch thread), the replica step, bookkeeping and the
// metrics line; end_epoch: validation, rank 0's early-stopping decision, best and step
// checkpoints; finish: the last checkpoint, the exit code and, for a finished run, the best
// weights and the features. Every rank runs the same calls in the same order.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/strings.h"
#include "dist/mpi_env.h"
#include "model/schedule.h"
#include "train/metrics.h"
#include "train/prefetch.h"
#include "train/progress.h"
#include "train/replica.h"
#include "train/step.h"
#include "train/stopping.h"
#include "train/trainer.h"

namespace sx::train {

// Writes the run's features to a path (every rank calls it).
using FeatureExport = std::function<void(const std::string& path)>;

enum class StopReason {
  kNone,
  kMaxSteps,
  kMaxEpochs,
  kEarlyStopping,
  kTime,
  kSignal,
  kNonFinite,
  kNonFiniteValidation  // the weights no longer give a finite validation loss
};
const char* describe(StopReason reason);

class Loop {
 public:
  // `budget`: run.max_duration over the whole job, its set-up phases already ended.
  Loop(const Config& config, const dist::MpiEnv& env, Replica& replica, JobBudget budget);

  StopReason stop_check();
  StopReason step();
  bool epoch_ended() const;
  StopReason end_epoch();
  // `export_features` writes run.dir/features.h5 from the best weights (every rank calls it).
  int finish(StopReason reason, const FeatureExport& export_features);
  // Only the "stop" event in metrics.jsonl, for a run that ends before its first step (a budget
  // the set-up spent): no checkpoint, no export.
  void record_stop(StopReason reason, const std::string& detail);

  // Mean DBL loss over the validation pairs; each rank evaluates its share, sums meet on all.
  double validation_loss();

 private:
  using Clock = std::chrono::steady_clock;

  bool lead() const { return env_.rank == 0; }
  double elapsed() const;
  std::vector<HostBatch> training_batches(uint64_t consumed) const;
  void settle_optimizer();
  void write_step_checkpoint();
  bool checkpoint_time_due() const;
  bool checkpoint_steps_due() const;
  std::string where_in_training() const;
  int64_t step_in_epoch() const;
  void log_start() const;
  void account(const StepResult& s, int64_t step_number);
  void report_step(const StepResult& s, double seconds);
  void reload_best_weights();

  const Config& config_;
  const dist::MpiEnv& env_;
  Replica& r_;
  model::Triangular2 schedule_;  // over pairs: state.lr_pairs in half-cycles of lr_step_pairs
  EarlyStopping early_;
  MetricsLog metrics_;
  Prefetcher<std::vector<HostBatch>> batches_;
  JobBudget budget_;
  StepsOrDuration checkpoint_every_;  // train.checkpoint_every
  TrainingProgress progress_{};       // rank 0's bar or periodic line
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_checkpoint_at_ = started_;  // rank 0: the last step checkpoint
  double seconds_before_ = 0;                        // training time of the runs resumed
  double last_step_seconds_ = 0;
  int64_t first_step_ = 0;  // the step this run started (or resumed) at
  int64_t consecutive_bad_ = 0, last_checkpoint_step_ = -1;
  bool reduction_logged_ = false;
  bool at_epoch_end_ = false;  // end_epoch() ran after the last step
  int stop_signal_ = 0;  // a signal some rank received (the largest, stop_check's reduction), or 0
};

// The loop of the comment at the top: steps and epochs until a stop condition, whose reason it
// returns for finish().
StopReason run_until_stop(Loop& loop);

}  // namespace sx::train

// Stop rules of the training loop, torch- and MPI-free so they are unit-testable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

namespace sx::train {

// Keras' EarlyStopping(monitor="val_loss", min_delta=0, patience): an epoch improves when
// its loss is strictly lower than the best so far; the wait counter resets on improvement.
struct EarlyStopping {
  int64_t patience = 9;
  double best = std::numeric_limits<double>::infinity();
  int64_t epochs_without_improvement = 0;

  // Returns true when this loss is a new best.
  bool update(double val_loss) {
    if (val_loss < best) {
      best = val_loss;
      epochs_without_improvement = 0;
      return true;
    }
    ++epochs_without_improvement;
    return false;
  }
  bool should_stop() const { return epochs_without_improvement >= patience; }
};

// The notebook's epoch arithmetic: training batches train_pairs // global_batch, validation
// batches val_pairs // global_batch (both floor, as the notebook's steps), an epoch
// min(20 x validation batches, training batches) steps, at most max(30, round(10 x training
// batches / steps per epoch)) epochs, rounded as Python's round (half to even: 32.5 gives 32).
// The global batch is train.pairs_per_rank x ranks x train.accumulation_steps pairs per
// optimizer step.
struct EpochPlan {
  int64_t global_batch = 0;
  int64_t train_batches = 0;
  int64_t val_batches = 0;
  int64_t steps_per_epoch = 0;
  int64_t max_epochs = 0;
};

// The notebook asserts n_steps >= 50: its training pairs make at least 50 batches (about
// 12,000 on its data). It guards the epoch rule above, so the trainer applies it where that
// rule is the notebook's: data.pair_sampler: notebook with train.steps_per_epoch: 0
// (replica.cpp).
constexpr int64_t kNotebookMinTrainBatches = 50;

inline EpochPlan plan_epochs(int64_t train_pairs, int64_t val_pairs, int64_t global_batch,
                             int64_t steps_per_epoch_override, int64_t max_epochs_override) {
  EpochPlan p;
  p.global_batch = std::max<int64_t>(1, global_batch);
  p.train_batches = std::max<int64_t>(1, train_pairs / p.global_batch);
  p.val_batches = val_pairs / p.global_batch;
  p.steps_per_epoch = steps_per_epoch_override > 0 ? steps_per_epoch_override
                                                   : std::min(20 * p.val_batches, p.train_batches);
  p.steps_per_epoch = std::max<int64_t>(1, p.steps_per_epoch);
  p.max_epochs = max_epochs_override > 0
                     ? max_epochs_override
                     : std::max<int64_t>(30, static_cast<int64_t>(std::nearbyint(
                                                 10.0 * p.train_batches / p.steps_per_epoch)));
  return p;
}

// a x b for non-negative counts, saturating at the largest int64: a cap the configuration allows
// (train.max_steps, max_epochs, steps_per_epoch up to 2^63 - 1) is then never reached rather than
// wrapped around to a negative or tiny one.
inline int64_t saturated_product(int64_t a, int64_t b) {
  int64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? std::numeric_limits<int64_t>::max() : out;
}

// The run's schedule measured in pairs of the global pair sequence. It is made once, when a
// run starts, from the EpochPlan of its global batch, and checkpoints keep it: a run resumed
// with another global batch (world size, accumulation steps) ends its epochs, cycles its
// learning rate and meets its caps at the same pair counts, its steps just being larger or
// smaller. While the global batch stays the same, every rule below is the step-counting rule
// it replaces (epoch ends every steps_per_epoch steps, train.max_steps steps, ...).
struct PairPlan {
  int64_t global_batch = 0;     // of the run that made the plan: train.max_steps counts its steps
  int64_t pairs_per_epoch = 0;  // steps per epoch x global_batch
  int64_t max_epochs = 0;
  double lr_step_pairs = 0;  // the Triangular2 half-cycle: train.lr_step_epochs x pairs_per_epoch

  // No plan: a checkpoint from before plans were stored (format 1 or 2).
  bool empty() const { return pairs_per_epoch <= 0; }
  // After a step, with `consumed` pairs consumed and `epochs` epochs completed: whether that
  // step reached (or crossed) the end of the next epoch.
  bool ends_epoch(int64_t consumed, int64_t epochs) const {
    return consumed >= saturated_product(epochs + 1, pairs_per_epoch);
  }
  bool epochs_done(int64_t consumed) const {
    return consumed >= saturated_product(max_epochs, pairs_per_epoch);
  }
  // train.max_steps (0 = none), in steps of the plan's global batch.
  bool steps_done(int64_t consumed, int64_t max_steps) const {
    return max_steps > 0 && consumed >= saturated_product(max_steps, global_batch);
  }
  // Steps an epoch takes at global batch `batch` (the last one may cross the epoch's end).
  int64_t steps_per_epoch(int64_t batch) const {
    return pairs_per_epoch / batch + (pairs_per_epoch % batch != 0 ? 1 : 0);
  }
};

inline PairPlan plan_in_pairs(const EpochPlan& p, double lr_step_epochs) {
  PairPlan plan;
  plan.global_batch = p.global_batch;
  plan.pairs_per_epoch = saturated_product(p.steps_per_epoch, p.global_batch);
  plan.max_epochs = p.max_epochs;
  plan.lr_step_pairs = lr_step_epochs * static_cast<double>(plan.pairs_per_epoch);
  return plan;
}

// The whole job's time budget (run.max_duration), counted from the program's start. The
// notebook gives training 2.5 h - preparation - 3 x projection: after preparation and the
// projection before training, it stops training with two projections' time left, one for the
// final projection and one to spare. Here, likewise, training stops before a step when the
// time used so far (set-up, the before-training export, training), one more step as long as
// the last and twice the final export's expected duration would exceed the budget; the
// second export's worth covers the wrap-up (last checkpoint, reloading the best weights) and
// a slower export. The final export is expected to take as long as the before-training one
// (scaled by texts when that one left the test set out); without one (export.before_training
// false, or a resumed run) it is estimated from the training steps' pace: a step embeds
// `step_texts` texts forward and backward, the export `export_texts` per rank forward only, so
// the estimate errs long. One validation (reserve_validation: its texts per rank, the epoch
// AUC's included) is reserved as well, estimated the same way: the step before the check may
// end an epoch, and a budget that ends the first epoch early still validates the weights it
// exports (trainer.cpp), as the notebook's TimeStopping, which acts at epoch ends, always does.
// All times are seconds since the program's start; the class holds no clock, so tests drive it.
class JobBudget {
 public:
  enum Phase { kSetUp, kExportBefore, kTraining, kWrapUp, kPhases };

  JobBudget(double budget_seconds, double export_texts, double step_texts)
      : budget_(budget_seconds), export_texts_(export_texts), step_texts_(step_texts) {}

  bool limited() const { return budget_ > 0; }
  double budget() const { return budget_; }

  // Records that `phase` ended at `now`; a phase that did not happen is never marked.
  void end_of(Phase phase, double now) {
    ends_[phase] = now;
    marked_[phase] = true;
  }
  double duration_of(Phase phase) const {
    if (!marked_[phase]) return 0;
    for (int p = phase - 1; p >= 0; --p)
      if (marked_[p]) return ends_[phase] - ends_[p];
    return ends_[phase];
  }

  // The texts one validation embeds per rank (0, the default: none reserved).
  void reserve_validation(double texts) { validation_texts_ = texts; }
  // The export before training embeds `texts` per rank, not export_texts (it leaves some out).
  void export_before_covers(double texts) { export_before_texts_ = texts; }

  double expected_export_seconds(double last_step_seconds) const {
    if (marked_[kExportBefore])
      return export_before_texts_ > 0
                 ? duration_of(kExportBefore) * export_texts_ / export_before_texts_
                 : duration_of(kExportBefore);
    return paced_seconds(last_step_seconds, export_texts_);
  }
  double expected_validation_seconds(double last_step_seconds) const {
    return paced_seconds(last_step_seconds, validation_texts_);
  }
  // Before a step at `now`: true when the step, a validation and the wrap-up would overrun the
  // budget.
  bool should_stop(double now, double last_step_seconds) const {
    return limited() && now + last_step_seconds + expected_validation_seconds(last_step_seconds) +
                                2 * expected_export_seconds(last_step_seconds) >=
                            budget_;
  }

  // One line for the log: where the time went (after end_of(kWrapUp)).
  std::string summary() const {
    const double used =
        std::max({ends_[kSetUp], ends_[kExportBefore], ends_[kTraining], ends_[kWrapUp]});
    char line[320];
    std::snprintf(line, sizeof line,
                  "job time %.3f s%s: set-up %.3f s, export before training %.3f s, training "
                  "%.3f s, wrap-up and final export %.3f s",
                  used, limited() ? (" of the " + fmt(budget_) + " s budget").c_str() : "",
                  duration_of(kSetUp), duration_of(kExportBefore), duration_of(kTraining),
                  duration_of(kWrapUp));
    return line;
  }

 private:
  // Embedding `texts` forward only, at the pace of a step's step_texts forward and backward.
  double paced_seconds(double last_step_seconds, double texts) const {
    return step_texts_ > 0 ? last_step_seconds * texts / step_texts_ : 0;
  }
  static std::string fmt(double seconds) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", seconds);
    return b;
  }

  double budget_;
  double export_texts_, step_texts_;
  double validation_texts_ = 0;
  double export_before_texts_ = 0;  // 0: the export before training embeds export_texts_
  double ends_[kPhases] = {0, 0, 0, 0};
  bool marked_[kPhases] = {false, false, false, false};
};

}  // namespace sx::train

// Rank 0's view of the training loop while it runs: step, epoch, smoothed loss, pairs/s, the
// time to the epoch's end and the time left in run.max_duration. Shown as a bar on a
// terminal (run.progress auto) or as a log line every run.progress_interval (the first
// after the first step); core/progress.h decides which. Torch- and MPI-free.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

namespace sx::train {

// What one progress report shows (times in seconds; negative = unknown or no budget).
struct TrainingStatus {
  int64_t step = 0;             // steps done
  int64_t epoch = 0;            // epochs done
  int64_t steps_per_epoch = 1;  // the plan's
  int64_t max_epochs = 0;
  double loss = 0;            // smoothed; NaN before the first finite loss
  double pairs_per_s = 0;     // smoothed
  double epoch_left_s = -1;   // until the epoch's validation
  double budget_left_s = -1;  // run.max_duration minus the job's time so far
};

// Steps left in the current epoch after `step` steps (0 right after an epoch's end is
// impossible: the step that ends an epoch leaves a whole next epoch, steps_per_epoch).
int64_t steps_left_in_epoch(int64_t step, int64_t steps_per_epoch);
// The bar's text, the times first (a narrow terminal clips the end): "step 97 | epoch 2/30
// [######....] 37/60, ends in 12s | 3m40s of run.max_duration left | loss 0.2711 | 41.3 pairs/s".
std::string status_bar(const TrainingStatus& s);
// The periodic log line's text: "progress: step 37 (epoch 1/30, 37/60): loss 0.27110
// (smoothed), 41.3 pairs/s, epoch ends in 12s, 3m40s of run.max_duration left".
std::string status_line(const TrainingStatus& s);

// An exponential moving average whose first values weigh as a plain mean (no start-up bias).
class Smoothed {
 public:
  explicit Smoothed(double weight = 0.1) : weight_(weight) {}
  void add(double v);
  double value() const { return value_; }  // NaN before the first add
  bool empty() const { return count_ == 0; }

 private:
  double weight_;
  double value_ = std::numeric_limits<double>::quiet_NaN();
  int64_t count_ = 0;
};

class TrainingProgress {
 public:
  TrainingProgress() = default;  // silent until start()
  ~TrainingProgress() { finish(); }
  TrainingProgress(const TrainingProgress&) = delete;
  TrainingProgress& operator=(const TrainingProgress&) = delete;

  // On rank 0, before the first step.
  void start(int64_t steps_per_epoch, int64_t max_epochs, int64_t global_batch);

  // After each step on rank 0: `loss` NaN for a skipped step; budget_left_s < 0 = no budget.
  void step(int64_t step, int64_t epoch, double loss, double step_seconds, double budget_left_s);
  // Takes the bar off the terminal (training is over).
  void finish();

 private:
  bool enabled_ = false, bar_ = false, shown_ = false;
  int64_t steps_per_epoch_ = 1, max_epochs_ = 0, global_batch_ = 0;
  double interval_ = 30;
  Smoothed loss_, step_seconds_;
  std::chrono::steady_clock::time_point last_report_{};
  bool reported_ = false;
};

}  // namespace sx::train

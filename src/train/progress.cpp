#include "train/progress.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>

#include "core/progress.h"
#include "core/strings.h"

namespace sx::train {
namespace {

std::string duration_or_unknown(double seconds) {
  return seconds >= 0 ? format_duration(seconds) : "?";
}

int64_t position_in_epoch(int64_t step, int64_t steps_per_epoch) {
  return step > 0 ? (step - 1) % steps_per_epoch + 1 : 0;
}

std::string epoch_text(const TrainingStatus& s) {
  return std::to_string(s.epoch + 1) + (s.max_epochs > 0 ? "/" + std::to_string(s.max_epochs) : "");
}

std::string loss_text(double loss, const char* format) {
  if (std::isnan(loss)) return "?";
  char b[32];
  std::snprintf(b, sizeof b, format, loss);
  return b;
}

}  // namespace

int64_t steps_left_in_epoch(int64_t step, int64_t steps_per_epoch) {
  return steps_per_epoch - position_in_epoch(step, steps_per_epoch);
}

std::string status_bar(const TrainingStatus& s) {
  // The times first: a narrow terminal clips the end of the line.
  const int64_t at = position_in_epoch(s.step, s.steps_per_epoch);
  std::string out = "step " + std::to_string(s.step) + " | epoch " + epoch_text(s) + " [" +
                    bar_text(double(at) / s.steps_per_epoch, 10) + "] " + std::to_string(at) + "/" +
                    std::to_string(s.steps_per_epoch) + ", ends in " +
                    duration_or_unknown(s.epoch_left_s);
  if (s.budget_left_s >= 0)
    out += " | " + format_duration(s.budget_left_s) + " of run.max_duration left";
  char b[96];
  std::snprintf(b, sizeof b, " | loss %s | %.1f pairs/s", loss_text(s.loss, "%.4f").c_str(),
                s.pairs_per_s);
  return out + b;
}

std::string status_line(const TrainingStatus& s) {
  char b[320];
  std::snprintf(b, sizeof b,
                "progress: step %lld (epoch %s, %lld/%lld): loss %s (smoothed), %.1f pairs/s, "
                "epoch ends in %s",
                static_cast<long long>(s.step), epoch_text(s).c_str(),
                static_cast<long long>(position_in_epoch(s.step, s.steps_per_epoch)),
                static_cast<long long>(s.steps_per_epoch), loss_text(s.loss, "%.5f").c_str(),
                s.pairs_per_s, duration_or_unknown(s.epoch_left_s).c_str());
  std::string out = b;
  if (s.budget_left_s >= 0)
    out += ", " + format_duration(s.budget_left_s) + " of run.max_duration left";
  return out;
}

void Smoothed::add(double v) {
  if (!std::isfinite(v)) return;
  ++count_;
  const double w = std::max(weight_, 1.0 / static_cast<double>(count_));
  value_ = count_ == 1 ? v : value_ + w * (v - value_);
}

void TrainingProgress::start(int64_t steps_per_epoch, int64_t max_epochs, int64_t global_batch) {
  enabled_ = progress_mode() != ProgressMode::kOff;
  bar_ = progress_bar_on_terminal();
  interval_ = progress_interval();
  steps_per_epoch_ = std::max<int64_t>(1, steps_per_epoch);
  max_epochs_ = max_epochs;
  global_batch_ = global_batch;
}

void TrainingProgress::step(int64_t step, int64_t epoch, double loss, double step_seconds,
                            double budget_left_s) {
  if (!enabled_) return;
  loss_.add(loss);
  step_seconds_.add(step_seconds);
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_report_).count();
  if (reported_ && since < (bar_ ? 0.2 : interval_)) return;
  reported_ = true;
  last_report_ = now;

  TrainingStatus s;
  s.step = step;
  s.epoch = epoch;
  s.steps_per_epoch = steps_per_epoch_;
  s.max_epochs = max_epochs_;
  s.loss = loss_.value();
  const double pace = step_seconds_.value();
  s.pairs_per_s = pace > 0 ? global_batch_ / pace : 0;
  s.epoch_left_s = pace >= 0 ? steps_left_in_epoch(step, steps_per_epoch_) * pace : -1;
  s.budget_left_s = budget_left_s < 0 ? -1 : budget_left_s;
  if (bar_) {
    show_status_line(status_bar(s));
    shown_ = true;
  } else {
    spdlog::info("{}", status_line(s));
  }
}

void TrainingProgress::finish() {
  if (shown_) clear_status_line();
  shown_ = false;
}

}  // namespace sx::train

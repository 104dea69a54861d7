// Progress of a long phase (loading, training, exporting): a bar redrawn in place when
// stderr is a terminal, otherwise one log line every `interval` seconds, both with the time
// left at the pace so far. advance() is thread-safe and cheap.
//
// Bars live on one status line at the bottom of the terminal; the console log sink
// (core/log.cpp) lifts it out of the way for each log line (StatusLinePause) and draws it
// again below, so log lines and bars never share a line. Nothing but log lines is written
// to stderr when it is not a terminal: no carriage returns in redirected logs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace sx {

// How progress is shown, process-wide (run.progress, run.progress_interval): kAuto = a bar
// when stderr is a terminal, lines otherwise; kLines = lines always; kOff = none.
enum class ProgressMode { kAuto, kLines, kOff };
void set_progress_options(ProgressMode mode, double interval_seconds);
ProgressMode progress_mode();
double progress_interval();
// Whether progress is drawn as a bar: mode auto and stderr a terminal.
bool progress_bar_on_terminal();

// Seconds left for `total - done` units at the average pace so far; negative when unknown
// (no total, nothing done yet, no time elapsed).
double remaining_seconds(double done, double total, double elapsed_seconds);
// A filled bar of `width` characters for the fraction done ('#' done, '.' to do).
std::string bar_text(double fraction, int width);

// The status line (a bar) at the bottom of the terminal.
void show_status_line(const std::string& text);  // replaces it (clipped to the width)
void clear_status_line();                        // removes it
// While alive, the status line is off the screen and nothing else draws it: a log line
// written meanwhile gets a line of its own; the line comes back on destruction.
class StatusLinePause {
 public:
  StatusLinePause();
  ~StatusLinePause();
  StatusLinePause(const StatusLinePause&) = delete;
  StatusLinePause& operator=(const StatusLinePause&) = delete;
};

class Progress {
 public:
  // total = 0: unknown total (counts only). enabled = false: silent (non-zero ranks).
  // interval_seconds <= 0: run.progress_interval (set_progress_options).
  Progress(std::string label, uint64_t total, double interval_seconds = 0, bool enabled = true);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(uint64_t n = 1);
  // Final line: count, elapsed time and rate.
  void finish();

 private:
  void report(bool final);

  std::string label_;
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> done_{0};
  double interval_;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_report_;
  std::mutex mutex_;
};

}  // namespace sx

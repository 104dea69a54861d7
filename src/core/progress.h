// Progress of a long phase (loading, tokenizing, training, exporting): a bar redrawn in
// place when stderr is a terminal, otherwise one log line every `interval` seconds.
// advance() is thread-safe and cheap.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace sx {

class Progress {
 public:
  // total = 0: unknown total (counts only). enabled = false: silent (non-zero ranks).
  Progress(std::string label, uint64_t total, double interval_seconds = 30, bool enabled = true);
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

// A test of the stop handlers leaves its test binary as it found it: the stop signals'
// dispositions as they were, and no stop request left for the next test.
#pragma once

#include <signal.h>

#include "train/signals.h"

namespace sx::test {

class StopSignalScope {
 public:
  StopSignalScope() {
    for (size_t i = 0; i < kCount; ++i) ::sigaction(kSignals[i], nullptr, &saved_[i]);
  }
  ~StopSignalScope() {
    for (size_t i = 0; i < kCount; ++i) ::sigaction(kSignals[i], &saved_[i], nullptr);
    train::clear_stop_request();
  }
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;

 private:
  static constexpr size_t kCount = 4;
  static constexpr int kSignals[kCount] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
  struct sigaction saved_[kCount] {};
};

}  // namespace sx::test

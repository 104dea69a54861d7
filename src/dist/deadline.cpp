#include "dist/deadline.h"

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/mpi_env.h"

namespace sx::dist {
namespace {

std::atomic<double> g_timeout{-1};  // < 0: not set yet
std::atomic<int64_t> g_step{-1};

int world_rank() {
  int initialized = 0, rank = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

}  // namespace

void set_collective_timeout(double seconds) {
  g_timeout = seconds;
}

double collective_timeout() {
  const double t = g_timeout;
  if (t >= 0) return t;
  static const double fallback = default_config().dist.collective_timeout;
  return fallback;
}

void set_step(int64_t step) {
  g_step = step;
}

int64_t current_step() {
  return g_step;
}

std::string where() {
  const int64_t step = g_step;
  if (step < 0) return "during start-up";
  if (step == 0) return "before the first step";
  return "at step " + std::to_string(step);
}

void await(const std::string& what, const std::function<bool()>& done,
           const std::function<void()>& before_abort) {
  using Clock = std::chrono::steady_clock;
  const double timeout = collective_timeout();
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  // Quick polls first: most collectives complete within microseconds, and MPI moves a
  // transfer on only inside its calls. Then sleeps, short enough to add little latency.
  constexpr int kQuickPolls = 64;
  constexpr auto kFirstSleep = std::chrono::microseconds(50),
                 kLongestSleep = std::chrono::microseconds(200);
  auto sleep = kFirstSleep;
  for (int polls = 0; !done(); ++polls) {
    if (Clock::now() > deadline) {
      spdlog::critical(
          "rank {}: the {} {} did not complete within dist.collective_timeout ({:.0f} s): a "
          "peer is gone or stuck. Aborting the job.",
          world_rank(), what, where(), timeout);
      flush_logs();
      if (before_abort) before_abort();
      abort_job(kExitInternal);
    }
    if (polls < kQuickPolls) {
      std::this_thread::yield();
      continue;
    }
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, kLongestSleep);
  }
}

}  // namespace sx::dist

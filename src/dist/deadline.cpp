#include "dist/deadline.h"

#include <mpi.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/mpi_env.h"
#include "dist/peers.h"

namespace sx::dist {
namespace {

std::atomic<double> g_timeout{-1};  // < 0: not set yet
std::atomic<int64_t> g_step{-1};
std::atomic<uint64_t> g_continued{0};  // SIGCONTs received: the process was stopped

extern "C" void note_continue(int) {
  g_continued.fetch_add(1, std::memory_order_relaxed);
}

// Counts SIGCONTs from the first wait on, unless the program handles SIGCONT itself.
uint64_t continues() {
  static const bool watched = [] {
    struct sigaction old {};
    if (sigaction(SIGCONT, nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL)
      return false;
    struct sigaction sa {};
    sa.sa_handler = note_continue;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(SIGCONT, &sa, nullptr) == 0;
  }();
  (void)watched;
  return g_continued.load(std::memory_order_relaxed);
}

int world_rank() {
  int initialized = 0, rank = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// How long a rank past a deadline listens for its peers (peers.h): those stuck in the same
// collective reach their own deadline within about a step of each other.
constexpr double kProbeSeconds = 2;

// Past the deadline of `what`: finds out which peers still answer, says so in one line and
// ends the job. The lowest rank still in touch speaks on the terminal; the others write the
// same line to their own log file only (info), so a partition shows one line per side.
[[noreturn]] void end_job_past_deadline(const std::string& what, double timeout,
                                        const std::function<void()>& before_abort) {
  const std::vector<int> silent = silent_ranks(kProbeSeconds);
  const int rank = world_rank();
  int first_in_touch = 0;
  while (std::binary_search(silent.begin(), silent.end(), first_in_touch)) ++first_in_touch;
  std::string why;
  if (!silent.empty())
    why = fmt::format(
        "; no word within {:.0f} s from {}: lost (host down or cut off), stuck, or behind a link "
        "too slow for this timeout",
        kProbeSeconds, describe_ranks(silent));
  else if (!rank_hosts().empty())
    why = "; every rank answered, so they wait in different collectives or the transport is stuck";
  spdlog::log(rank == first_in_touch ? spdlog::level::critical : spdlog::level::info,
              "rank {}: the {} {} did not complete within dist.collective_timeout ({:.0f} s){}. "
              "Ending the job.",
              rank, what, where(), timeout, why);
  flush_logs();
  if (before_abort) before_abort();
  abort_job(kExitInternal);
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
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  // Time the process spent stopped (Slurm's suspend, SIGSTOP, a paused VM) is no wait for its
  // peers, so a job continued after a suspension longer than the timeout carries on: the
  // deadline moves on by the time since the last poll when a SIGCONT came in between, and by
  // a sleep between polls that took over kPaused (a cgroup freezer or a paused VM sends no
  // signal). A done() that blocks moves nothing: a hang there still ends the job.
  constexpr auto kPaused = std::chrono::seconds(1);
  auto last = Clock::now();
  uint64_t seen = continues();
  // Quick polls first: most collectives complete within microseconds, and MPI moves a
  // transfer on only inside its calls. Then sleeps, short enough to add little latency.
  constexpr int kQuickPolls = 64;
  constexpr auto kFirstSleep = std::chrono::microseconds(50),
                 kLongestSleep = std::chrono::microseconds(200);
  auto sleep = kFirstSleep;
  for (int polls = 0; !done(); ++polls) {
    const auto now = Clock::now();
    if (const uint64_t c = continues(); c != seen) {
      seen = c;
      deadline += now - last;
    }
    if (now > deadline) end_job_past_deadline(what, timeout, before_abort);
    if (polls < kQuickPolls) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, kLongestSleep);
    }
    last = Clock::now();
    if (last - now > kPaused) deadline += last - now;
  }
}

}  // namespace sx::dist

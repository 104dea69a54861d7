#include "train/signals.h"

#include <time.h>

#include <atomic>
#include <csignal>
#include <cstdint>

namespace sx::train {
namespace {
volatile std::sig_atomic_t g_signal = 0;
std::atomic<int64_t> g_first_interrupt_ms{0};  // lock-free: safe in a handler
static_assert(std::atomic<int64_t>::is_always_lock_free);

int64_t monotonic_ms() {  // clock_gettime is async-signal-safe
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

// The first signal is the one the stop names (under mpirun, a Ctrl-C reaches the ranks as
// SIGTERM). A second Ctrl-C, a second or more after the first, ends the process at once, as
// Ctrl-C does elsewhere: a stop waits for the next step boundary, and a set-up or an export can
// take minutes. (One within the second is the same Ctrl-C delivered twice: timeout(1) and other
// launchers send it to their child and to its process group.)
extern "C" void on_stop_signal(int sig) {
  if (sig == SIGINT) {
    const int64_t now = monotonic_ms(), first = g_first_interrupt_ms.load();
    if (first == 0) {
      g_first_interrupt_ms.store(now);
    } else if (now - first >= 1000) {
      std::signal(SIGINT, SIG_DFL);
      std::raise(SIGINT);
      return;
    }
  }
  if (g_signal == 0) g_signal = sig;
}
}  // namespace

namespace {
void handle(int sig, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(sig, &action, nullptr);
}

// Ctrl-C stops training as SIGTERM does, unless the process was started with SIGINT ignored
// (nohup-like launchers, `cmd &` in a script): that choice is kept.
void handle_interrupt() {
  struct sigaction current {};
  if (sigaction(SIGINT, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) return;
  handle(SIGINT, on_stop_signal);
}
}  // namespace

void install_stop_handlers() {
  for (int sig : {SIGTERM, SIGUSR1, SIGUSR2}) handle(sig, on_stop_signal);
  handle_interrupt();
  // A terminal pipe closed under the run (`train ... | head`) ended it with no checkpoint (exit
  // 141); the lines still reach the rank's log file, and a failed write to a pipe costs nothing.
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() {
  return g_signal != 0;
}
int stop_signal_number() {
  return g_signal;
}
void clear_stop_request() {
  g_signal = 0;
  g_first_interrupt_ms = 0;
}

}  // namespace sx::train

#include "train/signals.h"

#include <csignal>

namespace sx::train {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
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
}  // namespace

void install_early_stop_handlers() {
  for (int sig : {SIGTERM, SIGUSR1, SIGUSR2}) handle(sig, on_stop_signal);
}

void install_stop_handlers(StopSignal stop_signal) {
  const int extra = stop_signal == StopSignal::kUsr2   ? SIGUSR2
                    : stop_signal == StopSignal::kTerm ? SIGTERM
                                                       : SIGUSR1;
  for (int sig : {SIGUSR1, SIGUSR2})
    if (sig != extra) handle(sig, SIG_DFL);  // the other warning signal keeps its default
  handle(SIGTERM, on_stop_signal);
  handle(extra, on_stop_signal);
}

bool stop_requested() {
  return g_signal != 0;
}
int stop_signal_number() {
  return g_signal;
}
void clear_stop_request() {
  g_signal = 0;
}

}  // namespace sx::train

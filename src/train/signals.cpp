#include "train/signals.h"

#include <csignal>

namespace sx::train {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}
}  // namespace

void install_stop_handlers(const std::string& stop_signal) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  int extra = stop_signal == "USR2" ? SIGUSR2 : stop_signal == "TERM" ? SIGTERM : SIGUSR1;
  sigaction(extra, &action, nullptr);
}

bool stop_requested() {
  return g_signal != 0;
}
int stop_signal_number() {
  return g_signal;
}

}  // namespace sx::train

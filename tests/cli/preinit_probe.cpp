// Preloaded into siamese-xlmr (LD_PRELOAD) by Cli.TrainTakesStopSignalsBeforeItsLibrariesLoad:
// its initializer runs among the shared libraries' ones (after the executable's .preinit_array;
// where among the others is the loader's choice, and nothing before main sets the handlers
// but that hook), and prints what SIGUSR1 and SIGTERM would do then.
#include <signal.h>

#include <cstdio>

namespace {
const char* disposition(int sig) {
  struct sigaction action {};
  if (::sigaction(sig, nullptr, &action) != 0) return "unknown";
  if (action.sa_handler == SIG_DFL) return "default";
  if (action.sa_handler == SIG_IGN) return "ignored";
  return "handled";
}

__attribute__((constructor)) void probe() {
  std::fprintf(stderr, "preinit probe: SIGUSR1 %s, SIGTERM %s\n", disposition(SIGUSR1),
               disposition(SIGTERM));
}
}  // namespace

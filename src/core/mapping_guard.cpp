#include "core/mapping_guard.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/error.h"

namespace sx {
namespace {

constexpr size_t kMaxPath = 4096;  // longer paths are cut, with "..."

enum SlotState : int { kFree, kClaimed, kLive };

// One guarded mapping. `path` is written while the slot is kClaimed and read by the handler
// only after it has seen kLive (release/acquire).
struct Slot {
  std::atomic<int> state{kFree};
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  char path[kMaxPath] = {};
};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<uintptr_t>::is_always_lock_free,
              "the registry is read from a signal handler");

Slot g_slots[kMaxGuardedMappings];
std::atomic<int> g_also_to{-1};  // also_report_faults_to
struct sigaction g_previous {};  // the SIGBUS action before ours
std::mutex g_install_mutex;      // registration only, never the handler

// A line put together without allocating.
struct Line {
  char text[kMaxPath + 512];
  size_t size = 0;

  void add(const char* s) {
    while (*s && size < sizeof text - 1) text[size++] = *s++;
  }
  void add(uint64_t n) {
    char digits[24];
    int k = 0;
    do {
      digits[k++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n);
    while (k > 0 && size < sizeof text - 1) text[size++] = digits[--k];
  }
};

void write_all(int fd, const Line& line) {
  for (size_t at = 0; at < line.size;) {
    const ssize_t n = ::write(fd, line.text + at, line.size - at);
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
}

[[noreturn]] void report_and_exit(const Slot& slot) {
  const uint64_t mapped = slot.end.load() - slot.begin.load();
  Line line;
  line.add("siamese-xlmr: error: ");
  line.add(slot.path);
  struct stat st {};
  if (::stat(slot.path, &st) == 0 && static_cast<uint64_t>(st.st_size) < mapped) {
    line.add(" changed on disk while it was being read (now ");
    line.add(static_cast<uint64_t>(st.st_size));
    line.add(" bytes, ");
    line.add(mapped);
    line.add(" when opened: truncated or rewritten in place)");
  } else {
    line.add(
        " could not be read through its mapping (an I/O error, or the file changed on disk "
        "while it was being read)");
  }
  line.add(
      "; leave data files unchanged while a command uses them (replacing one with mv is "
      "safe)\n");
  write_all(STDERR_FILENO, line);
  const int also = g_also_to.load();
  if (also >= 0) write_all(also, line);
  ::_exit(kExitUserError);
}

// Not ours: the action before ours gets the signal. A fault returns to the faulting access,
// which raises it again; a signal sent by a process is sent again.
void pass_on(int sig, const siginfo_t* info) {
  ::sigaction(SIGBUS, &g_previous, nullptr);
  if (info->si_code <= 0) ::raise(sig);
}

extern "C" void on_sigbus(int sig, siginfo_t* info, void*) {
  if (info->si_code > 0) {  // a fault (si_addr is its address), not kill(2)
    const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
    for (const Slot& slot : g_slots)
      if (slot.state.load(std::memory_order_acquire) == kLive && address >= slot.begin.load() &&
          address < slot.end.load())
        report_and_exit(slot);
  }
  pass_on(sig, info);
}

// Installs on_sigbus unless it is the current SIGBUS action. Called with g_install_mutex held.
void ensure_handler() {
  struct sigaction current {};
  ::sigaction(SIGBUS, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_sigbus) return;
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, &g_previous);
}

void copy_path(const std::string& path, char (&out)[kMaxPath]) {
  size_t n = path.size();
  if (n >= kMaxPath) {
    n = kMaxPath - 4;
    path.copy(out, n);
    for (size_t k = 0; k < 3; ++k) out[n + k] = '.';
    n += 3;
  } else {
    path.copy(out, n);
  }
  out[n] = '\0';
}

}  // namespace

int guard_mapping(const void* begin, size_t size, const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(g_install_mutex);
    ensure_handler();
  }
  for (int k = 0; k < kMaxGuardedMappings; ++k) {
    Slot& slot = g_slots[k];
    int expected = kFree;
    if (!slot.state.compare_exchange_strong(expected, kClaimed)) continue;
    copy_path(path, slot.path);
    slot.begin.store(reinterpret_cast<uintptr_t>(begin));
    slot.end.store(reinterpret_cast<uintptr_t>(begin) + size);
    slot.state.store(kLive, std::memory_order_release);
    return k;
  }
  return -1;
}

void unguard_mapping(int handle) {
  if (handle < 0 || handle >= kMaxGuardedMappings) return;
  Slot& slot = g_slots[handle];
  slot.state.store(kClaimed);
  slot.begin.store(0);
  slot.end.store(0);
  slot.state.store(kFree, std::memory_order_release);
}

int also_report_faults_to(int fd) {
  return g_also_to.exchange(fd);
}

}  // namespace sx

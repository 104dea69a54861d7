#include "core/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "core/strings.h"

namespace sx {

Progress::Progress(std::string label, uint64_t total, double interval_seconds, bool enabled)
    : label_(std::move(label)),
      total_(total),
      interval_(interval_seconds),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_report_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_ && enabled_) std::fputc('\n', stderr);
}

void Progress::advance(uint64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_report_).count();
  if (since < (tty_ ? 0.2 : interval_)) return;
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  last_report_ = now;
  report(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  report(true);
}

void Progress::report(bool final) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t done = done_, total = total_;
  double rate = elapsed > 0 ? done / elapsed : 0;
  char line[256];
  if (tty_ && !final) {
    const int width = 30;
    int filled = total ? static_cast<int>(width * std::min<double>(1.0, double(done) / total)) : 0;
    std::string bar(filled, '#');
    bar.resize(width, total ? '.' : ' ');
    std::snprintf(line, sizeof line, "\r%s [%s] %llu/%llu %.0f/s %s   ", label_.c_str(),
                  bar.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total), rate, format_duration(elapsed).c_str());
    std::fputs(line, stderr);
    std::fflush(stderr);
    return;
  }
  if (tty_) std::fputs("\r\033[K", stderr);
  if (total)
    spdlog::info("{}: {}/{} ({:.1f}%), {:.0f}/s, {}{}", label_, done, total, 100.0 * done / total,
                 rate, format_duration(elapsed), final ? " done" : "");
  else
    spdlog::info("{}: {}, {:.0f}/s, {}{}", label_, done, rate, format_duration(elapsed),
                 final ? " done" : "");
}

}  // namespace sx

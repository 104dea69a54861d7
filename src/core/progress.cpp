#include "core/progress.h"

#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/strings.h"

namespace sx {
namespace {

std::atomic<ProgressMode> g_mode{ProgressMode::kAuto};
std::atomic<double> g_interval{30};

// The status line: its text ("" = none) and whether it is on the screen now.
std::mutex g_status_mutex;
std::string g_status_text;
bool g_status_drawn = false;

bool stderr_is_terminal() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

// Draws g_status_text (the caller holds g_status_mutex), clipped so it never wraps: a
// wrapped line could not be taken back with a carriage return.
void draw_status_locked() {
  if (g_status_text.empty()) return;
  size_t width = 80;
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) width = ws.ws_col;
  std::string line = "\r" + g_status_text.substr(0, width - 1) + "\033[K";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  g_status_drawn = true;
}

void erase_status_locked() {
  if (!g_status_drawn) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  g_status_drawn = false;
}

}  // namespace

void set_progress_options(ProgressMode mode, double interval_seconds) {
  g_mode = mode;
  g_interval = interval_seconds;
}
ProgressMode progress_mode() {
  return g_mode;
}
double progress_interval() {
  return g_interval;
}
bool progress_bar_on_terminal() {
  return g_mode == ProgressMode::kAuto && stderr_is_terminal();
}

double remaining_seconds(double done, double total, double elapsed_seconds) {
  if (total <= 0 || done <= 0 || elapsed_seconds <= 0) return -1;
  return std::max(0.0, total - done) * elapsed_seconds / done;
}

std::string bar_text(double fraction, int width) {
  if (!(fraction >= 0)) fraction = 0;  // NaN too
  const int filled = static_cast<int>(width * std::min(1.0, fraction));
  return std::string(filled, '#') + std::string(width - filled, '.');
}

void show_status_line(const std::string& text) {
  if (!stderr_is_terminal()) return;
  std::lock_guard<std::mutex> lock(g_status_mutex);
  g_status_text = text;
  draw_status_locked();
}

void clear_status_line() {
  if (!stderr_is_terminal()) return;
  std::lock_guard<std::mutex> lock(g_status_mutex);
  erase_status_locked();
  g_status_text.clear();
}

StatusLinePause::StatusLinePause() {
  g_status_mutex.lock();
  erase_status_locked();
}

StatusLinePause::~StatusLinePause() {
  draw_status_locked();
  g_status_mutex.unlock();
}

Progress::Progress(std::string label, uint64_t total, double interval_seconds, bool enabled)
    : label_(std::move(label)),
      total_(total),
      interval_(interval_seconds > 0 ? interval_seconds : progress_interval()),
      enabled_(enabled),
      tty_(progress_bar_on_terminal()),
      start_(std::chrono::steady_clock::now()),
      last_report_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_ && enabled_) clear_status_line();
}

void Progress::advance(uint64_t n) {
  done_ += n;
  if (!enabled_ || progress_mode() == ProgressMode::kOff) return;
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
  const double left = remaining_seconds(double(done), double(total), elapsed);
  const std::string left_text = left >= 0 ? format_duration(left) + " left" : "";
  if (tty_ && !final) {
    char line[256];
    // The time left first: a narrow terminal clips the end of the line.
    std::snprintf(line, sizeof line, "%s [%s] %llu/%llu %s| %.0f/s, %s", label_.c_str(),
                  bar_text(total ? double(done) / total : 0, 20).c_str(),
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                  left_text.empty() ? "" : (left_text + " ").c_str(), rate,
                  format_duration(elapsed).c_str());
    show_status_line(line);
    return;
  }
  if (tty_) clear_status_line();
  if (total)
    spdlog::info("{}: {}/{} ({:.1f}%), {:.0f}/s, {}{}", label_, done, total, 100.0 * done / total,
                 rate, format_duration(elapsed),
                 final ? " done" : (left_text.empty() ? "" : ", " + left_text));
  else
    spdlog::info("{}: {}, {:.0f}/s, {}{}", label_, done, rate, format_duration(elapsed),
                 final ? " done" : "");
}

}  // namespace sx

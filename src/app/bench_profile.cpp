#include "app/bench_profile.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "core/error.h"

#if TORCH_VERSION_MAJOR >= 2 && __has_include(<torch/csrc/autograd/profiler_kineto.h>)
#include <torch/csrc/autograd/profiler_kineto.h>
#define SX_HAVE_KINETO 1
#else
#define SX_HAVE_KINETO 0
#endif

namespace sx::app {

bool profiler_available() {
  return SX_HAVE_KINETO != 0;
}

#if SX_HAVE_KINETO
namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

struct Total {
  double us = 0;
  int64_t count = 0;
};

// The `top` names with the most time, per step.
void print_top(const char* what, const std::map<std::string, Total>& totals, int steps, int top) {
  std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
  double all = 0;
  for (const auto& r : rows) all += r.second.us;
  std::printf("  %s: %.2f ms per step in %zu names; the longest:\n", what, all / steps / 1e3,
              rows.size());
  for (int i = 0; i < top && i < static_cast<int>(rows.size()); ++i) {
    const auto& [name, t] = rows[static_cast<size_t>(i)];
    std::printf("    %8.3f ms %7.1f calls  %s\n", t.us / steps / 1e3,
                static_cast<double>(t.count) / steps, name.substr(0, 110).c_str());
  }
}

// Length of the union of [start, end) intervals.
double covered_us(std::vector<std::pair<double, double>> spans) {
  std::sort(spans.begin(), spans.end());
  double sum = 0, begin = -1, end = -1;
  for (const auto& [b, e] : spans) {
    if (b > end) {
      sum += end - begin;
      begin = b;
      end = e;
    } else {
      end = std::max(end, e);
    }
  }
  return sum + (end - begin);
}

}  // namespace

void profile_steps(const std::string& title, const std::string& trace_path, int steps,
                   const std::function<void()>& one_step,
                   const std::function<void()>& synchronize) {
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  const std::set<impl::ActivityType> activities{impl::ActivityType::CPU, impl::ActivityType::CUDA};
  prof::prepareProfiler(config, activities);
  synchronize();
  prof::enableProfiler(config, activities);
  for (int i = 0; i < steps; ++i) one_step();
  synchronize();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();

  std::map<std::string, Total> device, host;
  std::vector<std::pair<double, double>> device_spans;
  double first = 1e300, last = 0;
  for (const auto& e : result->events()) {
    const double start = static_cast<double>(e.startNs()) / 1e3,
                 us = static_cast<double>(e.durationNs()) / 1e3;
    first = std::min(first, start);
    last = std::max(last, start + us);
    Total& t = (e.deviceType() == c10::DeviceType::CUDA ? device : host)[e.name()];
    t.us += us;
    ++t.count;
    if (e.deviceType() == c10::DeviceType::CUDA) device_spans.emplace_back(start, start + us);
  }
  const double wall = last > first ? last - first : 0;
  std::printf("profile %s: %d steps, %.2f ms per step from the first to the last event\n",
              title.c_str(), steps, wall / steps / 1e3);
  std::printf("  device busy (union of its activities): %.2f ms per step = %.0f%%\n",
              covered_us(device_spans) / steps / 1e3,
              wall > 0 ? 100.0 * covered_us(device_spans) / wall : 0.0);
  print_top("device activities", device, steps, 30);
  print_top("host ops (nested ones counted in their callers too)", host, steps, 30);
  result->save(trace_path);
  std::printf("  trace: %s\n", trace_path.c_str());
  std::fflush(stdout);
}
#else
void profile_steps(const std::string&, const std::string&, int, const std::function<void()>&,
                   const std::function<void()>&) {
  throw UserError("--profile needs a build against libtorch 2.x with kineto (this is " +
                  std::string(TORCH_VERSION) + ")");
}
#endif

}  // namespace sx::app

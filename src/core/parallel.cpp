#include "core/parallel.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sx {

size_t resolve_threads(size_t threads) {
  if (threads) return threads;
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

void parallel_for(size_t n, size_t threads,
                  const std::function<void(size_t begin, size_t end)>& body) {
  if (n == 0) return;
  threads = std::min(resolve_threads(threads), n);
  if (threads == 1) {
    body(0, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> workers;
  const size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 0; t < threads; ++t) {
    size_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&, begin, end] {
      try {
        body(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

void parallel_claim(size_t n, size_t threads, const std::function<void(IndexClaims&)>& worker) {
  IndexClaims claims(n);
  const size_t workers = std::min(resolve_threads(threads), n);
  parallel_for(workers, workers, [&](size_t, size_t) { worker(claims); });
}

}  // namespace sx

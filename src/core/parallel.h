// parallel_for over [0, n) on up to `threads` std::threads (0 = all cores). The first
// exception thrown by any worker is rethrown on the caller's thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>

namespace sx {

size_t resolve_threads(size_t threads);
void parallel_for(size_t n, size_t threads,
                  const std::function<void(size_t begin, size_t end)>& body);

// The indices [0, n), each handed out once, in increasing order, to whichever thread asks.
class IndexClaims {
 public:
  explicit IndexClaims(size_t n) : n_(n) {}
  // The next unclaimed index; false when none is left.
  bool next(size_t& i) { return (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_; }

 private:
  std::atomic<size_t> next_{0};
  size_t n_;
};

// Runs `worker(claims)` on up to `threads` threads (0 = all cores, never more than n), each
// taking indices of [0, n) from the same claims until none is left: unlike parallel_for's
// fixed ranges, a thread slowed by another process on its core takes fewer. Each worker can
// keep its own scratch across its indices. Exceptions as parallel_for.
void parallel_claim(size_t n, size_t threads, const std::function<void(IndexClaims&)>& worker);

}  // namespace sx

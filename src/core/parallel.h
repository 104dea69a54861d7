// parallel_for over [0, n) on up to `threads` std::threads (0 = all cores). The first
// exception thrown by any worker is rethrown on the caller's thread.
#pragma once

#include <cstddef>
#include <functional>

namespace sx {

size_t resolve_threads(size_t threads);
void parallel_for(size_t n, size_t threads,
                  const std::function<void(size_t begin, size_t end)>& body);

}  // namespace sx

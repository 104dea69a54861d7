// Makes the next step's batch on a CPU thread while the current step runs (issue #10 item 6).
// A batch is a function of its position in the global pair sequence alone, so what is made
// ahead is exactly what would have been made in place: prefetching never changes results.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <utility>

namespace sx::train {

template <typename Batch>
class Prefetcher {
 public:
  using Make = std::function<Batch(uint64_t consumed)>;
  // `stride`: how far the position moves per step (the global batch).
  Prefetcher(Make make, uint64_t stride) : make_(std::move(make)), stride_(stride) {}
  ~Prefetcher() {
    if (next_.valid()) next_.wait();  // the thread may still use what make_ refers to
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The batch at `consumed` (made now unless it was made ahead), and starts making the one at
  // consumed + stride. `waited_s` receives how long this call blocked.
  Batch take(uint64_t consumed, double* waited_s = nullptr) {
    const auto start = std::chrono::steady_clock::now();
    std::optional<Batch> batch;
    if (next_.valid()) {
      if (next_at_ == consumed)
        batch.emplace(next_.get());  // rethrows what the thread threw
      else
        next_.wait();  // made for another position: never used
    }
    if (!batch) batch.emplace(make_(consumed));
    if (waited_s)
      *waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    next_at_ = consumed + stride_;
    next_ = std::async(std::launch::async, make_, next_at_);
    return std::move(*batch);
  }

 private:
  Make make_;
  uint64_t stride_;
  std::future<Batch> next_;
  uint64_t next_at_ = 0;
};

}  // namespace sx::train

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
    } else if (ahead_ && next_at_ == consumed) {
      batch.emplace(std::move(*ahead_));
    }
    ahead_.reset();
    if (!batch) batch.emplace(make_(consumed));
    if (waited_s)
      *waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    next_at_ = consumed + stride_;
    next_ = std::async(std::launch::async, make_, next_at_);
    return std::move(*batch);
  }

  // The batch the next take() returns if the thread has made it already (null otherwise, or
  // where making it threw: take() makes it again and throws there). Does not block; valid until
  // the next take().
  const Batch* ready_next() {
    if (next_.valid() && next_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      try {
        ahead_.emplace(next_.get());
      } catch (...) {
        return nullptr;  // next_ is spent: take() makes the batch in place and throws there
      }
    }
    return ahead_ ? &*ahead_ : nullptr;
  }

 private:
  Make make_;
  uint64_t stride_;
  std::future<Batch> next_;
  std::optional<Batch> ahead_;  // next_'s batch, taken out by ready_next()
  uint64_t next_at_ = 0;
};

}  // namespace sx::train

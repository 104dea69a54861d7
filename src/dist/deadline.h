// The deadline of every collective (dist.collective_timeout). Neither MPI nor NCCL has a
// timeout of its own: a stopped or vanished peer would leave the other ranks waiting forever.
// So every collective is started non-blocking and completed through await(), against the
// clock; past the deadline the rank names the collective and the step and ends the job.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace sx::dist {

// dist.collective_timeout in seconds; until it is set (before the configuration is loaded),
// the key's default.
void set_collective_timeout(double seconds);
double collective_timeout();

// The training step deadline messages name (0: before the first step, -1: start-up).
void set_step(int64_t step);
int64_t current_step();

// Polls `done` until it returns true: a few quick polls, then sleeps of 50 us growing to
// 200 us, so that a long wait for a slow peer does not burn a core. Past the deadline it logs
// "rank R: <what> at step S did not complete within dist.collective_timeout (T s)...", runs
// `before_abort` (e.g. to abort a NCCL communicator) and ends the job (MPI_Abort, exit 1).
void await(const std::string& what, const std::function<bool()>& done,
           const std::function<void()>& before_abort = {});

// "at step S" / "before the first step" / "during start-up": where the job is.
std::string where();

}  // namespace sx::dist

// `bench train --profile DIR`: a kineto profile of a few training steps (libtorch 2.x). Prints
// where the device time goes (kernels by name, per step), how busy the device was, and the
// host ops that took longest; saves the Chrome trace for a closer look (chrome://tracing,
// Perfetto). No torch in this header.
#pragma once

#include <functional>
#include <string>

namespace sx::app {

// Whether this build can profile (libtorch 2.x with kineto).
bool profiler_available();

// Runs `steps` calls of `one_step` under the profiler, then `synchronize`, and writes
// `trace_path` plus a summary on stdout headed by `title`. Throws UserError when unavailable.
void profile_steps(const std::string& title, const std::string& trace_path, int steps,
                   const std::function<void()>& one_step, const std::function<void()>& synchronize);

}  // namespace sx::app

// TensorFlow Addons' Triangular2CyclicalLearningRate, as Keras evaluates it: `step` is the
// number of updates done so far (0 for the first), step_size is in updates
// (3 epochs x steps per epoch in the notebook).
//   cycle = floor(1 + step / (2 step_size)),  x = |step / step_size - 2 cycle + 1|,
//   lr = lo + (hi - lo) max(0, 1 - x) / 2^(cycle - 1)
#pragma once

#include <cstdint>

namespace sx::model {

struct Triangular2 {
  double initial_lr;
  double maximal_lr;
  double step_size;

  double operator()(int64_t step) const;
};

}  // namespace sx::model

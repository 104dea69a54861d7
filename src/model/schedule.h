// TensorFlow Addons' Triangular2CyclicalLearningRate, as Keras evaluates it: `step` is the
// number of updates done so far (0 for the first), step_size is in updates
// (3 epochs x steps per epoch in the notebook). Any unit works for both alike: the trainer
// counts pairs (the pairs of the updates applied so far, and the half-cycle in pairs), which
// gives the same rates while the global batch stays the same and keeps the cycle when a
// resumed run changes it.
//   cycle = floor(1 + step / (2 step_size)),  x = |step / step_size - 2 cycle + 1|,
//   lr = lo + (hi - lo) max(0, 1 - x) / 2^(cycle - 1)
#pragma once

namespace sx::model {

struct Triangular2 {
  double initial_lr;
  double maximal_lr;
  double step_size;

  double operator()(double step) const;
};

}  // namespace sx::model

// Stop rules of the training loop, torch- and MPI-free so they are unit-testable.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace sx::train {

// Keras' EarlyStopping(monitor="val_loss", min_delta=0, patience): an epoch improves when
// its loss is strictly lower than the best so far; the wait counter resets on improvement.
struct EarlyStopping {
  int64_t patience = 9;
  double best = std::numeric_limits<double>::infinity();
  int64_t epochs_without_improvement = 0;

  // Returns true when this loss is a new best.
  bool update(double val_loss) {
    if (val_loss < best) {
      best = val_loss;
      epochs_without_improvement = 0;
      return true;
    }
    ++epochs_without_improvement;
    return false;
  }
  bool should_stop() const { return epochs_without_improvement >= patience; }
};

// The notebook's epoch arithmetic.
struct EpochPlan {
  int64_t global_batch = 0;
  int64_t train_batches = 0;
  int64_t val_batches = 0;
  int64_t steps_per_epoch = 0;
  int64_t max_epochs = 0;
};

inline EpochPlan plan_epochs(int64_t train_pairs, int64_t val_pairs, int64_t pairs_per_rank,
                             int64_t world, int64_t steps_per_epoch_override,
                             int64_t max_epochs_override) {
  EpochPlan p;
  p.global_batch = pairs_per_rank * world;
  p.train_batches = std::max<int64_t>(1, train_pairs / p.global_batch);
  p.val_batches = (val_pairs + p.global_batch - 1) / p.global_batch;
  p.steps_per_epoch = steps_per_epoch_override > 0 ? steps_per_epoch_override
                                                   : std::min(20 * p.val_batches, p.train_batches);
  p.steps_per_epoch = std::max<int64_t>(1, p.steps_per_epoch);
  p.max_epochs =
      max_epochs_override > 0
          ? max_epochs_override
          : std::max<int64_t>(30, std::llround(10.0 * p.train_batches / p.steps_per_epoch));
  return p;
}

}  // namespace sx::train

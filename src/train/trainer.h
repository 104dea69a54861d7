// The distributed trainer: composes the data layer (pairs -> token batches), the model layer
// (Siamese XLM-R, DBL loss, Keras Adam, Triangular2) and the communicators. Every rank runs
// run_training(); rank 0 decides validation outcomes, checkpoints, time-based stopping and
// writes the exported features, and broadcasts its decisions.
#pragma once

#include <string>

#include "core/config.h"
#include "dist/mpi_env.h"

namespace sx::train {

struct TrainOptions {
  std::string resume;  // "" = fresh start, "auto" = newest valid checkpoint in run.dir, or a path
  // A fresh start into a run.dir holding an earlier run's checkpoints or features moves its
  // files into run.dir/previous-<time>/ instead of refusing (train/run_dir.h).
  bool force = false;
};

// Returns the process exit code: 0 (finished: steps, epochs, early or time-based stop),
// kExitRequeue (stopped by a signal after checkpointing), kExitNonFinite. A setup mistake
// (config, data, files) throws UserError on rank 0 and returns kExitUserError elsewhere; a
// failure once training runs ends every rank (MPI_Abort).
int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options);

}  // namespace sx::train

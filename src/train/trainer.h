// The distributed trainer: composes the data layer (pairs -> token batches), the model layer
// (Siamese XLM-R, DBL loss, Keras Adam, Triangular2) and the communicators. Every rank runs
// run_training(): set-up (train/replica.h), then the loop (train/loop.h). Rank 0 decides
// validation outcomes, checkpoints, time-based stopping and writes the exported features, and
// broadcasts its decisions.
#pragma once

#include <functional>
#include <string>

#include "core/config.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "model/xlmr.h"

namespace sx::train {

// What a run's features are embedded from (export/features.h writes them; train does not know
// the export layer, the command hands it in).
struct FeatureSource {
  model::SiameseEncoder model{nullptr};
  const data::XlmrTokenizer* tokenizer = nullptr;
  const data::LabeledCorpus* multilingual = nullptr;  // split.multilingual
  const data::TestCorpus* test = nullptr;             // may be null
  std::string description;                            // of the model's weights
};
// Writes the features of `source` to `path`; called on every rank.
using FeatureWriter = std::function<void(const FeatureSource& source, const std::string& path)>;

struct TrainOptions {
  std::string resume;  // "" = fresh start, "auto" = newest valid checkpoint in run.dir, or a path
  // A fresh start into a run.dir holding an earlier run's checkpoints or features moves its
  // files into run.dir/previous-<time>/ instead of refusing (train/run_dir.h).
  bool force = false;
  FeatureWriter write_features;  // features_before.h5 and features.h5
};

// Returns the process exit code: 0 (finished: steps, epochs, early or time-based stop),
// kExitRequeue (stopped by a signal after checkpointing), kExitNonFinite. A setup mistake
// (config, data, files) throws UserError on rank 0 and returns kExitUserError elsewhere; a
// failure once training runs ends every rank (MPI_Abort).
int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options);

}  // namespace sx::train

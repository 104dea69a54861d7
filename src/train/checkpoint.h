// Training checkpoints in HDF5. Rank 0 writes them to a temporary file, flushes, fsyncs and
// renames, so a crash never leaves a half-written checkpoint under the final name.
//
// Layout (h5py: f["params"]["encoder.layer.0.attention.self.query.weight"][...]):
//   params/<HF name>       float32, the parameter's shape
//   optimizer/m, /v        float32 [N], Adam's moments over the flat parameter buffer
//   root attributes        format, step, epoch, pairs_consumed, adam_iterations,
//                          best_val_loss, epochs_without_improvement, train_seconds,
//                          bad_steps, world_size, config_hash, accumulation_steps,
//                          plan_global_batch, pairs_per_epoch, max_epochs, lr_step_pairs,
//                          lr_pairs, checksum
// Format 3 stores the schedule in pairs (PairPlan) and the learning rate's position; files of
// formats 1 and 2 hold lr_step_size (the half-cycle in steps) instead and load with an empty
// plan, which the trainer makes again from the global batch that wrote them.
// The checksum (FNV-1a over every dataset's bytes and the state attributes) detects
// truncated or corrupted files on load.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/stopping.h"

namespace sx::train {

struct TrainState {
  int64_t step = 0;            // global optimizer steps taken (skipped ones included)
  int64_t epoch = 0;           // epochs completed
  int64_t pairs_consumed = 0;  // position in the global pair sequence
  int64_t adam_iterations = 0;
  double best_val_loss = 0;  // +inf before the first validation
  int64_t epochs_without_improvement = 0;
  double train_seconds = 0;
  int64_t bad_steps = 0;  // non-finite steps skipped so far
  int64_t world_size = 1;
  std::string config_hash;
  int64_t accumulation_steps = 1;  // of the run that wrote it (with world_size: its global batch)
  PairPlan plan;                   // the schedule in pairs (empty: from formats 1 and 2)
  int64_t lr_pairs = 0;            // pairs of the updates applied so far: the rate's position
};

// A format 1 or 2 checkpoint's state completed with the plan of the run that wrote it (the
// plan made at its global batch): the plan, and the rate's position from its iterations.
void complete_legacy_state(TrainState& state, const PairPlan& plan_of_its_run);

struct Checkpoint {
  TrainState state;
  std::map<std::string, torch::Tensor> params;  // by HF name, CPU float32
  torch::Tensor adam_m, adam_v;                 // flat, CPU float32 (may be undefined for best.h5)
};

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads and verifies a checkpoint; a truncated or corrupted file is a UserError naming it.
Checkpoint read_checkpoint(const std::string& path, bool with_optimizer = true);

std::string checkpoint_dir(const std::string& run_dir);
std::string step_checkpoint_path(const std::string& run_dir, int64_t step);
std::string best_checkpoint_path(const std::string& run_dir);
// step-*.h5 files of run_dir, newest (highest step) first.
std::vector<std::string> list_step_checkpoints(const std::string& run_dir);
// Keeps the newest `keep` step checkpoints (best.h5 is separate and always kept).
void prune_step_checkpoints(const std::string& run_dir, int64_t keep);

}  // namespace sx::train

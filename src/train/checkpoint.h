// Training checkpoints in HDF5. Rank 0 writes them to a temporary file, flushes, fsyncs and
// renames, so a crash never leaves a half-written checkpoint under the final name.
//
// Layout (h5py: f["params"]["encoder.layer.0.attention.self.query.weight"][...]):
//   params/<HF name>       float32, the parameter's shape
//   optimizer/m, /v        float32 [N], Adam's moments over the flat parameter buffer
//   root attributes        format, checksum, and one per TrainState field, named as the
//                          field (train/train_state.h: step, epoch, pairs_consumed, ...)
// Format 3 also stores the schedule in pairs (PairPlan) and the learning rate's position, the
// input identities and the lineage; files of formats 1 and 2 load with an empty plan, which the
// trainer makes again from the global batch that wrote them.
// The checksum (XXH3; FNV-1a in format 1) over every dataset's bytes and the state attributes
// detects truncated or corrupted files on load.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/train_state.h"

namespace sx::train {

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
// The lineage a step checkpoint was written by ("" for files of formats 1 and 2, or unreadable).
std::string checkpoint_lineage(const std::string& path);
// Keeps the newest `keep` step checkpoints of `lineage` (a fresh run and its resumes) and
// removes its older ones. Another run's files (another lineage, or none), the newest step
// checkpoint of all and best.h5 are never touched.
void prune_step_checkpoints(const std::string& run_dir, int64_t keep, const std::string& lineage);

}  // namespace sx::train

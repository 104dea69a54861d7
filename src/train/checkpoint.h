// Training checkpoints in HDF5. Rank 0 writes them to a temporary file, flushes, fsyncs and
// renames, so a crash never leaves a half-written checkpoint under the final name.
//
// Layout (h5py: f["params"]["encoder.layer.0.attention.self.query.weight"][...]):
//   params/<HF name>       float32, the parameter's shape
//   optimizer/m, /v        float32 [N], Adam's moments over the flat parameter buffer
//   optimizer/layout       strings: the parameter names in the order of m's and v's values
//                          (format 4; in files of format 3 the order is
//                          FlatParameters::registration_order())
//   root attributes        format, checksum, and one per TrainState field, named as the
//                          field (train/train_state.h: step, epoch, pairs_consumed, ...)
// Format 3 also stores the schedule in pairs (PairPlan) and the learning rate's position, the
// input identities and the lineage. Files of formats 1 and 2 (earlier releases) still load, so
// their weights serve export, embed, predict and export-hf; training no longer resumes from
// them (check_resumable).
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

// The newest format: 4 adds optimizer/layout (files of format 3, without it, have the moments
// in the plain reverse registration order and still resume). write_checkpoint writes 4 where
// the moments come with their layout, else 3 (best.h5: older releases still read it).
// 5 adds the epoch's loss so far; 6 says which form of config_hash the state holds.
inline constexpr int64_t kCheckpointFormat = 6;
// The oldest format training resumes from.
inline constexpr int64_t kFirstResumableFormat = 3;

struct Checkpoint {
  int64_t format = kCheckpointFormat;  // of the file read (write_checkpoint picks its own)
  TrainState state;
  std::map<std::string, torch::Tensor> params;  // by HF name, CPU float32
  torch::Tensor adam_m, adam_v;                 // flat, CPU float32 (may be undefined for best.h5)
  // The names of params in the order of adam_m's and adam_v's values; empty: not recorded.
  std::vector<std::string> moment_layout;
};

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads and verifies a checkpoint; a truncated or corrupted file is a UserError naming it.
Checkpoint read_checkpoint(const std::string& path, bool with_optimizer = true);

// A UserError unless training can resume from `checkpoint` (read from `path`): a file of format
// 3 or later written by training (with its schedule in pairs and optimizer state).
void check_resumable(const Checkpoint& checkpoint, const std::string& path);

std::string checkpoint_dir(const std::string& run_dir);
// "step-0000000042.h5": the file name of step 42's checkpoint.
std::string step_checkpoint_name(int64_t step);
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

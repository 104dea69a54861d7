// A run directory belongs to one run and the resumes that continue it. A fresh start into a
// directory that holds an earlier run's checkpoints or features is refused; with --force the
// earlier run's files are first moved into run.dir/previous-<UTC time>/ (nothing is deleted).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/train_state.h"

namespace sx::train {

struct Checkpoint;

// The earlier run's results in run_dir that a fresh run would overwrite, relative to run_dir:
// its step checkpoints, checkpoints/best.h5 and features.h5. (features_before.h5 alone is not
// one: the untrained encoder's features, made again from the configuration; it is what a job
// killed before its first checkpoint leaves, and its requeue with --resume auto starts afresh.)
std::vector<std::string> earlier_run_results(const std::string& run_dir);

// Who claims run_dir: `train` without --resume, before it writes anything there; or --resume
// auto that found no step checkpoint, once this run writes its log/ and config.resolved.yaml
// there (they stay).
enum class Claimant { kFreshStart, kResumeFoundNothing };

// Makes run_dir ready for a fresh run. When it holds no earlier run's results, only the
// metrics.jsonl (and features_before.h5) of a run that stopped before its first checkpoint
// are moved into run_dir/previous-<UTC time>/ (returned; "" when there are none). Otherwise,
// without `force`, a UserError saying to pass --resume auto or --force (to a
// kResumeFoundNothing: to add --force); with it, the earlier run's files are moved into a new
// run_dir/previous-<UTC time>/ folder, whose path is returned: its results, checkpoints/,
// features_before.h5, metrics.jsonl and evaluation.json, and for a kFreshStart also log/ and
// config.resolved.yaml.
std::string claim_run_dir(const std::string& run_dir, bool force, Claimant claimant);

// train_state.h's config_hash_form of this release.
inline constexpr int64_t kConfigHashOfExactNumbers = 2;

// Whether `config` hashes as the run that wrote a checkpoint of state `then`: the hash of exact
// numbers, or from a checkpoint of an earlier release (format 5 or before) the hash of numbers
// cut to 6 significant digits it computed (a sweep's train.lr_max 3.1622776601683795e-05,
// requeued across an upgrade, still resumes). A newer checkpoint's hash is exact: a change past
// the sixth digit stays a change.
bool config_hash_matches(const TrainState& then, const Config& config);

// Whether `config` is the configuration of the run that wrote a checkpoint of state `then`, but
// for train.max_epochs (a finished run continued for more epochs; its first value was 0, the
// notebook's rule that made the plan's cap, or that cap).
bool same_results_but_max_epochs(const TrainState& then, const Config& config);

// The keys that change results and changed since the run that wrote the checkpoint at `path`
// (state `then`): "tokenizer.max_len: 128 then, 64 now", read from its run directory's
// config.resolved.yaml where that is still that run's configuration (its hash, or a
// continuation's with another train.max_epochs); none where it cannot be told (the file gone,
// another release's, a checkpoint outside its run directory).
std::vector<std::string> config_changes_since(const std::string& path, const TrainState& then,
                                              const Config& now);
// Likewise, the keys that change rounding or dropout's draw (*changes rounding*), which a
// resume accepts: it then continues no longer bit for bit.
std::vector<std::string> number_changes_since(const std::string& path, const TrainState& then,
                                              const Config& now);

// --resume PATH (`resumed_path`, whose state is `resumed`) starts another history from its step:
// what run_dir holds of the history it abandons would be taken for this one's (--resume auto at
// the next requeue picks the newest step checkpoint, the end of the run reloads best.h5). Moves
// into a new run_dir/previous-<UTC time>/checkpoints/ the step checkpoints at or past that step
// other than PATH itself, those of another run (lineage) at any step, and best.h5 when it was
// written past that step or by another run; with them, the outputs of that history's end
// (features.h5, evaluation.json, classifier.json, submission.csv and the pictures) and
// metrics.jsonl: a copy (this run drops its later lines), or the file itself when another run
// wrote it. Returns the folder ("" when nothing was moved). Only once the run is accepted.
std::string set_aside_abandoned_history(const std::string& run_dir, const std::string& resumed_path,
                                        const TrainState& resumed);

// The step checkpoint of the best epoch of the history `resumed` (read from `resumed_path`)
// belongs to: beside resumed_path, at resumed.best_step, of its lineage and readable (into
// `read` when given); "" when there is none.
std::string best_step_checkpoint(const std::string& resumed_path, const TrainState& resumed,
                                 Checkpoint* read = nullptr);

// After --resume PATH, where run.dir has no best.h5 (set aside above, or a new run.dir) while
// the resumed history validated a best: that best is the epoch-end step checkpoint at
// resumed.best_step beside PATH (same lineage), if it was kept. Writes best.h5 from it and
// returns its path, else "" (the run then exports its last weights, with a warning).
std::string restore_best_of_history(const std::string& run_dir, const std::string& resumed_path,
                                    const TrainState& resumed);

// Removes the temporary files of writers that were killed (checkpoints/*.h5.tmp.PID, as large
// as a checkpoint each, and run.dir's features.h5.tmp.PID, metrics.jsonl.tmp.PID and the like
// of the files the run, export and predict write); returns their paths. Only for the run that holds
// run_dir (core/run_dir_lock.h): no other command writes there then.
std::vector<std::string> remove_stale_temporaries(const std::string& run_dir);

// A UserError when a file the run writes (features, evaluation, metrics, best weights) is a
// directory in run_dir: the write would fail only at the end of the training.
void check_run_outputs_are_files(const std::string& run_dir);

// A new id for a fresh run's lineage (its resumes keep it): time, host, pid and randomness.
std::string new_lineage_id();

}  // namespace sx::train

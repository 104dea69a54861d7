#include "train/run_dir.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "train/checkpoint.h"

namespace sx::train {
namespace {

// What the end of a history leaves in run.dir besides its checkpoints: the final export, and
// what evaluate, predict and tools/plot_run.py make of it.
const char* const kOutputsOfAnEnd[] = {"features.h5",        "evaluation.json", "classifier.json",
                                       "submission.csv",     "evaluation.txt",  "tsne_after.png",
                                       "learning_curves.png"};

std::string utc_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// A folder name in run_dir that does not exist yet: previous-<time>, or with -2, -3, ...
std::string free_previous_dir(const std::string& run_dir) {
  const std::string base = files::join(run_dir, "previous-" + utc_time("%Y%m%dT%H%M%SZ"));
  std::string dir = base;
  for (int n = 2; files::exists(dir); ++n) dir = base + "-" + std::to_string(n);
  return dir;
}

std::string listing(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 3) out += " and " + std::to_string(names.size() - 3) + " more";
  return out;
}

}  // namespace

std::vector<std::string> earlier_run_results(const std::string& run_dir) {
  std::vector<std::string> out;
  const std::string checkpoints = files::join(run_dir, "checkpoints");
  for (const auto& path : list_step_checkpoints(run_dir))
    out.push_back("checkpoints/" + path.substr(checkpoints.size() + 1));
  for (const char* name : {"checkpoints/best.h5", "features.h5"})
    if (files::exists(files::join(run_dir, name))) out.push_back(name);
  return out;
}

namespace {

// Moves `names` (those that exist) from run_dir into a new previous-<time>/ folder; its path.
std::string move_aside(const std::string& run_dir, const std::vector<std::string>& names) {
  const std::string previous = free_previous_dir(run_dir);
  try {
    files::create_directories(previous);
    for (const auto& name : names) {
      if (!files::exists(files::join(run_dir, name))) continue;
      const size_t slash = name.rfind('/');  // "checkpoints/step-...": its folder too
      if (slash != std::string::npos)
        files::create_directories(files::join(previous, name.substr(0, slash)));
      files::rename(files::join(run_dir, name), files::join(previous, name));
    }
    files::fsync_path(run_dir);
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("run.dir: cannot move the earlier run's files aside: ") + e.what());
  }
  return previous;
}

}  // namespace

bool config_hash_matches(const TrainState& then, const Config& config) {
  if (config_result_hash(config) == then.config_hash) return true;
  return then.config_hash_form < kConfigHashOfExactNumbers &&
         config_result_hash_of_six_digits(config) == then.config_hash;
}

bool same_results_but_max_epochs(const TrainState& then, const Config& config) {
  for (const int64_t was : {int64_t{0}, then.max_epochs}) {
    Config c = config;
    c.train.max_epochs = was;
    if (config_hash_matches(then, c)) return true;
  }
  return false;
}

namespace {
// The configuration of the run that wrote the checkpoint at `path` (state `then`): its run
// directory's config.resolved.yaml while that is still the run's (its hash, or a continuation's
// with another train.max_epochs); none where it cannot be told.
std::optional<Config> config_of_checkpoint(const std::string& path, const TrainState& then) {
  const std::string run_dir = files::parent(files::parent(path));  // run.dir/checkpoints/step-N
  try {
    Config resolved = load_config(files::join(run_dir, "config.resolved.yaml"), {});
    if (!config_hash_matches(then, resolved) && !same_results_but_max_epochs(then, resolved))
      return std::nullopt;
    return resolved;
  } catch (const std::exception&) {
    return std::nullopt;  // gone, or another release's: the hashes alone then
  }
}
}  // namespace

std::vector<std::string> config_changes_since(const std::string& path, const TrainState& then,
                                              const Config& now) {
  const std::optional<Config> resolved = config_of_checkpoint(path, then);
  if (!resolved) return {};
  // An earlier release's file holds numbers cut to 6 digits: compared so, they are no change.
  return config_result_changes(*resolved, now, then.config_hash_form < kConfigHashOfExactNumbers);
}

std::vector<std::string> number_changes_since(const std::string& path, const TrainState& then,
                                              const Config& now) {
  const std::optional<Config> resolved = config_of_checkpoint(path, then);
  return resolved ? config_number_changes(*resolved, now) : std::vector<std::string>{};
}

std::string claim_run_dir(const std::string& run_dir, bool force, Claimant claimant) {
  const auto results = earlier_run_results(run_dir);
  // A run that stopped before its first checkpoint leaves only its metrics: a fresh start's
  // metrics.jsonl is its own (one start event, steps once), the dead run's goes aside.
  if (results.empty())
    return files::exists(files::join(run_dir, "metrics.jsonl"))
               ? move_aside(run_dir, {"metrics.jsonl", "features_before.h5"})
               : "";
  const std::string aside = files::join(run_dir, "previous-<time>/");
  if (!force && claimant == Claimant::kResumeFoundNothing) {
    const bool best =
        std::find(results.begin(), results.end(), "checkpoints/best.h5") != results.end();
    throw UserError("--resume auto: run.dir " + run_dir +
                    " holds no step checkpoint to resume from, only an earlier run's results (" +
                    listing(results) + "): " +
                    (best ? "best.h5 keeps the weights without the optimizer state a resume "
                            "needs, so "
                          : "") +
                    "pass --force as well to move them into " + aside + " and start afresh");
  }
  if (!force)
    throw UserError("run.dir " + run_dir + " holds an earlier run (" + listing(results) +
                    "): pass --resume auto to continue it, or --force to move its files into " +
                    aside + " and start afresh");
  // predict's outputs, and the pictures and table of tools/plot_run.py and the demo, too: a
  // fresh run kept the earlier run's beside its own.
  std::vector<std::string> names = {"checkpoints", "features_before.h5", "metrics.jsonl",
                                    "evaluation_before.json", "tsne_before.png"};
  names.insert(names.end(), std::begin(kOutputsOfAnEnd), std::end(kOutputsOfAnEnd));
  if (claimant == Claimant::kFreshStart) names.insert(names.end(), {"log", "config.resolved.yaml"});
  return move_aside(run_dir, names);
}

std::string set_aside_abandoned_history(const std::string& run_dir, const std::string& resumed_path,
                                        const TrainState& resumed) {
  std::vector<std::string> abandoned;
  bool another_run = false;  // run_dir held another run than the resumed one: its files all go
  auto of_another_run = [&](const std::string& lineage) {
    const bool other = !lineage.empty() && !resumed.lineage.empty() && lineage != resumed.lineage;
    another_run = another_run || other;
    return other;
  };
  const std::string dir = checkpoint_dir(run_dir);
  for (const auto& path : list_step_checkpoints(run_dir)) {
    const std::string name = path.substr(dir.size() + 1);  // step-<digits>.h5
    const int64_t step = std::stoll(name.substr(5, name.size() - 8));
    std::error_code same_error;
    if (std::filesystem::equivalent(path, resumed_path, same_error)) continue;
    if (of_another_run(checkpoint_lineage(path)) || step >= resumed.step)
      abandoned.push_back("checkpoints/" + name);
  }
  // best.h5 of the later history, or of another run, is not this history's best.
  const std::string best = best_checkpoint_path(run_dir);
  if (files::exists(best)) {
    const TrainState then = read_checkpoint(best, /*with_optimizer=*/false).state;
    if (of_another_run(then.lineage) || then.step > resumed.step || then.lineage != resumed.lineage)
      abandoned.push_back("checkpoints/best.h5");
  }
  if (abandoned.empty()) return "";
  // Another run's metrics are none of this history's: moved, not copied and kept up to the step
  // (PATH from elsewhere; a PATH in run_dir is of the run whose metrics these are).
  std::error_code same_error;
  const auto resumed_dir = std::filesystem::absolute(resumed_path, same_error).parent_path();
  if (another_run && !std::filesystem::equivalent(resumed_dir, dir, same_error))
    abandoned.push_back("metrics.jsonl");
  // The outputs of its end (features_before.h5 is both histories').
  abandoned.insert(abandoned.end(), std::begin(kOutputsOfAnEnd), std::end(kOutputsOfAnEnd));
  const std::string aside = move_aside(run_dir, abandoned);
  // Copies, since this run goes on with them: the metrics (this run keeps the lines up to its
  // step) and the configuration (what the checkpoints set aside were trained with).
  for (const char* name : {"metrics.jsonl", "config.resolved.yaml"}) {
    const std::string path = files::join(run_dir, name);
    if (!files::exists(path)) continue;
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      if (in.bad()) throw std::runtime_error("cannot read " + path);
      files::write_file_atomically(files::join(aside, name), bytes);
    } catch (const std::runtime_error& e) {
      throw UserError("run.dir: cannot keep a copy of the abandoned history's " +
                      std::string(name) + ": " + e.what());
    }
  }
  return aside;
}

std::string best_step_checkpoint(const std::string& resumed_path, const TrainState& resumed,
                                 Checkpoint* read) {
  if (resumed.best_step <= 0 || resumed.best_step > resumed.step ||
      !std::isfinite(resumed.best_val_loss))
    return "";
  const std::string source =
      files::join(files::parent(resumed_path), step_checkpoint_name(resumed.best_step));
  if (!files::exists(source)) return "";
  try {
    Checkpoint c = read_checkpoint(source, /*with_optimizer=*/false);
    if (c.state.lineage != resumed.lineage || c.state.step != resumed.best_step) return "";
    if (read) *read = std::move(c);
  } catch (const UserError&) {
    return "";  // unusable
  }
  return source;
}

std::string restore_best_of_history(const std::string& run_dir, const std::string& resumed_path,
                                    const TrainState& resumed) {
  const std::string best = best_checkpoint_path(run_dir);
  if (files::exists(best)) return "";
  Checkpoint c;
  const std::string source = best_step_checkpoint(resumed_path, resumed, &c);
  if (source.empty()) return "";  // the run goes on without best.h5 and says so when it ends
  files::create_directories(checkpoint_dir(run_dir));  // a new run.dir has none yet
  write_checkpoint(best, c);
  return source;
}

std::vector<std::string> remove_stale_temporaries(const std::string& run_dir) {
  std::vector<std::string> removed;
  const auto remove_in = [&](const std::string& dir,
                             const std::function<bool(const std::string&)>& ours) {
    if (!files::is_directory(dir)) return;
    for (const auto& name : files::list(dir)) {
      const std::string target = files::temporary_target(name);
      if (target.empty() || !ours(target)) continue;
      const std::string path = files::join(dir, name);
      if (::unlink(path.c_str()) == 0) removed.push_back(path);
    }
  };
  remove_in(checkpoint_dir(run_dir), [](const std::string& name) {
    return name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0;
  });
  // The files of run.dir itself that the run, export and predict write (features.h5 of a
  // killed export: as large as the features).
  remove_in(run_dir, [](const std::string& name) {
    for (const char* ours :
         {"features.h5", "features_before.h5", "metrics.jsonl", "evaluation.json",
          "evaluation_before.json", "config.resolved.yaml", "classifier.json", "submission.csv"})
      if (name == ours) return true;
    return false;
  });
  return removed;
}

void check_run_outputs_are_files(const std::string& run_dir) {
  for (const char* name : {"features_before.h5", "features.h5", "evaluation.json", "metrics.jsonl",
                           "checkpoints/best.h5"}) {
    const std::string path = files::join(run_dir, name);
    if (files::is_directory(path))
      throw UserError("run.dir: " + path +
                      " is a directory, expected a file this run writes (move it away, or give "
                      "this run another run.dir)");
  }
}

std::string new_lineage_id() {
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  Fnv1a hash;
  hash.update(host);
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  const long pid = static_cast<long>(getpid());
  const unsigned random = std::random_device{}();
  hash.update(&now, sizeof now);
  hash.update(&pid, sizeof pid);
  hash.update(&random, sizeof random);
  return utc_time("%Y%m%dT%H%M%SZ-") + hash.hex();
}

}  // namespace sx::train

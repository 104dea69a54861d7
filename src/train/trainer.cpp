#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/program_clock.h"
#include "core/strings.h"
#include "dist/deadline.h"
#include "train/loop.h"
#include "train/replica.h"
#include "train/signals.h"

namespace sx::train {

namespace {

// run.max_duration's accounting (stopping.h): the texts per rank of the final export, of the one
// before training and of a validation, and those a step embeds.
JobBudget job_budget(const Config& config, const dist::MpiEnv& env, const Replica& r) {
  const double labeled = static_cast<double>(r.split.multilingual.size()) / env.world;
  const double test =
      r.datasets.test ? static_cast<double>(r.datasets.test->size()) / env.world : 0;
  JobBudget budget(config.run.max_duration, labeled + test,
                   2.0 * config.train.pairs_per_rank * config.train.accumulation_steps);
  if (!config.export_.before_training_test) budget.export_before_covers(labeled);
  budget.reserve_validation(2.0 * static_cast<double>(r.val_pairs.size()) / env.world +
                            (config.train.epoch_auc ? labeled : 0));
  return budget;
}

// Whether this run writes features_before.h5, the untrained encoder's features (the notebook
// projects the data before training too): with export.before_training, at a fresh start, or at
// a resume from step 0 when the file is missing (a stop during the set-up checkpoints step 0
// and skips the export). Not when the run ends before its first step anyway, since the export
// (minutes at scale) would only delay that end: run.max_duration spent by the set-up, on rank
// 0's clock (it decides every stop), or a stop signal on any rank (a Slurm warning leaves
// little time); the loop's first check then ends the run. Every rank learns the answer here.
bool exports_before_training(const Config& config, const dist::MpiEnv& env, const Replica& r,
                             const JobBudget& budget) {
  if (!config.export_.before_training || r.state.step != 0) return false;
  const bool lead = env.rank == 0;
  const bool missing = lead && (r.resumed_from.empty() ||
                                !files::exists(files::join(config.run.dir, "features_before.h5")));
  const bool spent = lead && budget.limited() && program_seconds() >= budget.budget();
  const auto flags = dist::allreduce_max({missing ? 1 : 0, spent ? 1 : 0, stop_requested() ? 1 : 0},
                                         "stop check before the export before training");
  if (!flags[0]) return false;
  if (lead && flags[2] && !flags[1])
    spdlog::warn("a stop signal came during the set-up: the export before training is skipped");
  return !flags[1] && !flags[2];
}

// A budget spent before this run's first step: nothing trained, nothing worth exporting.
int refuse_unspent_run(const Config& config, const dist::MpiEnv& env, Loop& loop,
                       bool export_before) {
  loop.record_stop(StopReason::kTime, "time budget spent before the first step");
  if (env.rank == 0) {
    const std::string why =
        "run.max_duration: the job's budget of " + format_budget(config.run.max_duration) +
        " ran out before its first training step (" + format_budget(program_seconds()) +
        " used by the set-up" + (export_before ? " and the export before training" : "") +
        "; a step, a validation and the final export must fit too): nothing was trained or "
        "exported; give the job more time";
    log_error_to_files(why);
    std::fprintf(stderr, "siamese-xlmr: error: %s\n", why.c_str());
  }
  return kExitUserError;
}

// The notebook's TimeStopping acts at epoch ends, so the weights it exports were validated: a
// budget that ends the first epoch early ends it here (JobBudget reserved the time).
StopReason end_first_epoch_early(Loop& loop, const dist::MpiEnv& env, const Replica& r) {
  if (env.rank == 0)
    spdlog::warn(
        "run.max_duration ends training in its first epoch, at step {}: ending the epoch "
        "here to validate the weights the run exports",
        r.state.step);
  return loop.end_epoch() == StopReason::kNonFiniteValidation ? StopReason::kNonFiniteValidation
                                                              : StopReason::kTime;
}

// The connected replica's run: the export before training, the steps, the end.
int train_replica(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                  Replica& r) {
  JobBudget budget = job_budget(config, env, r);
  budget.end_of(JobBudget::kSetUp, program_seconds());
  const auto features_writer = [&](bool with_test) {
    return [&, with_test](const std::string& path) {
      const FeatureSource source{r.trainee.model, r.tokenizer.get(), &r.split.multilingual,
                                 with_test && r.datasets.test ? &*r.datasets.test : nullptr,
                                 r.model_description};
      options.write_features(source, path);
    };
  };
  // Of the labeled set alone with export.before_training_test: false, as the notebook's.
  const bool export_before = exports_before_training(config, env, r, budget);
  if (export_before) {
    features_writer(config.export_.before_training_test)(
        files::join(config.run.dir, "features_before.h5"));
    budget.end_of(JobBudget::kExportBefore, program_seconds());
  }
  Loop loop(config, env, r, budget);
  const int64_t first_step = r.state.step;
  StopReason reason = run_until_stop(loop);
  if (reason == StopReason::kTime && r.state.step == first_step)
    return refuse_unspent_run(config, env, loop, export_before);
  if (reason == StopReason::kTime && r.state.epoch == 0 && r.state.step > 0)
    reason = end_first_epoch_early(loop, env, r);
  return loop.finish(reason, features_writer(true));
}

}  // namespace

int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options) {
  Replica r;
  Checkpoint checkpoint;
  if (const int code = set_up_replica(config, env, options, r, checkpoint); code != kExitOk)
    return code;
  try {
    connect_replica(config, env, r, checkpoint);
    checkpoint = {};  // its tensors are in the replica now
    return train_replica(config, env, options, r);
  } catch (const std::exception& e) {
    // Alone, there is no other rank to stop: main prints the error and exits with its code,
    // without MPI_Abort's banner (the log file gets the whole text, as abort_job_for gives it).
    if (env.world > 1) dist::abort_job_for(e, env.rank);
    log_error_to_files("rank " + std::to_string(env.rank) + ": " + e.what());
    throw;
  }
}

}  // namespace sx::train

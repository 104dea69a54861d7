#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/program_clock.h"
#include "dist/deadline.h"
#include "train/loop.h"
#include "train/replica.h"

namespace sx::train {

int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options) {
  Replica r;
  Checkpoint checkpoint;
  if (const int code = set_up_replica(config, env, options, r, checkpoint); code != kExitOk)
    return code;
  try {
    connect_replica(config, env, r, checkpoint);
    checkpoint = {};  // its tensors are in the replica now
    const size_t export_texts =
        r.split.multilingual.size() + (r.datasets.test ? r.datasets.test->size() : 0);
    JobBudget budget(config.run.max_duration, static_cast<double>(export_texts) / env.world,
                     2.0 * config.train.pairs_per_rank * config.train.accumulation_steps);
    budget.end_of(JobBudget::kSetUp, program_seconds());
    const FeatureExport write_features = [&](const std::string& path) {
      const FeatureSource source{r.trainee.model, r.tokenizer.get(), &r.split.multilingual,
                                 r.datasets.test ? &*r.datasets.test : nullptr,
                                 r.model_description};
      options.write_features(source, path);
    };
    // The notebook projects the data before training too: the untrained encoder's features.
    if (config.export_.before_training && r.resumed_from.empty()) {
      write_features(files::join(config.run.dir, "features_before.h5"));
      budget.end_of(JobBudget::kExportBefore, program_seconds());
    }
    Loop loop(config, env, r, budget);
    StopReason reason = StopReason::kNone;
    while ((reason = loop.stop_check()) == StopReason::kNone) {
      if ((reason = loop.step()) != StopReason::kNone) break;
      if (loop.epoch_ended() && (reason = loop.end_epoch()) != StopReason::kNone) break;
    }
    return loop.finish(reason, write_features);
  } catch (const std::exception& e) {
    spdlog::critical("rank {}: {}", env.rank, e.what());
    flush_logs();
    std::fprintf(stderr, "siamese-xlmr: error: [rank %d] %s\n", env.rank, e.what());
    dist::abort_job(dynamic_cast<const UserError*>(&e) ? kExitUserError : kExitInternal);
  }
}

}  // namespace sx::train

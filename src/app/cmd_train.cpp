// train: one process per rank under mpirun or srun.
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "dist/mpi_env.h"
#include "dist/peers.h"
#include "export/features.h"
#include "train/signals.h"
#include "train/trainer.h"

namespace sx::app {

int cmd_train(const ConfigArgs& args, const std::string& resume, bool force) {
  train::install_stop_handlers();  // (main.cpp's did already when `train` was the first argument)
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;
  if (const int code = load_job_config(
          args, {"run", "data", "tokenizer", "model", "train", "dist", "export"}, env, config);
      code != kExitOk)
    return code;
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  set_progress_options(config.run.progress, config.run.progress_interval);
  if (env.rank == 0 && env.world > 1)
    log_for_launcher(LogLevel::kInfo, "layout: " + dist::describe_layout());
  train::TrainOptions options{resume, force, {}};
  options.write_features = [&](const train::FeatureSource& source, const std::string& path) {
    model::SiameseEncoder model = source.model;
    exporting::export_features(config, env, model, *source.tokenizer,
                               {source.multilingual, source.test, source.description}, path);
  };
  return train::run_training(config, env, options);
}

}  // namespace sx::app

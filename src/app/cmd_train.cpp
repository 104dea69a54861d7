// train: one process per rank under mpirun or srun.
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "dist/mpi_env.h"
#include "dist/peers.h"
#include "train/trainer.h"

namespace sx::app {

int cmd_train(const ConfigArgs& args, const std::string& resume, bool force) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;
  if (const int code = load_job_config(
          args, {"run", "data", "tokenizer", "model", "train", "dist", "export"}, env, config);
      code != kExitOk)
    return code;
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  set_progress_options(parse_progress_mode(config.run.progress), config.run.progress_interval);
  if (env.rank == 0 && env.world > 1) spdlog::info("layout: {}", dist::describe_layout());
  return train::run_training(config, env, {resume, force});
}

}  // namespace sx::app

// train: one process per rank under mpirun or srun.
#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "dist/mpi_env.h"
#include "train/trainer.h"

namespace sx::app {

int cmd_train(const ConfigArgs& args, const std::string& resume, bool force) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;  // one line for a mistake, not one per rank
  if (!load_config_on_every_rank(
          args, {"run", "data", "tokenizer", "model", "train", "dist", "export"}, env.rank, config))
    return kExitUserError;
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  set_progress_options(parse_progress_mode(config.run.progress), config.run.progress_interval);
  return train::run_training(config, env, {resume, force});
}

}  // namespace sx::app

// train: one process per rank under mpirun or srun.
#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/mpi_env.h"
#include "train/trainer.h"

namespace sx::app {

int cmd_train(const ConfigArgs& args, const std::string& resume) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  // Every rank validates alike and fails alike; only rank 0 reports the mistake (main prints
  // it), so the user reads one line, not one per rank.
  Config config;
  try {
    config = load_config(args.config_path, args.overrides);
    check_inputs(config, {"run", "data", "tokenizer", "model", "train", "dist", "export"});
  } catch (const UserError&) {
    if (env.rank == 0) throw;
    return kExitUserError;
  }
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  return train::run_training(config, env, {resume});
}

}  // namespace sx::app

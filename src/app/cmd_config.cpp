#include <cstdio>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"

namespace sx::app {

bool load_config_on_every_rank(const ConfigArgs& args, const std::vector<std::string>& sections,
                               int rank, Config& config) {
  try {
    config = load_config(args.config_path, args.overrides);
    check_inputs(config, sections);
    return true;
  } catch (const UserError&) {
    if (rank == 0) throw;
    return false;
  }
}

int cmd_config(const ConfigArgs& args, bool docs) {
  if (docs) {
    std::fputs(config_reference_markdown().c_str(), stdout);
    return 0;
  }
  Config config = load_config(args.config_path, args.overrides);
  std::fputs(config_to_yaml(config).c_str(), stdout);
  return 0;
}

}  // namespace sx::app

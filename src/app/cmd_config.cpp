#include <cstdio>

#include "app/commands.h"
#include "core/config.h"

namespace sx::app {

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

#include <cstdio>

#include "app/commands.h"
#include "core/error.h"

namespace sx::app {

int cmd_embed(const ConfigArgs&, const std::string&) {
  std::fprintf(stderr, "siamese-xlmr: error: 'embed' is not implemented yet (issue #4)\n");
  return kExitNotImplemented;
}

int cmd_version() {
  std::printf("siamese-xlmr %s\n", SX_VERSION);
  return 0;
}

}  // namespace sx::app

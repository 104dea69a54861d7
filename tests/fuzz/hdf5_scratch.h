// The file a checkpoint or features fuzzer writes each input to: on /dev/shm when there is
// one (no disk writes at thousands of inputs a second), removed when the fuzzer exits.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/files.h"

namespace sx::fuzz {

inline const std::string& scratch_file(const std::string& kind) {
  static const std::string path = [&] {
    const std::string dir = files::is_directory("/dev/shm") ? "/dev/shm" : files::temp_dir();
    return files::join(dir, "sx-fuzz-" + kind + "-" + std::to_string(::getpid()) + ".h5");
  }();
  static const bool registered = [] {
    std::atexit([] { ::unlink(path.c_str()); });
    return true;
  }();
  (void)registered;
  return path;
}

}  // namespace sx::fuzz

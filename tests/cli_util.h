// Runs the siamese-xlmr binary as a user would and captures what it prints.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "test_util.h"

namespace sx::test {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a shell command with `input` on stdin and captures stdout, stderr and the exit code.
inline RunResult run_command(const std::string& command, const std::string& input = "") {
  TempDir dir;
  std::string in = dir.write("stdin", input);
  std::string cmd =
      command + " <'" + in + "' >'" + dir.path("out") + "' 2>'" + dir.path("err") + "'";
  int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(dir.path("out"));
  r.err = read_file(dir.path("err"));
  return r;
}

inline RunResult run_cli(const std::string& args, const std::string& input = "") {
  return run_command(std::string("'") + SX_BINARY + "' " + args, input);
}

// run_cli with each file the program writes limited to `bytes` (RLIMIT_FSIZE, util-linux's
// prlimit) and SIGXFSZ ignored: a write past the limit fails with EFBIG ("File too large"), as
// one on a full disk fails with ENOSPC, without a file system to fill.
inline RunResult run_cli_with_file_limit(const std::string& args, size_t bytes) {
  return run_command("trap '' XFSZ; exec prlimit --fsize=" + std::to_string(bytes) + " '" +
                     SX_BINARY + "' " + args);
}

inline size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace sx::test

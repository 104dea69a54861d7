// Helpers shared by the test suites.
#pragma once

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/files.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace sx::test {

// The message of the UserError `f` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::string fixtures_dir() {
  return SX_FIXTURES_DIR;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

// A fresh temporary directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "sx-test-" + std::string(info ? info->test_suite_name() : "x") + "-" +
                       std::string(info ? info->name() : "y") + "-" + std::to_string(::getpid()) +
                       "-" + std::to_string(counter()++);
    for (char& c : name)
      if (c == '/') c = '_';  // parameterised test names hold slashes
    path_ = files::join(files::temp_dir(), name);
    files::remove_all(path_);
    files::create_directories(path_);
  }
  ~TempDir() { files::remove_all(path_); }
  std::string path(const std::string& name = "") const {
    return name.empty() ? path_ : files::join(path_, name);
  }
  std::string write(const std::string& name, const std::string& content) const {
    write_file(path(name), content);
    return path(name);
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string path_;
};

// How a forked child ended: its exit code, or the signal that killed it (0 if none), and what
// it wrote to stderr.
struct ChildResult {
  int exit_code = -1;
  int signal = 0;
  std::string err;
};

// Runs `body` in a forked child (no core dump; exit 0 when it returns, 3 when it throws) and
// waits for it: for code that must end the process, as a crash or an _exit would.
inline ChildResult run_in_child(const std::function<void()>& body) {
  int err_pipe[2];
  if (::pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(err_pipe[0]);
    ::dup2(err_pipe[1], STDERR_FILENO);
    const struct rlimit no_core { 0, 0 };
    ::setrlimit(RLIMIT_CORE, &no_core);
    try {
      body();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(err_pipe[1]);
  ChildResult result;
  char buffer[4096];
  for (ssize_t n; (n = ::read(err_pipe[0], buffer, sizeof buffer)) > 0;)
    result.err.append(buffer, static_cast<size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace sx::test

// Helpers shared by the test suites.
#pragma once

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/files.h"

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

}  // namespace sx::test

// Logging: a fatal error's text reaches the log files, and the terminal only through the
// command's own one-line error (not twice).
#include <gtest/gtest.h>

#include "core/log.h"
#include "test_util.h"

namespace sx {
namespace {

TEST(Log, AFatalErrorGoesToTheLogFilesOnly) {
  test::TempDir dir;
  const std::string file = dir.path("rank-0.log");
  init_logging({0, 1, LogLevel::kInfo, LogLevel::kWarn, file});
  testing::internal::CaptureStderr();
  log_error_to_files("rank 0: the disk is full");
  const std::string terminal = testing::internal::GetCapturedStderr();
  init_logging({0, 1, LogLevel::kWarn, LogLevel::kWarn, ""});  // releases the file
  EXPECT_EQ(terminal, "");
  const std::string logged = test::read_file(file);
  EXPECT_NE(logged.find("[critical] rank 0: the disk is full"), std::string::npos) << logged;
}

}  // namespace
}  // namespace sx

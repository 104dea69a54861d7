// The run.dir lock: one command at a time writes a run directory, and a refusal names the
// command that holds it.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/run_dir_lock.h"
#include "test_util.h"

namespace sx {
namespace {

std::string host_name() {
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  return host;
}

// Issue #12: a fresh run overwrote an earlier run's best.h5 and features in the same run.dir.
// Issue #25: export and predict took no lock; the refusal names the command holding it.
TEST(RunDirLock, ASecondCommandIsRefusedNamingTheOneThatHoldsTheDirectory) {
  test::TempDir dir;
  const std::string run = dir.path("run");
  const std::string pid = std::to_string(static_cast<long>(getpid()));
  {
    RunDirLock first(run, "train");  // creates run.dir
    EXPECT_EQ(test::read_file(run + "/.lock"),
              "`train` (pid " + pid + " on " + host_name() + ")\n");
    for (const char* command : {"train", "export", "predict"}) {
      // Its own open file: flock conflicts within one process too.
      const std::string e = test::error_of([&] { RunDirLock second(run, command); });
      EXPECT_EQ(e, "run.dir " + run + " is in use by `train` (pid " + pid + " on " + host_name() +
                       "), which is still running: wait for it to end, or give this command "
                       "another run.dir");
    }
  }
  RunDirLock again(run, "export");  // the first one's end released it
  EXPECT_EQ(test::read_file(run + "/.lock"), "`export` (pid " + pid + " on " + host_name() + ")\n");
}

// A training of an earlier version wrote "pid P on HOST" alone.
TEST(RunDirLock, AnEarlierVersionsHolderIsNamedAsATraining) {
  test::TempDir dir;
  const std::string lock = dir.path(".lock");
  test::write_file(lock, "pid 12345 on node7\n");
  const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_NE(test::error_of([&] {
              RunDirLock second(dir.path(), "export");
            }).find("is in use by a training (pid 12345 on node7), which is still running"),
            std::string::npos);
  ::close(fd);
}

}  // namespace
}  // namespace sx

// The SIGBUS guard of file mappings: a guarded mapping whose file shrank ends the process with
// one line naming the file; every other SIGBUS keeps its own action.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>

#include "core/mapping_guard.h"
#include "test_util.h"

namespace sx {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kFileBytes = 3 * kPage;

// A read-only private mapping of `path`, as data::MappedFile maps CSV files.
const char* map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  void* p = ::mmap(nullptr, kFileBytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path);
  return static_cast<const char*>(p);
}

// Reads a byte of the last page: past the end of a file that shrank.
void read_last_page(const char* mapping) {
  const volatile char* p = mapping + kFileBytes - 1;
  std::printf("%d\n", *p);  // not reached
}

std::string shrunk_line(const std::string& path, size_t now) {
  return "siamese-xlmr: error: " + path + " changed on disk while it was being read (now " +
         std::to_string(now) + " bytes, " + std::to_string(kFileBytes) +
         " when opened: truncated or rewritten in place); leave data files unchanged while a "
         "command uses them (replacing one with mv is safe)\n";
}

class MappingGuard : public ::testing::Test {
 protected:
  std::string file(const std::string& name) {
    return dir_.write(name, std::string(kFileBytes, 'x'));
  }
  test::TempDir dir_;
};

TEST_F(MappingGuard, AGuardedFileThatShrankEndsTheProcessWithOneLineNamingIt) {
  const std::string path = file("data.csv");
  const test::ChildResult r = test::run_in_child([&] {
    const char* mapping = map_file(path);
    guard_mapping(mapping, kFileBytes, path);
    if (::truncate(path.c_str(), 100) != 0) throw std::runtime_error("truncate");
    read_last_page(mapping);
  });
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, kExitUserError);
  EXPECT_EQ(r.err, shrunk_line(path, 100));
}

TEST_F(MappingGuard, ASigbusElsewhereKeepsItsAction) {
  // A fault in a mapping not guarded (or no longer), and a SIGBUS sent by kill: the process dies
  // of the signal as without the guard, so a bug is not reported as a changed file.
  const std::string guarded = file("guarded.csv"), other = file("other.csv");
  auto fault_in = [&](bool guard_then_forget) {
    return test::run_in_child([&] {
      guard_mapping(map_file(guarded), kFileBytes, guarded);
      const char* mapping = map_file(other);
      if (guard_then_forget) unguard_mapping(guard_mapping(mapping, kFileBytes, other));
      if (::truncate(other.c_str(), 0) != 0) throw std::runtime_error("truncate");
      read_last_page(mapping);
    });
  };
  for (bool forget : {false, true}) {
    const test::ChildResult r = fault_in(forget);
    EXPECT_EQ(r.signal, SIGBUS) << forget;
    EXPECT_EQ(r.err, "") << forget;
  }
  const test::ChildResult sent = test::run_in_child([&] {
    guard_mapping(map_file(guarded), kFileBytes, guarded);
    ::raise(SIGBUS);
  });
  EXPECT_EQ(sent.signal, SIGBUS);
  EXPECT_EQ(sent.err, "");
}

TEST_F(MappingGuard, TheHandlerComesBackWhenALibraryReplacedIt) {
  // Open MPI installs its own SIGBUS handler in MPI_Init; a mapping made after is guarded again.
  const std::string first = file("first.csv"), second = file("second.csv");
  const test::ChildResult r = test::run_in_child([&] {
    const char* mapping = map_file(first);
    guard_mapping(mapping, kFileBytes, first);
    ::signal(SIGBUS, SIG_DFL);
    guard_mapping(map_file(second), kFileBytes, second);
    if (::truncate(first.c_str(), 0) != 0) throw std::runtime_error("truncate");
    read_last_page(mapping);
  });
  EXPECT_EQ(r.exit_code, kExitUserError);
  EXPECT_EQ(r.err, shrunk_line(first, 0));
}

}  // namespace
}  // namespace sx

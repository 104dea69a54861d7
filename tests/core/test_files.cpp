// File helpers: atomic writes leave the old file or the whole new one, never a temporary.
#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>

#include "core/files.h"
#include "test_util.h"

namespace sx::files {
namespace {

void put(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(WriteAtomically, ReplacesTheFileAndLeavesNoTemporary) {
  test::TempDir dir;
  const std::string path = dir.path("out.txt");
  put(path, "old");
  write_atomically(path, [](const std::string& tmp) { put(tmp, "new"); });
  EXPECT_EQ(test::read_file(path), "new");
  EXPECT_EQ(list(dir.path()), (std::vector<std::string>{"out.txt"}));
}

TEST(WriteAtomically, AFailingWriterLeavesTheOldFileAndRemovesItsTemporary) {
  test::TempDir dir;
  const std::string path = dir.path("out.txt");
  put(path, "old");
  EXPECT_THROW(write_atomically(path,
                                [](const std::string& tmp) {
                                  put(tmp, "half");
                                  throw std::runtime_error("disk full");
                                }),
               std::runtime_error);
  EXPECT_EQ(test::read_file(path), "old");
  EXPECT_EQ(list(dir.path()), (std::vector<std::string>{"out.txt"}));
}

TEST(WriteAtomically, AWriterThatWroteNothingIsAnError) {
  test::TempDir dir;
  EXPECT_THROW(write_atomically(dir.path("x"), [](const std::string&) {}), std::runtime_error);
  EXPECT_TRUE(list(dir.path()).empty());
}

}  // namespace
}  // namespace sx::files

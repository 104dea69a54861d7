// File helpers: atomic writes leave the old file or the whole new one, never a temporary.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/checksum.h"
#include "core/error.h"
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

TEST(FileWriter, AFullDeviceIsAnErrorNamingThePathAndTheSystemsReason) {
  try {
    write_file("/dev/full", "some bytes");  // every write: ENOSPC
    ADD_FAILURE() << "a write to /dev/full succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write /dev/full: No space left on device");
  }
}

// A file's failures are the user's or operator's to fix: main exits 2 with the line.
TEST(FileWriter, AFailureIsAUserError) {
  EXPECT_THROW(write_file("/dev/full", "x"), UserError);
  EXPECT_THROW(write_file("/nope/x", "x"), UserError);
}

// Small writes are gathered into blocks: the file holds them all in order, across a block's
// end and around a large write, and a full device still fails (at close at the latest).
TEST(FileWriter, GathersSmallWritesAndKeepsTheirOrder) {
  test::TempDir dir;
  const std::string path = dir.path("out");
  std::string want;
  {
    FileWriter out(path);
    for (int i = 0; i < 200000; ++i) {
      const std::string piece = std::to_string(i) + ',';
      out.write(piece);
      out.put('\n');
      want += piece + '\n';
      if (i == 100000) {
        const std::string large(3 << 20, 'L');
        out.write(large);
        want += large;
      }
    }
    out.close();
  }
  EXPECT_TRUE(test::read_file(path) == want);
  FileWriter full("/dev/full");
  full.put('x');
  EXPECT_THROW(full.close(), UserError);
}

// Issue #25: predict left classifier.json without submission.csv on a full disk, export-hf a
// directory with config.json alone.
TEST(FileSet, EveryTargetIsReplacedOnlyOnceEveryFileIsWritten) {
  test::TempDir dir;
  put(dir.path("a.txt"), "old a");
  put(dir.path("b.txt"), "old b");
  std::vector<std::string> seen;  // what the targets held while each writer ran
  FileSet set;
  for (const char* name : {"a.txt", "b.txt"})
    set.add(dir.path(name), [&, name](const std::string& tmp) {
      seen.push_back(test::read_file(dir.path("a.txt")) + "|" + test::read_file(dir.path("b.txt")));
      write_file(tmp, std::string("new ") + name);
    });
  set.commit();
  EXPECT_EQ(seen, (std::vector<std::string>{"old a|old b", "old a|old b"}));
  EXPECT_EQ(test::read_file(dir.path("a.txt")), "new a.txt");
  EXPECT_EQ(test::read_file(dir.path("b.txt")), "new b.txt");
  EXPECT_EQ(list(dir.path()), (std::vector<std::string>{"a.txt", "b.txt"}));
}

TEST(FileSet, AFailedWriteChangesNoTargetAndLeavesNothingBehind) {
  test::TempDir dir;
  put(dir.path("a.txt"), "old a");
  FileSet set(FileSet::Parents::kCreate);
  set.add(dir.path("a.txt"), [](const std::string& tmp) { write_file(tmp, "new a"); });
  set.add(dir.path("new/deeper/b.txt"), [](const std::string& tmp) { write_file(tmp, "new b"); });
  set.add(dir.path("new/c.txt"), [](const std::string& tmp) {
    write_file(tmp, "half");
    throw std::runtime_error("cannot write " + tmp + ": No space left on device");
  });
  EXPECT_THROW(set.commit(), std::runtime_error);
  EXPECT_EQ(test::read_file(dir.path("a.txt")), "old a");
  // No temporary, and none of the directories the set made.
  EXPECT_EQ(list(dir.path()), (std::vector<std::string>{"a.txt"}));
}

// Two processes writing the same outputs at once without --force (export-hf into one --out):
// the one whose first rename comes second leaves the other's files and none of its own.
TEST(FileSet, WithoutReplacingATargetThatAppearedMeanwhileEndsTheSetUnchanged) {
  test::TempDir dir;
  FileSet set(FileSet::Parents::kMustExist, FileSet::Replace::kRefuse);
  set.add(dir.path("config.json"), [&](const std::string& tmp) {
    write_file(tmp, "mine");
    write_file(dir.path("config.json"), "the other's");  // the other process renamed first
    write_file(dir.path("model.bin"), "the other's too");
  });
  set.add(dir.path("model.bin"), [](const std::string& tmp) { write_file(tmp, "mine too"); });
  try {
    set.commit();
    FAIL() << "a target that appeared was replaced";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path("config.json") +
                                         " appeared while this command wrote it"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(test::read_file(dir.path("config.json")), "the other's");
  EXPECT_EQ(test::read_file(dir.path("model.bin")), "the other's too");
  EXPECT_EQ(list(dir.path()), (std::vector<std::string>{"config.json", "model.bin"}));
  // Targets that did not appear are written as with replacing.
  write_atomically(
      dir.path("new.txt"), [](const std::string& tmp) { write_file(tmp, "new"); },
      FileSet::Replace::kRefuse);
  EXPECT_EQ(test::read_file(dir.path("new.txt")), "new");
}

// A run directory shared by a group (umask 002) stays writable by it: the modes follow the
// umask (they were 0755 and 0644 whatever it said).
TEST(FileWriter, DirectoriesAndFilesFollowTheUmask) {
  test::TempDir dir;
  const mode_t saved = ::umask(002);
  create_directories(dir.path("run/checkpoints"));
  write_file(dir.path("run/config.resolved.yaml"), "x");
  ::umask(saved);
  struct stat st {};
  ASSERT_EQ(::stat(dir.path("run/checkpoints").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0775u);
  ASSERT_EQ(::stat(dir.path("run/config.resolved.yaml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0664u);
}

TEST(FileSet, DirectoriesAreMadeOnlyWhenAsked) {
  test::TempDir dir;
  FileSet strict;
  strict.add(dir.path("missing/x.txt"), [](const std::string& tmp) { write_file(tmp, "x"); });
  try {
    strict.commit();
    ADD_FAILURE() << "wrote into a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing/x.txt.tmp."), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(": No such file or directory"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(list(dir.path()).empty());
  FileSet making(FileSet::Parents::kCreate);
  making.add(dir.path("made/x.txt"), [](const std::string& tmp) { write_file(tmp, "x"); });
  making.commit();
  EXPECT_EQ(test::read_file(dir.path("made/x.txt")), "x");
}

// file_checksum reads a MiB at a time: the digest is the XXH3 of the whole content, whatever the
// size; file_identity hashes the first and last MiB only.
TEST(FileSet, ItsTemporariesAreKnownByNameWhateverTheirProcess) {
  test::TempDir dir;
  const std::string target = dir.path("features.h5");
  std::string seen;
  write_atomically(target, [&](const std::string& tmp) {
    seen = tmp;
    put(tmp, "x");
  });
  EXPECT_EQ(seen, temporary_path(target));
  EXPECT_EQ(temporary_target(seen.substr(seen.rfind('/') + 1)), "features.h5");
  EXPECT_EQ(temporary_target("metrics.jsonl.tmp.778"), "metrics.jsonl");
  EXPECT_EQ(temporary_target("a.tmp.b.tmp.12"), "a.tmp.b");
  for (const char* other : {"features.h5", "features.h5.tmp.", "features.h5.tmp.12x", ".tmp.12",
                            "notes.tmp", "x.tmp.-1"})
    EXPECT_EQ(temporary_target(other), "") << other;
}

TEST(Checksum, AFilesChecksumIsTheXxh3OfItsWholeContent) {
  test::TempDir dir;
  for (size_t size : {size_t{0}, size_t{5}, size_t{1} << 20, (size_t{5} << 19) + 7}) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + i / 7) & 0xFF);
    const std::string path = dir.write("f.bin", bytes);
    Xxh3 whole;
    whole.update(bytes);
    EXPECT_EQ(file_checksum(path), whole.hex()) << size;
    if (size < 3) continue;
    bytes[size / 2] = static_cast<char>(bytes[size / 2] ^ 1);  // the middle: identity misses it
    const std::string edited = dir.write("g.bin", bytes);
    EXPECT_NE(file_checksum(edited), whole.hex()) << size;
    if (size > (size_t{2} << 20)) {
      EXPECT_EQ(file_identity(edited), file_identity(path));
    }
  }
  EXPECT_THROW(file_checksum(dir.path("missing")), std::runtime_error);
}

}  // namespace
}  // namespace sx::files

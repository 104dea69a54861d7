// Ranks that cannot go on end the whole job, quickly and with one clear message (issue 12),
// through the CLI under `mpirun -np 2` (CTest label "mpi"): a stopped rank ends the job within
// dist.collective_timeout, naming the collective and the step; a failure during start-up on
// some ranks only ends every rank with the same code instead of hanging the others; ranks
// with different configurations or input files are refused, naming the difference.
// MPMD launches (`mpirun -np 1 A : -np 1 B`) give the two ranks different arguments.
#include <signal.h>

#include <chrono>
#include <regex>

#include "fixtures.h"
#include "test_util.h"

namespace sx {
namespace {

using Clock = std::chrono::steady_clock;
using test::TempDir;

// The `timeout` turns a hang (what these tests look for) into exit code 124 well before CTest's.
const std::string kMpirun = test::mpirun_prefix(90, 5);

// One rank of an MPMD launch: train's arguments, and mpirun's options for it (e.g. -wdir).
struct Rank {
  std::string args;
  std::string mpirun_options = "";
};

std::string rank_command(const Rank& rank) {
  return "-np 1 " + rank.mpirun_options + " '" + SX_BINARY + "' train " + rank.args;
}

// Two ranks, each with its own arguments; also returns how long the job took.
test::RunResult train_mpmd(const Rank& rank0, const Rank& rank1, double* seconds) {
  const auto start = Clock::now();
  auto r = test::run_command(kMpirun + rank_command(rank0) + " : " + rank_command(rank1));
  *seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

// Start-up takes a few seconds on a busy machine; a hang takes the 90 s of the timeout.
constexpr double kQuickly = 45;

TEST(StartUp, Rank0FailingToCreateTheRunDirectoryEndsEveryRankWithExit2) {
  TempDir dir;
  // run.dir below a plain file: only rank 0 creates it, so only rank 0 fails. (Before the
  // fix, rank 0 skipped the barrier that rank 1 waited in: the job hung.)
  const std::string blocker = dir.write("file", "not a directory");
  const std::string args =
      "--config '" + test::train_config(dir.path()) + "' run.dir=" + blocker + "/run";
  double seconds = 0;
  auto r = train_mpmd({args}, {args}, &seconds);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_LT(seconds, kQuickly);
  EXPECT_NE(r.err.find("siamese-xlmr: error: rank 0: run.dir: " + blocker +
                       " exists and is not a directory"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(test::count_occurrences(r.err, "siamese-xlmr: error:"), 1u) << r.err;
}

TEST(StartUp, AConfigurationFailingOnOneRankOnlyEndsEveryRankWithExit2) {
  TempDir dir;
  const std::string config = "--config '" + test::train_config(dir.path()) + "'";
  double seconds = 0;
  // (Before the fix, rank 1 went into MPI_Finalize while rank 0 went on into set-up.)
  auto r = train_mpmd({config + " train.max_steps=2"}, {config + " train.lr_max=fast"}, &seconds);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_LT(seconds, kQuickly);
  EXPECT_NE(r.err.find("siamese-xlmr: error: rank 1: override 'train.lr_max=fast'"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(test::count_occurrences(r.err, "siamese-xlmr: error:"), 1u) << r.err;
  EXPECT_FALSE(files::exists(dir.path("run"))) << "no rank started working";
}

TEST(StartUp, RanksWithDifferentConfigurationsAreRefusedNamingTheKey) {
  TempDir dir;
  const std::string config = "--config '" + test::train_config(dir.path()) + "'";
  double seconds = 0;
  auto r = train_mpmd({config + " train.lr_max=0.001"}, {config + " train.lr_max=0.002"}, &seconds);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_LT(seconds, kQuickly);
  EXPECT_NE(r.err.find("siamese-xlmr: error: rank 1: config key train.lr_max differs from rank "
                       "0's (0.002 vs 0.001)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(files::exists(dir.path("run")));
}

TEST(StartUp, RanksReadingDifferentDataFilesAreRefusedNamingTheFile) {
  TempDir dir;
  // The same relative path in each rank's working directory (mpirun -wdir): the same
  // configuration, but rank 1's copy of the file has one byte more.
  const std::string train_csv =
      test::read_file(files::join(test::synth_data_dir(), "jigsaw-unintended-bias-train.csv"));
  for (const char* node : {"node0", "node1"}) files::create_directories(dir.path(node));
  test::write_file(dir.path("node0/train.csv"), train_csv);
  test::write_file(dir.path("node1/train.csv"), train_csv + "\n");
  const std::string args =
      "--config '" + test::train_config(dir.path()) + "' data.train_csv=train.csv";
  double seconds = 0;
  auto r = train_mpmd({args, "-wdir " + dir.path("node0")}, {args, "-wdir " + dir.path("node1")},
                      &seconds);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_LT(seconds, kQuickly);
  const std::string size0 = std::to_string(train_csv.size()),
                    size1 = std::to_string(train_csv.size() + 1);
  EXPECT_NE(r.err.find("siamese-xlmr: error: rank 1: file data.train_csv differs from rank 0's (" +
                       size1 + " bytes"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(" vs " + size0 + " bytes"), std::string::npos) << r.err;
}

TEST(Deadline, AStoppedRankEndsTheJobWithinTheTimeoutNamingTheCollectiveAndStep) {
  TempDir dir;
  const int timeout = 5;
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path(),
                          "dist.collective_timeout=" + std::to_string(timeout));
  const std::string run_dir = dir.path("run");
  const long pid = test::wait_for_rank_pid(run_dir, 1);
  ASSERT_GT(pid, 0) << test::read_file(dir.path("out"));
  // Training is under way: rank 0 has logged two steps.
  ASSERT_GE(test::wait_for_steps(run_dir, 2), 2u) << test::read_file(dir.path("out"));
  const auto stopped = Clock::now();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGSTOP), 0);
  const int rc = run.wait(timeout + 60);
  const double took = std::chrono::duration<double>(Clock::now() - stopped).count();
  ::kill(static_cast<pid_t>(pid), SIGKILL);  // should it have survived the job
  const std::string out = test::read_file(dir.path("out"));
  ASSERT_NE(rc, -1) << "job still running a minute after its rank 1 was stopped\n" << out;
  EXPECT_NE(rc, 0) << out;
  // The deadline, plus a step, plus MPI_Abort's clean-up, on a busy machine.
  EXPECT_LT(took, timeout + 15.0) << out;
  // The collective pending when rank 1 stopped depends on timing: a step's all-reduce, or at an
  // epoch's end "the gather of the epoch's embeddings" (an apostrophe; the pattern once missed
  // it, so this test failed when the stop landed on an epoch's end).
  const std::regex named(
      "rank 0: the [A-Za-z' -]+ at step [0-9]+ did not complete within "
      "dist.collective_timeout \\(5 s\\)");
  EXPECT_TRUE(std::regex_search(out, named)) << out;
}

TEST(DataFiles, AFileRewrittenShorterDuringTrainingEndsTheJobWithOneLineNamingIt) {
  // The ranks read texts through their mappings of the CSV files as batches need them: a file
  // rewritten shorter in place (cp, an editor) during training killed a rank with SIGBUS and
  // Open MPI's backtrace.
  TempDir dir;
  const std::string train_csv = dir.write(
      "train.csv",
      test::read_file(files::join(test::synth_data_dir(), "jigsaw-unintended-bias-train.csv")));
  auto config = test::train_config(dir.path(), "  max_epochs: 100000\n");
  test::BackgroundRun run(2, config, dir.path(), "data.train_csv=" + train_csv);
  // Training is under way: rank 0 has logged two steps.
  ASSERT_GE(test::wait_for_steps(dir.path("run"), 2), 2u) << test::read_file(dir.path("out"));
  test::write_file(train_csv, "id,comment_text,toxic\n");
  const int rc = run.wait(60);
  const std::string out = test::read_file(dir.path("out"));
  ASSERT_NE(rc, -1) << "job still running a minute after its training file shrank\n" << out;
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("siamese-xlmr: error: " + train_csv +
                     " changed on disk while it was being read (now 22 bytes, "),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("Process received signal"), std::string::npos) << out;  // Open MPI's
  // The rank that faulted left the line in its log too (rank logs ended without it).
  const std::string logs = test::read_file(dir.path("run/log/rank-0.log")) +
                           test::read_file(dir.path("run/log/rank-1.log"));
  EXPECT_NE(
      logs.find("siamese-xlmr: error: " + train_csv + " changed on disk while it was being read"),
      std::string::npos)
      << logs;
}

}  // namespace
}  // namespace sx

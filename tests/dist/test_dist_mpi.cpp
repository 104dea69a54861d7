// The control-plane collectives on 2 ranks (`mpirun -np 2`, CTest label "mpi"): buffers that
// travel in several pieces (the piece limit lowered to 3 elements, as if 3 were 2^31),
// start-up agreement, and the comparison of what ranks hold.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "dist/chunks.h"
#include "dist/deadline.h"
#include "dist/mpi_env.h"
#include "dist/peers.h"
#include "mpi_main.h"

namespace sx::dist {
namespace {

// This rank (the shared MPI main sets it).
const dist::MpiEnv& g_env = test::mpi_env();

class SmallPieces : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(g_env.world, 2) << "run under mpirun -np 2";
    set_max_mpi_count_for_tests(3);
  }
  void TearDown() override { set_max_mpi_count_for_tests(INT_MAX); }
};

TEST_F(SmallPieces, GatherConcatenatesUnevenBuffersInRankOrder) {
  // Rank 0 holds 7 floats, rank 1 holds 12: several rounds of at most 3 in all.
  const int n = g_env.rank == 0 ? 7 : 12;
  std::vector<float> local(static_cast<size_t>(n));
  std::iota(local.begin(), local.end(), g_env.rank == 0 ? 0.f : 7.f);
  const std::vector<float> all = gather(local, 0, "test gather");
  if (g_env.rank != 0) {
    EXPECT_TRUE(all.empty());
    return;
  }
  std::vector<float> expected(19);
  std::iota(expected.begin(), expected.end(), 0.f);
  EXPECT_EQ(all, expected);
}

TEST_F(SmallPieces, GatherOfTextsKeepsEachRanksText) {
  const std::string mine = g_env.rank == 0 ? "" : "rank one's rather long text";
  const auto texts = gather(mine, 0, "test gather of texts");
  if (g_env.rank == 0) {
    EXPECT_EQ(texts, (std::vector<std::string>{"", "rank one's rather long text"}));
  }
}

TEST_F(SmallPieces, BroadcastsCarryRootsValuesWhateverTheSize) {
  std::vector<double> values;
  std::string text;
  if (g_env.rank == 1) {
    values = {1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5};
    text = "a text of more than three bytes";
  }
  broadcast(values, 1, "test broadcast");
  broadcast(text, 1, "test broadcast");
  EXPECT_EQ(values, (std::vector<double>{1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5}));
  EXPECT_EQ(text, "a text of more than three bytes");
  std::vector<uint8_t> bytes(11, static_cast<uint8_t>(g_env.rank == 0 ? 9 : 0));
  broadcast_bytes(bytes.data(), static_cast<int64_t>(bytes.size()), 0, "test broadcast");
  EXPECT_EQ(bytes, std::vector<uint8_t>(11, 9));
}

TEST_F(SmallPieces, ReductionsCombineEveryElement) {
  std::vector<double> ones(8, 1.0 + g_env.rank);
  EXPECT_EQ(allreduce_sum(ones, "test sum"), std::vector<double>(8, 3.0));
  std::vector<int64_t> ranks(5, g_env.rank);
  EXPECT_EQ(allreduce_max(ranks, "test max"), std::vector<int64_t>(5, 1));
  std::vector<uint64_t> bits(7, uint64_t{1} << g_env.rank);
  allreduce_or(bits, "test or");
  EXPECT_EQ(bits, std::vector<uint64_t>(7, 3));
  barrier("test barrier");
}

TEST(Agreement, EveryRankGetsTheLowestFailingRanksCodeAndRankZeroPrintsEachFailure) {
  EXPECT_EQ(agree({}, "test phase"), kExitOk);
  Outcome mine;
  if (g_env.rank == 1) mine = {kExitUserError, "cannot read data.train_csv"};
  ::testing::internal::CaptureStderr();
  const int code = agree(mine, "test phase");
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, kExitUserError);
  if (g_env.rank == 0)
    EXPECT_EQ(printed, "siamese-xlmr: error: rank 1: cannot read data.train_csv\n");
  else
    EXPECT_EQ(printed, "");
  // Both fail: the lowest rank's code is everyone's; both messages are printed.
  mine = g_env.rank == 0 ? Outcome{kExitInternal, "zero"} : Outcome{kExitUserError, "one"};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(agree(mine, "test phase"), kExitInternal);
  const std::string both = ::testing::internal::GetCapturedStderr();
  if (g_env.rank == 0) {
    EXPECT_EQ(both, "siamese-xlmr: error: rank 0: zero\nsiamese-xlmr: error: rank 1: one\n");
  }
  // The same mistake on every rank (a shared configuration): said once, as one rank says it.
  mine = {kExitUserError, "c.yaml:21: unknown key 'train.epochs'"};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(agree(mine, "test phase"), kExitUserError);
  const std::string same = ::testing::internal::GetCapturedStderr();
  if (g_env.rank == 0) {
    EXPECT_EQ(same, "siamese-xlmr: error: c.yaml:21: unknown key 'train.epochs'\n");
  }
}

TEST(Agreement, AttemptTurnsExceptionsIntoOutcomes) {
  EXPECT_EQ(attempt([] {}).code, kExitOk);
  Outcome user = attempt([] { throw UserError("run.dir: no"); });
  EXPECT_EQ(user.code, kExitUserError);
  EXPECT_EQ(user.message, "run.dir: no");
  Outcome bug = attempt([] { throw std::runtime_error("oops"); });
  EXPECT_EQ(bug.code, kExitInternal);
  EXPECT_EQ(bug.message, "internal error: oops");
}

TEST(Agreement, RanksHoldingDifferentItemsAreRefusedNamingTheDifference) {
  Items items{{"program version", "1"}, {"config key train.lr_max", "0.001"}};
  EXPECT_EQ(agree_on_items(items, "test comparison"), kExitOk);
  if (g_env.rank == 1) items[1].second = "0.002";
  ::testing::internal::CaptureStderr();
  const int code = agree_on_items(items, "test comparison");
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, kExitUserError);
  if (g_env.rank == 0) {
    EXPECT_EQ(printed,
              "siamese-xlmr: error: rank 1: config key train.lr_max differs from rank 0's "
              "(0.002 vs 0.001)\n");
  }
}

// A job suspended (scontrol suspend, SIGSTOP) while a rank waited in a collective was ended
// as "lost or stuck" when it was continued: the pause counted against dist.collective_timeout.
// Here a poll is held up for 2 s against a 1 s timeout and ends with the SIGCONT a continued
// process gets. (Without the SIGCONT the job would end: a blocking poll is no pause.)
TEST(Deadline, TimeTheProcessWasStoppedDoesNotCount) {
  const double before = collective_timeout();
  set_collective_timeout(1);
  int polls = 0;
  await(
      "test wait",
      [&] {
        if (polls++ == 1) {
          std::this_thread::sleep_for(std::chrono::seconds(2));
          std::raise(SIGCONT);
        }
        return polls > 2;
      },
      nullptr);
  set_collective_timeout(before);
  EXPECT_EQ(polls, 3);
}

TEST(Peers, EveryRankKnowsEachRanksHost) {
  const std::string host = host_name();
  ASSERT_EQ(rank_hosts(), (std::vector<std::string>{host, host}));  // mpirun -np 2: one host
  EXPECT_EQ(describe_layout(), "2 ranks on 1 host: " + host + " ranks 0, 1");
  EXPECT_EQ(describe_ranks({1}), "rank 1 on host " + host);
  // Ranks grouped by host, three or more consecutive ones as a range; ranks past the job's
  // (no host known) last.
  EXPECT_EQ(describe_ranks({0, 1, 2, 3, 4, 7}), "ranks 0, 1 on host " + host + ", ranks 2-4, 7");
}

TEST(Peers, RanksThatDoNotAnswerAreSilent) {
  EXPECT_EQ(silent_ranks(60), std::vector<int>{});  // both ask, both answer
  EXPECT_EQ(silent_ranks(60), std::vector<int>{});  // a second round on both matches too
  // The last test of the binary: rank 0's message stays unanswered.
  if (g_env.rank == 0) {
    EXPECT_EQ(silent_ranks(0.5), std::vector<int>{1});  // rank 1 keeps quiet
  }
}

}  // namespace
}  // namespace sx::dist

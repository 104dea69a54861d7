// The planning behind collectives of more than MPI's int count (chunks.h), the message that
// names how ranks differ, and the file fingerprint ranks compare: no MPI needed.
#include <gtest/gtest.h>

#include <climits>
#include <numeric>
#include <random>

#include "dist/chunks.h"
#include "dist/mpi_env.h"

namespace sx::dist {
namespace {

TEST(Pieces, CoverTheBufferInOrderWithinTheLimit) {
  EXPECT_TRUE(split_into_pieces(0, 3).empty());
  auto p = split_into_pieces(7, 3);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].offset, 0);
  EXPECT_EQ(p[0].count, 3);
  EXPECT_EQ(p[1].offset, 3);
  EXPECT_EQ(p[2].offset, 6);
  EXPECT_EQ(p[2].count, 1);
  // Past 2^31 elements with the real limit: int counts, nothing lost.
  const int64_t big = int64_t{5} * INT_MAX + 17;
  auto q = split_into_pieces(big, INT_MAX);
  ASSERT_EQ(q.size(), 6u);
  int64_t covered = 0;
  for (const Piece& piece : q) {
    EXPECT_EQ(piece.offset, covered);
    EXPECT_GT(piece.count, 0);
    covered += piece.count;
  }
  EXPECT_EQ(covered, big);
}

// Replays a plan: every element of every rank lands once, at its place in rank order, and
// no MPI count or displacement exceeds the limit.
void check_plan(const std::vector<int64_t>& counts, int64_t limit) {
  const auto plan = plan_gather(counts, limit);
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  std::vector<int> landed(static_cast<size_t>(total), 0);
  std::vector<int64_t> sent(counts.size(), 0), base(counts.size(), 0);
  for (size_t r = 1; r < counts.size(); ++r) base[r] = base[r - 1] + counts[r - 1];
  for (const GatherRound& round : plan) {
    EXPECT_LE(round.size, limit);
    int64_t displ = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      EXPECT_EQ(round.displs[r], displ);
      EXPECT_EQ(round.send_offsets[r], sent[r]) << "rank " << r << " sends in order";
      EXPECT_EQ(round.out_offsets[r], base[r] + sent[r]);
      for (int i = 0; i < round.counts[r]; ++i)
        ++landed[static_cast<size_t>(base[r] + sent[r] + i)];
      sent[r] += round.counts[r];
      displ += round.counts[r];
    }
    EXPECT_EQ(displ, round.size);
  }
  for (size_t r = 0; r < counts.size(); ++r) EXPECT_EQ(sent[r], counts[r]);
  for (int n : landed) ASSERT_EQ(n, 1);
  if (total <= limit) {
    EXPECT_LE(plan.size(), 1u) << "fits in one call";
  }
}

TEST(GatherPlan, EveryElementLandsOnceWithinTheLimit) {
  check_plan({7, 12, 0, 5}, 3);
  check_plan({7, 12, 0, 5}, 8);
  check_plan({0, 0}, 3);
  check_plan({1}, 1);
  check_plan({5, 5, 5}, 3);  // the smallest limit: one element per rank and round
  check_plan({3, 3}, 100);
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64_t> counts(1 + rng() % 5);
    for (auto& c : counts) c = rng() % 40;
    check_plan(counts, static_cast<int64_t>(counts.size() + rng() % 30));
  }
}

TEST(GatherPlan, CountsPastTwoToThe31FitInIntPieces) {
  const std::vector<int64_t> counts{int64_t{3} * INT_MAX, 10, INT_MAX};
  const auto plan = plan_gather(counts, INT_MAX);
  int64_t total = 0;
  for (const auto& round : plan) {
    EXPECT_LE(round.size, INT_MAX);
    for (int c : round.counts) EXPECT_GE(c, 0);
    total += round.size;
  }
  EXPECT_EQ(total, int64_t{4} * INT_MAX + 10);
  EXPECT_EQ(plan.back().out_offsets[2] + plan.back().counts[2], total);
}

TEST(Differences, NameTheFirstDifferingItemAndCountTheRest) {
  const Items root{{"program version", "1"},
                   {"config key train.lr_max", "0.001"},
                   {"config key train.lr_min", "0"},
                   {"file data.train_csv", "12 bytes"}};
  EXPECT_EQ(describe_difference(root, root), "");
  Items mine = root;
  mine[1].second = "0.002";
  EXPECT_EQ(describe_difference(mine, root),
            "config key train.lr_max differs from rank 0's (0.002 vs 0.001)");
  mine[3].second = "13 bytes";
  EXPECT_EQ(describe_difference(mine, root),
            "config key train.lr_max differs from rank 0's (0.002 vs 0.001); 1 more differ");
  Items fewer(root.begin(), root.end() - 1);
  EXPECT_EQ(describe_difference(fewer, root),
            "file data.train_csv is missing (rank 0's: 12 bytes)");
  Items more = root;
  more.emplace_back("config key new.key", "1");
  EXPECT_EQ(describe_difference(more, root), "config key new.key (1) is not on rank 0");
}

}  // namespace
}  // namespace sx::dist

#include "core/rng.h"

#include "test_util.h"

namespace sx {
namespace {

TEST(Rng, SameSeedSameSequenceDifferentSeedDifferent) {
  Rng a(1), b(1), c(2);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
}

TEST(Rng, SequenceIsPinned) {
  // Resume and multi-rank determinism depend on this sequence never changing silently.
  Rng r(42);
  EXPECT_EQ(r.next(), 0x15780b2e0c2ec716ull) << std::hex << Rng(42).next();
}

TEST(Rng, BelowIsInRangeAndRoughlyUniform) {
  Rng r(7);
  std::vector<int> counts(10);
  for (int i = 0; i < 100000; ++i) ++counts[r.below(10)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(Rng, MixSeedSeparatesStreams) {
  EXPECT_NE(mix_seed({1, 2}), mix_seed({2, 1}));
  EXPECT_EQ(mix_seed({1, 2, 3}), mix_seed({1, 2, 3}));
}

TEST(AliasTable, FollowsWeightsAndNeverDrawsZeroWeight) {
  AliasTable t({0.0, 1.0, 3.0, 0.0});
  Rng r(3);
  std::vector<int> counts(4);
  for (int i = 0; i < 80000; ++i) ++counts[t.draw(r)];
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[3], 0);
  EXPECT_NEAR(counts[2] / double(counts[1]), 3.0, 0.15);
}

TEST(AliasTable, RejectsAllZero) {
  EXPECT_THROW(AliasTable({0.0, 0.0}), std::invalid_argument);
}

}  // namespace
}  // namespace sx

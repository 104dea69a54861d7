// The training state's broadcast (train/train_state.h) under `mpirun -np 2` (CTest
// train.state_broadcast_mpi, label "mpi"): every field of the list reaches the other rank.
#include <gtest/gtest.h>

#include "dist/mpi_env.h"
#include "mpi_main.h"
#include "train/state_fields.h"

namespace sx::train {
namespace {

// This rank (the shared MPI main sets it).
const dist::MpiEnv& g_env = test::mpi_env();

TEST(TrainState, BroadcastCarriesEveryField) {
  ASSERT_EQ(g_env.world, 2) << "run under mpirun -np 2";
  const auto root = test::field_texts(test::distinct_state(1));
  const auto other = test::field_texts(test::distinct_state(2));
  ASSERT_EQ(root.size(), other.size());
  for (size_t i = 0; i < root.size(); ++i) ASSERT_NE(root[i], other[i]);  // every field differs

  TrainState s = test::distinct_state(g_env.rank == 0 ? 1 : 2);
  broadcast_state(s, 0);
  EXPECT_EQ(test::field_texts(s), root) << "on rank " << g_env.rank;
}

}  // namespace
}  // namespace sx::train

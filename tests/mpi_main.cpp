#include "mpi_main.h"

#include <gtest/gtest.h>

#include "dist/deadline.h"

namespace sx::test {

dist::MpiEnv& mpi_env() {
  static dist::MpiEnv env;
  return env;
}

}  // namespace sx::test

int main(int argc, char** argv) {
  sx::dist::MpiSession mpi(&argc, &argv);
  sx::test::mpi_env() = mpi.env();
  sx::dist::set_collective_timeout(60);  // a hang (what these tests look for) fails the test
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

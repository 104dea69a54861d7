// libFuzzer target for the features reader behind `evaluate` (SX_BUILD_FUZZERS=ON, clang).
// Run: build-fuzz/src/evaluate/fuzz_features tests/fuzz/corpus/features -max_total_time=60
// (HDF5 itself is not instrumented: coverage guides through our reader, the sanitizers watch both.)
#include <ATen/Parallel.h>

#include "fuzz/hdf5_bodies.h"
#include "fuzz/hdf5_scratch.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sx::fuzz::features_one_input(sx::fuzz::scratch_file("features"), data, size);
  return 0;
}

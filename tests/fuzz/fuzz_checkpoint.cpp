// libFuzzer target for the checkpoint reader (SX_BUILD_FUZZERS=ON, clang).
// Run: build-fuzz/src/train/fuzz_checkpoint tests/fuzz/corpus/checkpoint -max_total_time=60
// (HDF5 itself is not instrumented: coverage guides through our reader, the sanitizers watch both.)
#include <ATen/Parallel.h>

#include "fuzz/hdf5_bodies.h"
#include "fuzz/hdf5_scratch.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sx::fuzz::checkpoint_one_input(sx::fuzz::scratch_file("checkpoint"), data, size);
  return 0;
}

// libFuzzer target for the CSV reader, UTF-8 cleaning and wordpunct (SX_BUILD_FUZZERS=ON,
// clang). Run: build-fuzz/src/data/fuzz_csv tests/fuzz/corpus/csv -max_total_time=60
#include "fuzz/fuzz_bodies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sx::fuzz::csv_one_input(data, size);
  return 0;
}

// libFuzzer target for the safetensors header parser (SX_BUILD_FUZZERS=ON, clang).
// Run: build-fuzz/src/model/fuzz_safetensors tests/fuzz/corpus/safetensors -max_total_time=60
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view image(reinterpret_cast<const char*>(data), size);
  uint64_t data_start = 0;
  try {
    auto tensors = sx::model::parse_safetensors_header(image, size, "fuzz", data_start);
    for (const auto& [name, info] : tensors)  // every accepted range must lie inside the input
      if (data_start + info.end > size || info.begin > info.end) __builtin_trap();
  } catch (const sx::UserError&) {
  }
  return 0;
}

#include "data/node_memory.h"

#include <algorithm>
#include <cstdint>

namespace sx::data {

std::shared_ptr<const void> PrivateMemory::publish(size_t bytes,
                                                   const std::function<void(void* out)>& fill) {
  // uint64 words keep the 16-byte alignment new[] gives.
  std::shared_ptr<uint64_t[]> memory(new uint64_t[std::max<size_t>(1, (bytes + 7) / 8)]);
  fill(memory.get());
  return std::shared_ptr<const void>(memory, memory.get());
}

}  // namespace sx::data

// FNV-1a, 64 bit: a checksum for checkpoints and a stable hash of configuration text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sx {

class Fnv1a {
 public:
  void update(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      h_ ^= p[i];
      h_ *= 1099511628211ull;
    }
  }
  void update(std::string_view text) { update(text.data(), text.size()); }
  uint64_t value() const { return h_; }
  std::string hex() const {
    static const char* digits = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 0; i < 16; ++i) out[15 - i] = digits[(h_ >> (4 * i)) & 0xF];
    return out;
  }

 private:
  // One digit short of FNV's standard offset basis (14695981039346656037): kept, as pair
  // fingerprints and format-1 checkpoints hash with it (docs/formats.md says so).
  uint64_t h_ = 1469598103934665603ull;
};

}  // namespace sx

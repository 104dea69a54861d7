#include "core/checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stdexcept>

namespace sx {

struct Xxh3::State {
  XXH3_state_t* s = XXH3_createState();
  ~State() { XXH3_freeState(s); }
};

Xxh3::Xxh3() : state_(std::make_unique<State>()) {
  if (!state_->s || XXH3_128bits_reset(state_->s) != XXH_OK)
    throw std::runtime_error("xxhash: cannot create a hash state");
}

Xxh3::~Xxh3() = default;

void Xxh3::update(const void* data, size_t size) {
  if (size) XXH3_128bits_update(state_->s, data, size);
}

std::string Xxh3::hex() const {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_->s));
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : canonical.digest) {
    out += digits[byte >> 4];
    out += digits[byte & 0xF];
  }
  return out;
}

}  // namespace sx

#include "core/checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

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

std::string file_fingerprint(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? "missing" : std::string("unreadable: ") + std::strerror(errno);
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) != 0) {
    out = std::string("unreadable: ") + std::strerror(errno);
  } else {
    constexpr uint64_t kMiB = 1 << 20;
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const uint64_t tail =
        size > kMiB ? std::max(kMiB, size - kMiB) : size;  // start of the last MiB
    std::vector<char> buffer(kMiB);
    Xxh3 hash;
    for (uint64_t start : {uint64_t{0}, tail}) {
      const uint64_t want = std::min(kMiB, size - start);
      const ssize_t got = want ? ::pread(fd, buffer.data(), want, static_cast<off_t>(start)) : 0;
      if (got < 0 || static_cast<uint64_t>(got) != want) {
        out = std::string("unreadable: ") + (got < 0 ? std::strerror(errno) : "short read");
        break;
      }
      hash.update(buffer.data(), want);
    }
    if (out.empty())
      out = std::to_string(size) + " bytes, first and last MiB xxh3 " + hash.hex().substr(0, 16);
  }
  ::close(fd);
  return out;
}

}  // namespace sx

#include "core/checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
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

namespace {

// Hashes `size` bytes of `fd` from `offset`.
void hash_range(Xxh3& hash, int fd, uint64_t offset, uint64_t size, const std::string& path) {
  std::vector<char> buffer(size);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, buffer.data() + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error(
          "cannot read " + path + ": " +
          (n == 0 ? std::string("it shrank while read") : std::strerror(errno)));
    done += static_cast<uint64_t>(n);
  }
  hash.update(buffer.data(), buffer.size());
}

}  // namespace

namespace {

// use(fd, size) on `path` opened read-only; closes it however `use` ends.
template <typename Use>
std::string with_open_file(const std::string& path, Use use) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw std::runtime_error("cannot stat " + path + ": " + std::strerror(errno));
  return use(fd, static_cast<uint64_t>(st.st_size));
}

constexpr uint64_t kMiB = 1 << 20;

}  // namespace

std::string file_checksum(const std::string& path) {
  return with_open_file(path, [&](int fd, uint64_t size) {
    Xxh3 hash;  // a MiB at a time: the digest does not depend on how the bytes are split
    for (uint64_t at = 0; at < size; at += kMiB)
      hash_range(hash, fd, at, std::min(kMiB, size - at), path);
    return hash.hex();
  });
}

std::string file_identity(const std::string& path) {
  return with_open_file(path, [&](int fd, uint64_t size) {
    Xxh3 hash;
    if (size <= 2 * kMiB) {
      hash_range(hash, fd, 0, size, path);
    } else {
      hash_range(hash, fd, 0, kMiB, path);
      hash_range(hash, fd, size - kMiB, kMiB, path);
    }
    return std::to_string(size) + ":" + hash.hex();
  });
}

}  // namespace sx

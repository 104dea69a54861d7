// XXH3 (128-bit) over a stream of bytes: checksums of multi-GB checkpoints at memory speed.
// The xxhash header stays in checksum.cpp (inlined there, nothing to link).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace sx {

class Xxh3 {
 public:
  Xxh3();
  ~Xxh3();
  Xxh3(const Xxh3&) = delete;
  Xxh3& operator=(const Xxh3&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  // 32 lowercase hex digits.
  std::string hex() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A file's identity that copies of it share wherever they are: its size and the XXH3 of its
// first and last MiB, as "<size>:<32 hex digits>" (whole files up to 2 MiB). Reads at most
// 2 MiB; throws std::runtime_error when the file cannot be read.
std::string file_identity(const std::string& path);
// The XXH3 of a whole file (32 hex digits); throws std::runtime_error when it cannot be read.
std::string file_checksum(const std::string& path);

}  // namespace sx

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

// A file's size and an XXH3 of its first and last MiB, as one line ("123 bytes, first and
// last MiB xxh3 0123456789abcdef", "missing", "unreadable: ..."): equal for copies of a file on
// different nodes, and cheap for multi-GB files.
std::string file_fingerprint(const std::string& path);

}  // namespace sx

// Checks, from a file's own bytes, the variable-length string references HDF5 is about to
// follow. Each string is stored as a reference (its length, the address of a global heap
// collection, an object index); HDF5 1.10.8 copies the heap object's declared size into a
// buffer sized by the reference's length, checking neither against the other nor against the
// collection, so a crafted file overflows the heap (fuzz_checkpoint and fuzz_features'
// memcpy-param-overlap in H5HG_read). The readers in hdf5.cpp run these checks first and
// refuse a file they fail with a UserError. Internal to io/; torch- and HDF5-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sx::io::heap {

// How a file encodes addresses (from its superblock, as HDF5 reports it).
struct Layout {
  uint64_t base = 0;         // the user block's size: HDF5's addresses are relative to it
  unsigned sizeof_addr = 8;  // bytes of an address
  unsigned sizeof_size = 8;  // bytes of a length
};

// A file's bytes, read on demand, each range checked against the file's size.
class RawFile {
 public:
  explicit RawFile(const std::string& path);
  ~RawFile();
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;
  const std::string& path() const { return path_; }
  // The `n` bytes at absolute offset `at`; a UserError naming `what` unless all are in the file.
  std::vector<uint8_t> read(uint64_t at, uint64_t n, const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A variable-length string's reference as stored on disk.
struct Ref {
  uint64_t length = 0;
  uint64_t addr = 0;  // 0: a null string, nothing on the heap
  uint64_t index = 0;
};

// Bytes of one stored reference: length (4), collection address, object index (4).
size_t ref_size(const Layout& layout);
std::vector<Ref> decode_refs(const std::vector<uint8_t>& raw, const Layout& layout);

// Refuses (a UserError naming `what`) unless each reference with an address points to a
// well-formed global heap collection inside the file holding object `index` of exactly
// `length` bytes.
void check_refs(const RawFile& file, const Layout& layout, const std::vector<Ref>& refs,
                const std::string& what);

// Refuses (a UserError) an attribute message in the version 1 object header at `header` whose
// declared data (elements times element size) exceeds the message: HDF5 1.10.8 copies it from
// the header's buffer without comparing (a read past that buffer, fuzz_checkpoint's finding).
void check_attributes(const RawFile& file, const Layout& layout, uint64_t header);

// The stored value of attribute `name` of the object whose header is at `header` (an HDF5
// address). Only version 1 object headers are read (what HDF5 writes by default, and all
// our writers do); another layout is refused with a UserError.
std::vector<uint8_t> attribute_value(const RawFile& file, const Layout& layout, uint64_t header,
                                     const std::string& name);

}  // namespace sx::io::heap

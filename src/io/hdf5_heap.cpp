#include "io/hdf5_heap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include "core/error.h"

namespace sx::io::heap {
namespace {

// Sizes from the HDF5 file format specification, version 1.10.
constexpr uint64_t kCollectionMin = 4096;    // a global heap collection is never smaller
constexpr uint64_t kMaxHeaderChunks = 1024;  // an object header's chunks, continuations included
constexpr uint16_t kContinuationMessage = 0x10;
constexpr uint16_t kAttributeMessage = 0x0C;
constexpr uint8_t kSharedMessageFlag = 0x02;

uint64_t align8(uint64_t n) {
  return (n + 7) / 8 * 8;
}

// Little-endian unsigned integer of `width` bytes at raw[at]; the caller checked the range.
uint64_t le(const std::vector<uint8_t>& raw, size_t at, unsigned width) {
  uint64_t v = 0;
  for (unsigned i = width; i-- > 0;) v = (v << 8) | raw[at + i];
  return v;
}

std::string describe(const Ref& r) {
  return "a string of " + std::to_string(r.length) + " bytes at heap object " +
         std::to_string(r.index) + " of collection " + std::to_string(r.addr);
}

// An HDF5 address as an absolute offset (no wrap-around).
uint64_t absolute(const Layout& layout, uint64_t addr, const RawFile& file,
                  const std::string& what) {
  uint64_t at = 0;
  if (__builtin_add_overflow(layout.base, addr, &at))
    throw UserError(file.path() + ": " + what + " points beyond 2^64 (crafted file)");
  return at;
}

// The size of object `index` in the collection at `addr`, walking the collection exactly as
// HDF5 1.10 parses it when it loads it; -1 if it holds no such object. A UserError for a
// collection HDF5 would read past or loop in.
int64_t object_size(const RawFile& file, const Layout& layout, uint64_t addr, uint64_t index,
                    const std::string& what) {
  const uint64_t at = absolute(layout, addr, file, what);
  const unsigned header = static_cast<unsigned>(align8(8 + layout.sizeof_size));
  const std::vector<uint8_t> head = file.read(at, header, what + ": heap collection");
  if (std::memcmp(head.data(), "GCOL", 4) != 0 || head[4] != 1)
    throw UserError(file.path() + ": " + what + " points to " + std::to_string(addr) +
                    ", which is not a global heap collection (crafted or corrupt file)");
  const uint64_t size = le(head, 8, layout.sizeof_size);
  if (size < kCollectionMin || size < header)
    throw UserError(file.path() + ": " + what + ": heap collection declares " +
                    std::to_string(size) + " bytes, less than the " +
                    std::to_string(kCollectionMin) + " every collection has (crafted file)");
  const std::vector<uint8_t> heap = file.read(at, size, what + ": heap collection");
  const uint64_t object_header = 8 + layout.sizeof_size;
  int64_t found = -1;
  for (uint64_t p = header; p + object_header <= size;) {
    const uint64_t id = le(heap, p, 2);
    const uint64_t bytes = le(heap, p + 8, layout.sizeof_size);
    // An object is its header and its bytes padded to 8; the free space (id 0) counts itself.
    uint64_t need = bytes;
    if (id > 0) need = bytes > size ? UINT64_MAX : object_header + align8(bytes);
    if (need < object_header || need > size - p)
      throw UserError(file.path() + ": " + what + ": heap collection at " + std::to_string(addr) +
                      " has object " + std::to_string(id) + " of " + std::to_string(bytes) +
                      " bytes, which does not fit in its " + std::to_string(size) +
                      " bytes (crafted or corrupt file)");
    if (id == index) found = static_cast<int64_t>(bytes);
    p += need;
  }
  return found;
}

}  // namespace

RawFile::RawFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0)
    throw UserError(path + ": cannot read: " + std::strerror(errno));
  size_ = static_cast<uint64_t>(st.st_size);
}

RawFile::~RawFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> RawFile::read(uint64_t at, uint64_t n, const std::string& what) const {
  if (at > size_ || n > size_ - at)
    throw UserError(path_ + ": " + what + " lies outside the file (bytes " + std::to_string(at) +
                    " + " + std::to_string(n) + " of " + std::to_string(size_) +
                    "; truncated or crafted file)");
  std::vector<uint8_t> out(n);
  for (uint64_t done = 0; done < n;) {
    const ssize_t got = ::pread(fd_, out.data() + done, n - done, static_cast<off_t>(at + done));
    if (got <= 0) throw UserError(path_ + ": cannot read " + what + ": " + std::strerror(errno));
    done += static_cast<uint64_t>(got);
  }
  return out;
}

size_t ref_size(const Layout& layout) {
  return 4 + layout.sizeof_addr + 4;
}

std::vector<Ref> decode_refs(const std::vector<uint8_t>& raw, const Layout& layout) {
  const size_t step = ref_size(layout);
  std::vector<Ref> out(raw.size() / step);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].length = le(raw, i * step, 4);
    out[i].addr = le(raw, i * step + 4, layout.sizeof_addr);
    out[i].index = le(raw, i * step + 4 + layout.sizeof_addr, 4);
  }
  return out;
}

void check_refs(const RawFile& file, const Layout& layout, const std::vector<Ref>& refs,
                const std::string& what) {
  for (const Ref& r : refs) {
    if (r.addr == 0) continue;  // a null string: HDF5 reads nothing
    const int64_t size = object_size(file, layout, r.addr, r.index, what);
    if (r.index == 0 || size < 0 || static_cast<uint64_t>(size) != r.length)
      throw UserError(file.path() + ": " + what + " holds " + describe(r) + ", but the heap " +
                      (r.index == 0 || size < 0 ? std::string("has no such object")
                                                : "object has " + std::to_string(size) + " bytes") +
                      " (crafted or corrupt file)");
  }
}

std::vector<uint8_t> attribute_value(const RawFile& file, const Layout& layout, uint64_t header,
                                     const std::string& name) {
  const std::string what = "attribute '" + name + "'";
  const uint64_t at = absolute(layout, header, file, what);
  const std::vector<uint8_t> prefix = file.read(at, 16, what + ": object header");
  if (prefix[0] != 1)
    throw UserError(file.path() + ": " + what + " sits in an object header of version " +
                    std::to_string(prefix[0]) + "; this reader checks only version 1");
  // Chunks in the order HDF5 loads them: the first, then each continuation as it is found.
  std::deque<std::pair<uint64_t, uint64_t>> chunks{{at + 16, le(prefix, 8, 4)}};
  for (uint64_t n = 0; !chunks.empty(); ++n) {
    if (n == kMaxHeaderChunks)
      throw UserError(file.path() + ": " + what + ": object header has over " +
                      std::to_string(kMaxHeaderChunks) + " chunks (crafted file)");
    const std::vector<uint8_t> chunk =
        file.read(chunks.front().first, chunks.front().second, what + ": object header");
    chunks.pop_front();
    for (size_t p = 0; p + 8 <= chunk.size();) {
      const uint64_t type = le(chunk, p, 2), size = le(chunk, p + 2, 2);
      const uint8_t flags = chunk[p + 4];
      const size_t body = p + 8;
      if (size > chunk.size() - body) break;  // HDF5 refuses the header itself
      p = body + size;
      if (type == kContinuationMessage && size >= layout.sizeof_addr + layout.sizeof_size) {
        const uint64_t to = le(chunk, body, layout.sizeof_addr);
        chunks.emplace_back(absolute(layout, to, file, what),
                            le(chunk, body + layout.sizeof_addr, layout.sizeof_size));
      }
      if (type != kAttributeMessage || size < 8) continue;
      // Version 1: name, datatype and dataspace each padded to 8 bytes; 2: unpadded; 3: as
      // 2 after a character-set byte.
      const uint8_t version = chunk[body];
      const uint64_t name_size = le(chunk, body + 2, 2), type_size = le(chunk, body + 4, 2),
                     space_size = le(chunk, body + 6, 2);
      const uint64_t name_at = body + (version == 3 ? 9 : 8);
      if (version < 1 || version > 3 || name_size == 0 || name_at + name_size > p ||
          name.size() != name_size - 1 ||
          name.compare(0, name.size(), reinterpret_cast<const char*>(&chunk[name_at]),
                       name.size()) != 0)
        continue;
      if (flags & kSharedMessageFlag)
        throw UserError(file.path() + ": " + what +
                        " is a shared message; this reader checks only attributes stored in place");
      const uint64_t data_at =
          version == 1 ? name_at + align8(name_size) + align8(type_size) + align8(space_size)
                       : name_at + name_size + type_size + space_size;
      if (data_at > p)
        throw UserError(file.path() + ": " + what +
                        "'s message is shorter than its parts (crafted file)");
      return {chunk.begin() + static_cast<std::ptrdiff_t>(data_at),
              chunk.begin() + static_cast<std::ptrdiff_t>(p)};
    }
  }
  throw UserError(file.path() + ": " + what + " is not in its object header where HDF5 found it");
}

}  // namespace sx::io::heap

#include "io/hdf5_heap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_map>
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

// The size of each object (by index) in the collection at `addr`, walking the collection exactly
// as HDF5 1.10 parses it when it loads it. A UserError for a collection HDF5 would read past or
// loop in.
std::unordered_map<uint64_t, uint64_t> object_sizes(const RawFile& file, const Layout& layout,
                                                    uint64_t addr, const std::string& what) {
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
  std::unordered_map<uint64_t, uint64_t> sizes;
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
    if (id > 0) sizes[id] = bytes;  // a repeated index: the last one, as HDF5 keeps it
    p += need;
  }
  return sizes;
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
  // Each collection read and walked once: a dataset's strings share a few collections.
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, uint64_t>> collections;
  for (const Ref& r : refs) {
    if (r.addr == 0) continue;  // a null string: HDF5 reads nothing
    auto it = collections.find(r.addr);
    if (it == collections.end())
      it = collections.emplace(r.addr, object_sizes(file, layout, r.addr, what)).first;
    const auto object = it->second.find(r.index);
    const bool found = r.index != 0 && object != it->second.end();
    if (!found || object->second != r.length)
      throw UserError(file.path() + ": " + what + " holds " + describe(r) + ", but the heap " +
                      (!found ? std::string("has no such object")
                              : "object has " + std::to_string(object->second) + " bytes") +
                      " (crafted or corrupt file)");
  }
}

namespace {

// One attribute message of an object header: its bytes and where its parts start.
struct AttributeMessage {
  std::vector<uint8_t> bytes;  // the message's body
  uint8_t flags = 0;
  unsigned version = 0;
  std::string name;
  size_t type_at = 0, space_at = 0, data_at = 0;
};

// The attribute messages of the version 1 object header at `header`, in the order HDF5 reads
// them (the first chunk, then each continuation as it is found), each checked to hold its
// parts; a UserError naming `what` for a layout this reader does not check.
std::vector<AttributeMessage> attribute_messages(const RawFile& file, const Layout& layout,
                                                 uint64_t header, const std::string& what) {
  const uint64_t at = absolute(layout, header, file, what);
  const std::vector<uint8_t> prefix = file.read(at, 16, what + ": object header");
  if (prefix[0] != 1) {
    const bool v2 = std::memcmp(prefix.data(), "OHDR", 4) == 0;  // magic, then the version
    throw UserError(file.path() + ": " + what + " sits in an object header of version " +
                    std::to_string(v2 ? prefix[4] : prefix[0]) +
                    "; this reader checks only version 1 (what HDF5 writes by default)");
  }
  std::vector<AttributeMessage> out;
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
      const size_t body = p + 8;
      if (size > chunk.size() - body) break;  // HDF5 refuses the header itself
      p = body + size;
      if (type == kContinuationMessage && size >= layout.sizeof_addr + layout.sizeof_size) {
        const uint64_t to = le(chunk, body, layout.sizeof_addr);
        chunks.emplace_back(absolute(layout, to, file, what),
                            le(chunk, body + layout.sizeof_addr, layout.sizeof_size));
      }
      if (type != kAttributeMessage) continue;
      AttributeMessage m;
      m.bytes.assign(chunk.begin() + static_cast<std::ptrdiff_t>(body),
                     chunk.begin() + static_cast<std::ptrdiff_t>(p));
      m.flags = chunk[body - 4];
      const auto& b = m.bytes;
      if (b.size() < 9 || b[0] < 1 || b[0] > 3)
        throw UserError(file.path() + ": " + what +
                        ": object header has an attribute message "
                        "of an unknown version or size (crafted file)");
      // Version 1: name, datatype and dataspace each padded to 8 bytes; 2: unpadded; 3: as
      // 2 after a character-set byte.
      m.version = b[0];
      const uint64_t name_size = le(b, 2, 2), type_size = le(b, 4, 2), space_size = le(b, 6, 2);
      auto pad = [&](uint64_t n) { return m.version == 1 ? align8(n) : n; };
      const size_t name_at = m.version == 3 ? 9 : 8;
      m.type_at = name_at + pad(name_size);
      m.space_at = m.type_at + pad(type_size);
      m.data_at = m.space_at + pad(space_size);
      if (name_size == 0 || type_size < 8 || space_size < 4 || m.data_at > b.size())
        throw UserError(file.path() + ": " + what +
                        ": object header has an attribute message "
                        "shorter than its parts (crafted file)");
      m.name.assign(reinterpret_cast<const char*>(&b[name_at]), name_size - 1);
      out.push_back(std::move(m));
    }
  }
  return out;
}

// Elements of the dataspace at bytes[at] (versions 1 and 2); -1 if it cannot be read.
int64_t space_elements(const std::vector<uint8_t>& b, size_t at, size_t end, const Layout& layout) {
  const unsigned version = b[at], rank = b[at + 1];
  if (version == 2 && b[at + 3] == 2) return 0;  // null dataspace
  const size_t dims_at = at + (version == 1 ? 8 : 4);
  if ((version != 1 && version != 2) || rank > 32 || dims_at + rank * layout.sizeof_size > end)
    return -1;
  uint64_t n = 1;
  for (unsigned i = 0; i < rank; ++i)
    if (__builtin_mul_overflow(n, le(b, dims_at + i * layout.sizeof_size, layout.sizeof_size),
                               &n) ||
        n > INT64_MAX)
      return -1;
  return static_cast<int64_t>(n);
}

}  // namespace

void check_attributes(const RawFile& file, const Layout& layout, uint64_t header) {
  for (const AttributeMessage& m : attribute_messages(file, layout, header, "the root group")) {
    if (m.flags & kSharedMessageFlag) continue;  // its parts are elsewhere; HDF5 checks them
    const int64_t elements = space_elements(m.bytes, m.space_at, m.data_at, layout);
    const uint64_t element_size = le(m.bytes, m.type_at + 4, 4);
    uint64_t data = 0;
    if (elements < 0 ||
        __builtin_mul_overflow(static_cast<uint64_t>(elements), element_size, &data) ||
        data > m.bytes.size() - m.data_at)
      throw UserError(file.path() + ": attribute '" + m.name +
                      "' declares more data than its message holds (crafted file)");
  }
}

std::vector<uint8_t> attribute_value(const RawFile& file, const Layout& layout, uint64_t header,
                                     const std::string& name) {
  const std::string what = "attribute '" + name + "'";
  for (const AttributeMessage& m : attribute_messages(file, layout, header, what)) {
    if (m.name != name) continue;
    if (m.flags & kSharedMessageFlag)
      throw UserError(file.path() + ": " + what +
                      " is a shared message; this reader checks only attributes stored in place");
    return {m.bytes.begin() + static_cast<std::ptrdiff_t>(m.data_at), m.bytes.end()};
  }
  throw UserError(file.path() + ": " + what + " is not in its object header where HDF5 found it");
}

}  // namespace sx::io::heap

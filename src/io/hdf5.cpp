#include "io/hdf5.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <unordered_set>

#include "core/error.h"
#include "core/files.h"
#include "io/hdf5_heap.h"

namespace sx::io {
namespace {

// HDF5 prints its error stack to stderr by default; our messages say what went wrong.
// Nor does it close its files at exit: after a file's flush or close failed (a full disk),
// HDF5 1.10's clean-up at exit dereferenced the half-closed file and crashed (SIGSEGV after
// the error line); every file this program writes is closed, or abandoned as a temporary, by
// then.
struct SilenceHdf5 {
  SilenceHdf5() {
    H5dont_atexit();  // before any other HDF5 call
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
};
const SilenceHdf5 silence;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw UserError(path + ": " + what);
}

// HDF5's file driver records the errno of a failed open, read or write in the error stack
// ("..., errno = 28, error message = 'No space left on device', ...").
herr_t find_errno(unsigned, const H5E_error2_t* e, void* error) {
  const char* at = e->desc ? std::strstr(e->desc, "errno = ") : nullptr;
  if (!at) return 0;
  *static_cast<int*>(error) = std::atoi(at + std::strlen("errno = "));
  return 1;  // found: stop the walk
}

// A failed write: `what` with the system's reason when HDF5 recorded one ("cannot write dataset
// 'x': No space left on device"). Call it before any other HDF5 call, which clears the stack.
[[noreturn]] void fail_write(const std::string& path, const std::string& what) {
  int error = 0;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, &find_errno, &error);
  fail(path, error > 0 ? what + ": " + std::strerror(error) : what);
}

// Owns one HDF5 identifier (negative: none) and closes it with the matching H5?close on every
// way out of its scope, errors included.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Owns every variable-length string one read allocates (a transfer property list routes HDF5's
// allocations here) and frees them all when it goes out of scope. HDF5 1.10 loses the strings
// it has already converted when a read fails partway: they sit in its own conversion buffer,
// not in ours, so freeing what our buffer holds is not enough (fuzz_features' leak finding).
class VlenArena {
 public:
  VlenArena() : xfer_(H5Pcreate(H5P_DATASET_XFER), H5Pclose) {
    H5Pset_vlen_mem_manager(xfer_.get(), &VlenArena::allocate, this, &VlenArena::release, this);
  }
  VlenArena(const VlenArena&) = delete;
  VlenArena& operator=(const VlenArena&) = delete;
  ~VlenArena() {
    for (void* p : blocks_) std::free(p);
  }
  // The transfer property list for H5Dread.
  hid_t xfer() const { return xfer_.get(); }

 private:
  static void* allocate(size_t size, void* self) {
    void* p = std::malloc(size);
    if (p) static_cast<VlenArena*>(self)->blocks_.insert(p);
    return p;
  }
  static void release(void* p, void* self) {
    if (p && static_cast<VlenArena*>(self)->blocks_.erase(p) > 0) std::free(p);
  }
  Hid xfer_;
  std::unordered_set<void*> blocks_;
};

hid_t link_create_plist() {
  hid_t plist = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(plist, 1);
  return plist;
}

template <class T>
void write_dataset(hid_t file, const std::string& path, const std::string& name, hid_t type,
                   const T* data, const std::vector<uint64_t>& dims) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  const Hid space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  const Hid plist(link_create_plist(), H5Pclose);
  const Hid set(
      H5Dcreate2(file, name.c_str(), type, space.get(), plist.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  if (!set.valid()) fail_write(path, "cannot create dataset '" + name + "'");
  if (H5Dwrite(set.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail_write(path, "cannot write dataset '" + name + "'");
}

// Everything a reader is told by the file is checked before it is believed: the type class,
// the dataspace (simple, not null or scalar), and the bytes the declared shape needs against
// the file's size, so a crafted header cannot make us allocate or copy what is not there.
struct Shape {
  std::vector<hsize_t> dims;
  uint64_t points = 0;
  uint64_t bytes = 0;  // points times the file's element size
};

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

const char* class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "float";
    case H5T_STRING:
      return "string";
    default:
      return "other";
  }
}

// The dataset's shape after checking its class against `expected` and its size against the file.
Shape checked_shape(hid_t set, const std::string& path, const std::string& name,
                    H5T_class_t expected) {
  const Hid type(H5Dget_type(set), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t element = H5Tget_size(type.get());
  const bool vlen = cls == H5T_STRING && H5Tis_variable_str(type.get()) > 0;
  if (cls != expected || (expected == H5T_STRING && !vlen))
    fail(path, "dataset '" + name + "' holds " + class_name(cls) + " values, expected " +
                   (expected == H5T_STRING ? "variable-length strings" : class_name(expected)));
  Shape shape;
  int rank = -1;
  {
    const Hid space(H5Dget_space(set), H5Sclose);
    if (H5Sget_simple_extent_type(space.get()) == H5S_SIMPLE)
      rank = H5Sget_simple_extent_ndims(space.get());
    if (rank > 0 && rank <= 8) {
      shape.dims.resize(static_cast<size_t>(rank));
      H5Sget_simple_extent_dims(space.get(), shape.dims.data(), nullptr);
    }
  }
  if (rank <= 0 || rank > 8)
    fail(path, "dataset '" + name + "' has no array shape (null, scalar or rank " +
                   std::to_string(rank) + " dataspace), expected 1 to 8 dimensions");
  const uint64_t limit = file_size(path);
  uint64_t points = 1, bytes = 0;
  bool overflow = false;
  for (hsize_t d : shape.dims) overflow |= __builtin_mul_overflow(points, d, &points);
  overflow |= __builtin_mul_overflow(points, element, &bytes);
  if (overflow)
    fail(path, "dataset '" + name + "' declares a size beyond 2^64 bytes (crafted file)");
  if (element == 0 || bytes > limit)
    fail(path, "dataset '" + name + "' declares " + std::to_string(points) + " elements of " +
                   std::to_string(element) + " bytes but the file has " + std::to_string(limit) +
                   " bytes (truncated or crafted file)");
  shape.points = points;
  shape.bytes = bytes;
  return shape;
}

// How `file` encodes addresses, for the checks of io/hdf5_heap.h.
heap::Layout layout_of(hid_t file) {
  const Hid plist(H5Fget_create_plist(file), H5Pclose);
  size_t sizeof_addr = 0, sizeof_size = 0;
  hsize_t user_block = 0;
  H5Pget_sizes(plist.get(), &sizeof_addr, &sizeof_size);
  H5Pget_userblock(plist.get(), &user_block);
  heap::Layout layout;
  layout.base = user_block;
  layout.sizeof_addr = static_cast<unsigned>(sizeof_addr);
  layout.sizeof_size = static_cast<unsigned>(sizeof_size);
  return layout;
}

// Checks the `points` string references of dataset `set` before HDF5 follows them: the
// dataset must be stored contiguously in the file (as our writers store it) so that its
// references can be read from the file's bytes.
// Our writers store every dataset contiguously in the file. HDF5 1.10.8 trusts a crafted
// layout message (a contiguous dataset storing fewer bytes than its shape needs made H5Dread
// copy from a null sieve buffer: fuzz_features' SEGV), so before a read: contiguous, no
// external files, and any stored bytes, at least `bytes` of them, inside the file.
void check_storage(hid_t set, const std::string& path, const std::string& name, uint64_t bytes) {
  const Hid create(H5Dget_create_plist(set), H5Pclose);
  if (H5Pget_layout(create.get()) != H5D_CONTIGUOUS || H5Pget_external_count(create.get()) != 0)
    fail(path, "dataset '" + name +
                   "' is not stored contiguously in the file (chunked, compact or external), "
                   "expected a dataset as this program writes it");
  const haddr_t offset = H5Dget_offset(set);
  if (offset == HADDR_UNDEF) return;  // never written: HDF5 reads its fill value
  const uint64_t stored = H5Dget_storage_size(set), limit = file_size(path);
  if (stored < bytes || offset > limit || stored > limit - offset)
    fail(path, "dataset '" + name + "' stores " + std::to_string(stored) + " bytes at offset " +
                   std::to_string(offset) + ", but its shape needs " + std::to_string(bytes) +
                   " and the file has " + std::to_string(limit) + " (truncated or crafted file)");
}

// Checks the `points` string references of dataset `set` before HDF5 follows them, reading
// them from the file's bytes (so the dataset must have been written).
void check_string_dataset(hid_t file, hid_t set, const std::string& path, const std::string& name,
                          uint64_t points) {
  const heap::Layout layout = layout_of(file);
  check_storage(set, path, name, points * heap::ref_size(layout));
  const haddr_t offset = H5Dget_offset(set);
  if (offset == HADDR_UNDEF)
    fail(path, "dataset '" + name + "' holds " + std::to_string(points) +
                   " strings but none was written (crafted file)");
  const heap::RawFile raw(path);
  const std::string what = "dataset '" + name + "'";
  const std::vector<uint8_t> refs = raw.read(offset, points * heap::ref_size(layout), what);
  heap::check_refs(raw, layout, heap::decode_refs(refs, layout), what);
}

// Checks the string reference of attribute `name` on the root group before HDF5 follows it.
// The address of the root group's object header, where our attributes are.
haddr_t root_header(hid_t file, const std::string& path) {
  haddr_t header = HADDR_UNDEF;
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  if (H5Oget_info3(file, &info, H5O_INFO_BASIC) >= 0)
    H5VLnative_token_to_addr(file, info.token, &header);
#else
  H5O_info_t info;
  if (H5Oget_info2(file, &info, H5O_INFO_BASIC) >= 0) header = info.addr;
#endif
  if (header == HADDR_UNDEF) fail(path, "cannot locate the root group's object header");
  return header;
}

void check_string_attribute(hid_t file, const std::string& path, const std::string& name) {
  const haddr_t header = root_header(file, path);
  const heap::Layout layout = layout_of(file);
  const heap::RawFile raw(path);
  const std::string what = "attribute '" + name + "'";
  const std::vector<uint8_t> value = heap::attribute_value(raw, layout, header, name);
  if (value.size() < heap::ref_size(layout))
    fail(path, what + " holds " + std::to_string(value.size()) + " bytes, expected a string's " +
                   std::to_string(heap::ref_size(layout)) + "-byte reference");
  heap::check_refs(raw, layout, heap::decode_refs(value, layout), what);
}

// `xfer`: the transfer property list (a VlenArena's for strings).
template <class T>
std::vector<T> read_dataset(hid_t file, const std::string& path, const std::string& name,
                            hid_t type, H5T_class_t expected, hid_t xfer = H5P_DEFAULT) {
  const Hid set(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(path, "missing dataset '" + name + "'");
  const Shape shape = checked_shape(set.get(), path, name, expected);
  std::vector<T> out(shape.points);
  if (out.empty()) return out;
  if constexpr (std::is_same_v<T, char*>)
    check_string_dataset(file, set.get(), path, name, out.size());
  else
    check_storage(set.get(), path, name, shape.bytes);
  if (H5Dread(set.get(), type, H5S_ALL, H5S_ALL, xfer, out.data()) < 0)
    fail(path, "cannot read dataset '" + name + "' (truncated or corrupt file?)");
  return out;
}

hid_t string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

}  // namespace

H5File H5File::create(const std::string& path) {
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) fail_write(path, "cannot create HDF5 file");
  return H5File(id, path);
}

H5File H5File::open(const std::string& path) {
  if (access(path.c_str(), R_OK) != 0)
    fail(path, "cannot read: " + std::string(std::strerror(errno)));
  if (files::is_directory(path)) fail(path, "is a directory, expected an HDF5 file");
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file (or truncated)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail(path, "cannot open HDF5 file (truncated or corrupt?)");
  H5File f(id, path);
  // Before HDF5 decodes any attribute message (H5Aexists and H5Aopen decode them all).
  heap::check_attributes(heap::RawFile(path), layout_of(id), root_header(id, path));
  return f;
}

H5File::H5File(H5File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) {
  other.id_ = -1;
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

void H5File::close() {
  if (id_ >= 0 && H5Fclose(id_) < 0) {
    id_ = -1;
    fail_write(path_, "cannot write the file's last blocks");
  }
  id_ = -1;
}

void H5File::flush() {
  if (H5Fflush(id_, H5F_SCOPE_GLOBAL) < 0) fail_write(path_, "cannot write its buffers");
}

void H5File::write(const std::string& name, const float* data, const std::vector<uint64_t>& dims) {
  write_dataset(id_, path_, name, H5T_NATIVE_FLOAT, data, dims);
}
void H5File::write(const std::string& name, const double* data, const std::vector<uint64_t>& dims) {
  write_dataset(id_, path_, name, H5T_NATIVE_DOUBLE, data, dims);
}
void H5File::write(const std::string& name, const int64_t* data,
                   const std::vector<uint64_t>& dims) {
  write_dataset(id_, path_, name, H5T_NATIVE_INT64, data, dims);
}

void H5File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  hid_t type = string_type();
  write_dataset(id_, path_, name, type, ptrs.data(), {values.size()});
  H5Tclose(type);
}

std::vector<uint64_t> H5File::dims(const std::string& name) const {
  const Hid set(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(path_, "missing dataset '" + name + "'");
  H5T_class_t cls;
  {
    const Hid type(H5Dget_type(set.get()), H5Tclose);
    cls = H5Tget_class(type.get());
  }
  const Shape shape = checked_shape(set.get(), path_, name, cls);
  return {shape.dims.begin(), shape.dims.end()};
}

std::vector<float> H5File::read_float(const std::string& name) const {
  return read_dataset<float>(id_, path_, name, H5T_NATIVE_FLOAT, H5T_FLOAT);
}
void H5File::read_float_into(const std::string& name, float* out, uint64_t count) const {
  const Hid set(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(path_, "missing dataset '" + name + "'");
  const Shape shape = checked_shape(set.get(), path_, name, H5T_FLOAT);
  if (shape.points != count)
    fail(path_, "dataset '" + name + "' holds " + std::to_string(shape.points) +
                    " values, expected " + std::to_string(count));
  if (count > 0) check_storage(set.get(), path_, name, shape.bytes);
  if (count > 0 && H5Dread(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    fail(path_, "cannot read dataset '" + name + "' (truncated or corrupt file?)");
}

std::vector<double> H5File::read_double(const std::string& name) const {
  return read_dataset<double>(id_, path_, name, H5T_NATIVE_DOUBLE, H5T_FLOAT);
}
std::vector<int64_t> H5File::read_int64(const std::string& name) const {
  return read_dataset<int64_t>(id_, path_, name, H5T_NATIVE_INT64, H5T_INTEGER);
}

std::vector<std::string> H5File::read_strings(const std::string& name) const {
  const Hid type(string_type(), H5Tclose);
  const VlenArena arena;  // frees the strings below, also those of a read that fails partway
  const std::vector<char*> ptrs =
      read_dataset<char*>(id_, path_, name, type.get(), H5T_STRING, arena.xfer());
  std::vector<std::string> out;
  out.reserve(ptrs.size());
  for (const char* p : ptrs) out.emplace_back(p ? p : "");
  return out;
}

bool H5File::has(const std::string& name) const {
  // Check each prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    std::string prefix = name.substr(0, pos);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

namespace {
// What H5Literate collects for members(): the names, up to `limit` of them.
struct MemberNames {
  std::vector<std::string> names;
  size_t limit = 0;
  bool too_many = false;
};
herr_t add_member(hid_t, const char* name, const H5L_info_t*, void* data) {
  auto* m = static_cast<MemberNames*>(data);
  if (m->names.size() >= m->limit) {
    m->too_many = true;
    return 1;  // stops the iteration
  }
  m->names.emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> H5File::members(const std::string& group) const {
  const Hid g(H5Gopen2(id_, group.empty() ? "/" : group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(path_, "missing group '" + group + "'");
  // One pass over the links (not one look-up per index, quadratic in the count), stopped once
  // it lists more links than the file has bytes: a crafted group index whose nodes point back
  // into themselves would otherwise list the same links without end.
  MemberNames m;
  m.limit = file_size(path_);
  hsize_t next = 0;
  const herr_t status = H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_NATIVE, &next, add_member, &m);
  if (m.too_many)
    fail(path_, "group '" + group + "' lists more than " + std::to_string(m.limit) +
                    " members, more than the file's bytes can hold (crafted file)");
  if (status < 0) fail(path_, "cannot list group '" + group + "' (truncated or corrupt file?)");
  std::sort(m.names.begin(), m.names.end());
  return std::move(m.names);
}

namespace {
template <class T>
void set_attr_impl(hid_t file, const std::string& path, const std::string& name, hid_t type,
                   const T* value) {
  if (H5Aexists(file, name.c_str()) > 0) H5Adelete(file, name.c_str());
  const Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  const Hid a(H5Acreate2(file, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  if (!a.valid()) fail_write(path, "cannot create attribute '" + name + "'");
  if (H5Awrite(a.get(), type, value) < 0) fail_write(path, "cannot write attribute '" + name + "'");
}
// Reads a one-value attribute after checking that it holds exactly one value of the expected
// class: an array attribute must never be copied into the single variable `value`.
template <class T>
T get_attr_impl(hid_t file, const std::string& path, const std::string& name, hid_t type,
                H5T_class_t expected) {
  const Hid a(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.valid()) fail(path, "missing attribute '" + name + "'");
  const Hid file_type(H5Aget_type(a.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(file_type.get());
  const bool vlen = cls == H5T_STRING && H5Tis_variable_str(file_type.get()) > 0;
  const Hid space(H5Aget_space(a.get()), H5Sclose);
  const H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  if (cls != expected || (expected == H5T_STRING && !vlen))
    fail(path, "attribute '" + name + "' holds " + class_name(cls) + " values, expected " +
                   (expected == H5T_STRING ? "a variable-length string" : class_name(expected)));
  if (space_class == H5S_NULL || points != 1)
    fail(path, "attribute '" + name + "' holds " +
                   std::to_string(space_class == H5S_NULL ? 0 : points) + " values, expected one");
  if constexpr (std::is_same_v<T, char*>) check_string_attribute(file, path, name);
  T value{};
  if (H5Aread(a.get(), type, &value) < 0) fail(path, "cannot read attribute '" + name + "'");
  return value;
}
}  // namespace

void H5File::set_attr(const std::string& name, int64_t value) {
  set_attr_impl(id_, path_, name, H5T_NATIVE_INT64, &value);
}
void H5File::set_attr(const std::string& name, double value) {
  set_attr_impl(id_, path_, name, H5T_NATIVE_DOUBLE, &value);
}
void H5File::set_attr(const std::string& name, const std::string& value) {
  hid_t type = string_type();
  const char* p = value.c_str();
  set_attr_impl(id_, path_, name, type, &p);
  H5Tclose(type);
}
int64_t H5File::attr_int(const std::string& name) const {
  return get_attr_impl<int64_t>(id_, path_, name, H5T_NATIVE_INT64, H5T_INTEGER);
}
double H5File::attr_double(const std::string& name) const {
  return get_attr_impl<double>(id_, path_, name, H5T_NATIVE_DOUBLE, H5T_FLOAT);
}
std::string H5File::attr_string(const std::string& name) const {
  const Hid type(string_type(), H5Tclose);
  char* p = get_attr_impl<char*>(id_, path_, name, type.get(), H5T_STRING);
  std::string out = p ? p : "";
  H5free_memory(p);
  return out;
}
bool H5File::has_attr(const std::string& name) const {
  return H5Aexists(id_, name.c_str()) > 0;
}

}  // namespace sx::io

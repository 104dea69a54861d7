#include "io/hdf5.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/error.h"

namespace sx::io {
namespace {

// HDF5 prints its error stack to stderr by default; our messages say what went wrong.
struct SilenceHdf5 {
  SilenceHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const SilenceHdf5 silence;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw UserError(path + ": " + what);
}

hid_t link_create_plist() {
  hid_t plist = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(plist, 1);
  return plist;
}

template <class T>
void write_dataset(hid_t file, const std::string& path, const std::string& name, hid_t type,
                   const T* data, const std::vector<uint64_t>& dims) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  hid_t space = H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr);
  hid_t plist = link_create_plist();
  hid_t set = H5Dcreate2(file, name.c_str(), type, space, plist, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(plist);
  H5Sclose(space);
  if (set < 0) fail(path, "cannot create dataset '" + name + "'");
  herr_t status = H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(set);
  if (status < 0) fail(path, "cannot write dataset '" + name + "'");
}

// Everything a reader is told by the file is checked before it is believed: the type class,
// the dataspace (simple, not null or scalar), and the bytes the declared shape needs against
// the file's size, so a crafted header cannot make us allocate or copy what is not there.
struct Shape {
  std::vector<hsize_t> dims;
  uint64_t points = 0;
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
  hid_t type = H5Dget_type(set);
  const H5T_class_t cls = H5Tget_class(type);
  const size_t element = H5Tget_size(type);
  const bool vlen = cls == H5T_STRING && H5Tis_variable_str(type) > 0;
  H5Tclose(type);
  if (cls != expected || (expected == H5T_STRING && !vlen))
    fail(path, "dataset '" + name + "' holds " + class_name(cls) + " values, expected " +
                   (expected == H5T_STRING ? "variable-length strings" : class_name(expected)));
  hid_t space = H5Dget_space(set);
  const H5S_class_t space_class = H5Sget_simple_extent_type(space);
  Shape shape;
  const int rank = space_class == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : -1;
  if (rank > 0 && rank <= 8) {
    shape.dims.resize(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space, shape.dims.data(), nullptr);
  }
  H5Sclose(space);
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
  return shape;
}

template <class T>
std::vector<T> read_dataset(hid_t file, const std::string& path, const std::string& name,
                            hid_t type, H5T_class_t expected) {
  hid_t set = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (set < 0) fail(path, "missing dataset '" + name + "'");
  std::vector<T> out;
  try {
    out.resize(checked_shape(set, path, name, expected).points);
  } catch (...) {
    H5Dclose(set);
    throw;
  }
  herr_t status = out.empty() ? 0 : H5Dread(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Dclose(set);
  if constexpr (std::is_same_v<T, char*>) {
    // A read that fails partway leaves the strings HDF5 already allocated in out: free them.
    if (status < 0)
      for (char* p : out) H5free_memory(p);
  }
  if (status < 0) fail(path, "cannot read dataset '" + name + "' (truncated or corrupt file?)");
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
  if (id < 0) fail(path, "cannot create HDF5 file");
  return H5File(id, path);
}

H5File H5File::open(const std::string& path) {
  if (access(path.c_str(), R_OK) != 0)
    fail(path, "cannot read: " + std::string(std::strerror(errno)));
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file (or truncated)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail(path, "cannot open HDF5 file (truncated or corrupt?)");
  return H5File(id, path);
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
    fail(path_, "cannot close (write error?)");
  }
  id_ = -1;
}

void H5File::flush() {
  if (H5Fflush(id_, H5F_SCOPE_GLOBAL) < 0) fail(path_, "cannot flush");
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
  hid_t set = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  if (set < 0) fail(path_, "missing dataset '" + name + "'");
  hid_t type = H5Dget_type(set);
  const H5T_class_t cls = H5Tget_class(type);
  H5Tclose(type);
  Shape shape;
  try {
    shape = checked_shape(set, path_, name, cls);
  } catch (...) {
    H5Dclose(set);
    throw;
  }
  H5Dclose(set);
  return {shape.dims.begin(), shape.dims.end()};
}

std::vector<float> H5File::read_float(const std::string& name) const {
  return read_dataset<float>(id_, path_, name, H5T_NATIVE_FLOAT, H5T_FLOAT);
}
void H5File::read_float_into(const std::string& name, float* out, uint64_t count) const {
  hid_t set = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  if (set < 0) fail(path_, "missing dataset '" + name + "'");
  uint64_t points = 0;
  try {
    points = checked_shape(set, path_, name, H5T_FLOAT).points;
  } catch (...) {
    H5Dclose(set);
    throw;
  }
  herr_t status = points != count || count == 0
                      ? 0
                      : H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(set);
  if (points != count)
    fail(path_, "dataset '" + name + "' holds " + std::to_string(points) + " values, expected " +
                    std::to_string(count));
  if (status < 0) fail(path_, "cannot read dataset '" + name + "' (truncated or corrupt file?)");
}

std::vector<double> H5File::read_double(const std::string& name) const {
  return read_dataset<double>(id_, path_, name, H5T_NATIVE_DOUBLE, H5T_FLOAT);
}
std::vector<int64_t> H5File::read_int64(const std::string& name) const {
  return read_dataset<int64_t>(id_, path_, name, H5T_NATIVE_INT64, H5T_INTEGER);
}

std::vector<std::string> H5File::read_strings(const std::string& name) const {
  hid_t type = string_type();
  std::vector<char*> ptrs;
  try {
    ptrs = read_dataset<char*>(id_, path_, name, type, H5T_STRING);
  } catch (...) {
    H5Tclose(type);
    throw;
  }
  H5Tclose(type);
  // Free each string HDF5 allocated (no second open of the dataset, which could fail and leak).
  std::vector<std::string> out;
  out.reserve(ptrs.size());
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
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

std::vector<std::string> H5File::members(const std::string& group) const {
  std::vector<std::string> out;
  hid_t g = H5Gopen2(id_, group.empty() ? "/" : group.c_str(), H5P_DEFAULT);
  if (g < 0) fail(path_, "missing group '" + group + "'");
  H5G_info_t info;
  H5Gget_info(g, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[1024];
    ssize_t n =
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    if (n > 0) out.emplace_back(name, static_cast<size_t>(std::min<ssize_t>(n, sizeof name - 1)));
  }
  H5Gclose(g);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
template <class T>
void set_attr_impl(hid_t file, const std::string& path, const std::string& name, hid_t type,
                   const T* value) {
  if (H5Aexists(file, name.c_str()) > 0) H5Adelete(file, name.c_str());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  if (a < 0) fail(path, "cannot create attribute '" + name + "'");
  herr_t s = H5Awrite(a, type, value);
  H5Aclose(a);
  if (s < 0) fail(path, "cannot write attribute '" + name + "'");
}
// Reads a one-value attribute after checking that it holds exactly one value of the expected
// class: an array attribute must never be copied into the single variable `value`.
template <class T>
T get_attr_impl(hid_t file, const std::string& path, const std::string& name, hid_t type,
                H5T_class_t expected) {
  hid_t a = H5Aopen(file, name.c_str(), H5P_DEFAULT);
  if (a < 0) fail(path, "missing attribute '" + name + "'");
  hid_t file_type = H5Aget_type(a);
  const H5T_class_t cls = H5Tget_class(file_type);
  const bool vlen = cls == H5T_STRING && H5Tis_variable_str(file_type) > 0;
  H5Tclose(file_type);
  hid_t space = H5Aget_space(a);
  const H5S_class_t space_class = H5Sget_simple_extent_type(space);
  const hssize_t points = H5Sget_simple_extent_npoints(space);
  H5Sclose(space);
  std::string problem;
  if (cls != expected || (expected == H5T_STRING && !vlen))
    problem = std::string("holds ") + class_name(cls) + " values, expected " +
              (expected == H5T_STRING ? "a variable-length string" : class_name(expected));
  else if (space_class == H5S_NULL || points != 1)
    problem =
        "holds " + std::to_string(space_class == H5S_NULL ? 0 : points) + " values, expected one";
  T value{};
  herr_t s = problem.empty() ? H5Aread(a, type, &value) : -1;
  H5Aclose(a);
  if (!problem.empty()) fail(path, "attribute '" + name + "' " + problem);
  if (s < 0) fail(path, "cannot read attribute '" + name + "'");
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
  hid_t type = string_type();
  char* p = get_attr_impl<char*>(id_, path_, name, type, H5T_STRING);
  std::string out = p ? p : "";
  H5free_memory(p);
  H5Tclose(type);
  return out;
}
bool H5File::has_attr(const std::string& name) const {
  return H5Aexists(id_, name.c_str()) > 0;
}

}  // namespace sx::io

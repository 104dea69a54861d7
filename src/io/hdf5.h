// A small typed wrapper over HDF5's C API for checkpoints and exported features: datasets
// of float32, float64, int64 and UTF-8 strings addressed by path ("params/encoder.layer.0..."),
// intermediate groups created on the way, and scalar attributes on the root. Errors are
// UserErrors naming the file and the object. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

class H5File {
 public:
  // Creates (truncates) a file for writing.
  static H5File create(const std::string& path);
  // Opens an existing file read-only; a missing, truncated or non-HDF5 file is a UserError.
  static H5File open(const std::string& path);
  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&&) = delete;
  ~H5File();

  const std::string& path() const { return path_; }

  void write(const std::string& name, const float* data, const std::vector<uint64_t>& dims);
  void write(const std::string& name, const double* data, const std::vector<uint64_t>& dims);
  void write(const std::string& name, const int64_t* data, const std::vector<uint64_t>& dims);
  void write_strings(const std::string& name, const std::vector<std::string>& values);

  std::vector<uint64_t> dims(const std::string& name) const;
  std::vector<float> read_float(const std::string& name) const;
  // Reads a float dataset of exactly `count` elements into `out` (no intermediate copy).
  void read_float_into(const std::string& name, float* out, uint64_t count) const;
  std::vector<double> read_double(const std::string& name) const;
  std::vector<int64_t> read_int64(const std::string& name) const;
  std::vector<std::string> read_strings(const std::string& name) const;
  bool has(const std::string& name) const;
  // Names of the members of a group ("" = root), sorted.
  std::vector<std::string> members(const std::string& group) const;

  void set_attr(const std::string& name, int64_t value);
  void set_attr(const std::string& name, double value);
  void set_attr(const std::string& name, const std::string& value);
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  std::string attr_string(const std::string& name) const;
  bool has_attr(const std::string& name) const;

  // Flushes HDF5's buffers to the OS (callers fsync the closed file for durability).
  void flush();
  void close();

 private:
  H5File(int64_t id, std::string path) : id_(id), path_(std::move(path)) {}
  int64_t id_ = -1;  // hid_t
  std::string path_;
};

}  // namespace sx::io

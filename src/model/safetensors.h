// A reader for HF's safetensors format that treats the file as untrusted: the header
// length, every dtype, shape and byte range are checked against the file size before any
// byte is read, so a corrupt or hostile file gives a UserError, never an out-of-bounds read.
// Torch-free; model/weights.h turns entries into tensors.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sx::model {

enum class StDtype { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

struct StTensorInfo {
  StDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
  uint64_t numel() const;
};

size_t dtype_size(StDtype dtype);
const char* dtype_name(StDtype dtype);

// Parses and validates the header of a safetensors image of `file_size` bytes whose first
// bytes are `prefix` (at least the 8-byte length and the header). `what` names the file.
// Returns the entries and sets data_start to the offset of the data section.
std::map<std::string, StTensorInfo> parse_safetensors_header(std::string_view prefix,
                                                             uint64_t file_size,
                                                             const std::string& what,
                                                             uint64_t& data_start);

// An opened safetensors file: its validated entries and a way to read one entry's bytes.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::map<std::string, StTensorInfo>& tensors() const { return tensors_; }
  const std::string& path() const { return path_; }
  // The raw little-endian bytes of one entry.
  std::vector<char> read(const std::string& name) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::map<std::string, StTensorInfo> tensors_;
};

// Writes tensors (raw little-endian bytes, F32 etc.) as a safetensors file.
struct StTensorData {
  StDtype dtype;
  std::vector<int64_t> shape;
  const void* data;
};
// Writes `path` in place (to replace a file whole, write it through files::FileSet); a failure
// throws std::runtime_error naming `path` and the system's reason.
void write_safetensors(const std::string& path, const std::map<std::string, StTensorData>& tensors);

}  // namespace sx::model

#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/files.h"

namespace sx::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw UserError(what + ": not a valid safetensors file: " + why);
}

bool parse_dtype(const std::string& s, StDtype& out) {
  static const std::map<std::string, StDtype> names = {
      {"F64", StDtype::kF64},   {"F32", StDtype::kF32}, {"F16", StDtype::kF16},
      {"BF16", StDtype::kBF16}, {"I64", StDtype::kI64}, {"I32", StDtype::kI32},
      {"I16", StDtype::kI16},   {"I8", StDtype::kI8},   {"U8", StDtype::kU8},
      {"BOOL", StDtype::kBool}};
  auto it = names.find(s);
  if (it == names.end()) return false;
  out = it->second;
  return true;
}

}  // namespace

size_t dtype_size(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF64:
    case StDtype::kI64:
      return 8;
    case StDtype::kF32:
    case StDtype::kI32:
      return 4;
    case StDtype::kF16:
    case StDtype::kBF16:
    case StDtype::kI16:
      return 2;
    case StDtype::kI8:
    case StDtype::kU8:
    case StDtype::kBool:
      return 1;
  }
  return 1;
}

const char* dtype_name(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF64:
      return "F64";
    case StDtype::kF32:
      return "F32";
    case StDtype::kF16:
      return "F16";
    case StDtype::kBF16:
      return "BF16";
    case StDtype::kI64:
      return "I64";
    case StDtype::kI32:
      return "I32";
    case StDtype::kI16:
      return "I16";
    case StDtype::kI8:
      return "I8";
    case StDtype::kU8:
      return "U8";
    case StDtype::kBool:
      return "BOOL";
  }
  return "?";
}

uint64_t StTensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

namespace {

// The JSON header's object, from the 8-byte length and the header after it.
nlohmann::json read_header_json(std::string_view prefix, uint64_t file_size,
                                const std::string& what, uint64_t& data_start) {
  if (file_size < 8 || prefix.size() < 8) bad(what, "shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | static_cast<unsigned char>(prefix[i]);
  if (header_len > kMaxHeaderBytes)
    bad(what, "header length " + std::to_string(header_len) + " exceeds 100 MiB");
  if (header_len > file_size - 8)
    bad(what, "header length " + std::to_string(header_len) + " exceeds the file size " +
                  std::to_string(file_size));
  if (prefix.size() < 8 + header_len) bad(what, "truncated header");
  data_start = 8 + header_len;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(prefix.substr(8, header_len));
  } catch (const nlohmann::json::exception& e) {
    bad(what, std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) bad(what, "header is not a JSON object");
  return header;
}

// An entry's shape, and its element count (checked not to overflow).
uint64_t read_shape(const nlohmann::json& e, const std::string& name, const std::string& what,
                    std::vector<int64_t>& out) {
  auto shape = e.find("shape");
  if (shape == e.end() || !shape->is_array() || shape->size() > 16)
    bad(what, "entry '" + name + "' has no valid shape");
  uint64_t numel = 1;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned())
      bad(what, "entry '" + name + "' has a negative or non-integer dimension");
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (v && numel > std::numeric_limits<uint64_t>::max() / v))
      bad(what, "entry '" + name + "' has a shape too large");
    numel *= v;
    out.push_back(static_cast<int64_t>(v));
  }
  return numel;
}

// One tensor's entry: dtype, shape and its bytes within the data section, their count what
// dtype and shape need.
StTensorInfo read_entry(const nlohmann::json& e, const std::string& name, const std::string& what,
                        uint64_t data_size) {
  if (!e.is_object()) bad(what, "entry '" + name + "' is not an object");
  StTensorInfo info;
  auto dtype = e.find("dtype");
  if (dtype == e.end() || !dtype->is_string() ||
      !parse_dtype(dtype->get<std::string>(), info.dtype))
    bad(what, "entry '" + name + "' has no known dtype");
  const uint64_t numel = read_shape(e, name, what, info.shape);
  auto offsets = e.find("data_offsets");
  if (offsets == e.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    bad(what, "entry '" + name + "' has no valid data_offsets");
  info.begin = (*offsets)[0].get<uint64_t>();
  info.end = (*offsets)[1].get<uint64_t>();
  if (info.begin > info.end || info.end > data_size)
    bad(what, "entry '" + name + "' lies outside the data section (offsets " +
                  std::to_string(info.begin) + ".." + std::to_string(info.end) + ", data " +
                  std::to_string(data_size) + " bytes)");
  if (numel > std::numeric_limits<uint64_t>::max() / dtype_size(info.dtype) ||
      numel * dtype_size(info.dtype) != info.end - info.begin)
    bad(what, "entry '" + name + "' has " + std::to_string(info.end - info.begin) +
                  " bytes, but its dtype and shape need " +
                  std::to_string(numel * dtype_size(info.dtype)));
  return info;
}

}  // namespace

std::map<std::string, StTensorInfo> parse_safetensors_header(std::string_view prefix,
                                                             uint64_t file_size,
                                                             const std::string& what,
                                                             uint64_t& data_start) {
  const nlohmann::json header = read_header_json(prefix, file_size, what, data_start);
  const uint64_t data_size = file_size - data_start;
  std::map<std::string, StTensorInfo> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    StTensorInfo info = read_entry(it.value(), it.key(), what, data_size);
    ranges.emplace_back(info.begin, info.end);
    tensors.emplace(it.key(), std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) bad(what, "two entries overlap");
  return tensors;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UserError(path + ": cannot open: " + std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::string prefix(std::min<uint64_t>(size, 8), '\0');
  in.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  if (size >= 8) {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i)
      header_len = (header_len << 8) | static_cast<unsigned char>(prefix[i]);
    if (header_len <= kMaxHeaderBytes && header_len <= size - 8) {
      prefix.resize(8 + header_len);
      in.read(prefix.data() + 8, static_cast<std::streamsize>(header_len));
      if (!in) throw UserError(path + ": read error in the header");
    }
  }
  tensors_ = parse_safetensors_header(prefix, size, path, data_start_);
}

std::vector<char> SafetensorsFile::read(const std::string& name) const {
  const StTensorInfo& info = tensors_.at(name);
  std::vector<char> bytes(info.end - info.begin);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + info.begin));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw UserError(path_ + ": read error in tensor '" + name + "' (file changed?)");
  return bytes;
}

void write_safetensors(const std::string& path,
                       const std::map<std::string, StTensorData>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';  // align the data section as HF does
  std::string start(8, '\0');           // the header's length, little-endian
  for (int i = 0; i < 8; ++i) start[i] = static_cast<char>((h.size() >> (8 * i)) & 0xFF);
  files::FileWriter out(path);
  out.write(start + h);
  for (const auto& [name, t] : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    out.write(t.data, n);
  }
  out.close();
}

}  // namespace sx::model

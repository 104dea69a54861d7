#include "io/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/files.h"

namespace sx::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

}  // namespace

void write_npy(const std::string& path, const float* data, uint64_t rows, uint64_t cols) {
  static_assert(sizeof(float) == 4, "float32");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const uint16_t length = static_cast<uint16_t>(header.size());
  const char version_and_length[4] = {1, 0, static_cast<char>(length & 0xFF),
                                      static_cast<char>(length >> 8)};
  files::FileWriter out(path);  // a failure names the path and the system's reason
  out.write(kMagic, 6);
  out.write(version_and_length, 4);
  out.write(header);
  out.write(data, rows * cols * sizeof(float));
  out.close();
}

NpyMatrix read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read " + path);
  char prefix[10];
  in.read(prefix, 10);
  if (!in || std::memcmp(prefix, kMagic, 6) != 0 || prefix[6] != 1)
    throw UserError(path + ": not a version 1.0 .npy file");
  const size_t length = static_cast<unsigned char>(prefix[8]) |
                        (static_cast<size_t>(static_cast<unsigned char>(prefix[9])) << 8);
  std::string header(length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  static const std::regex form(
      R"(\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \}\s*)");
  std::smatch m;
  if (!in || !std::regex_match(header, m, form))
    throw UserError(path + ": expected a 2-D '<f4' C-order array, header " + header);
  NpyMatrix out;
  out.rows = std::stoull(m[1]);
  out.cols = std::stoull(m[2]);
  if (out.cols && out.rows > (1ull << 40) / out.cols) throw UserError(path + ": shape too large");
  out.values.resize(out.rows * out.cols);
  in.read(reinterpret_cast<char*>(out.values.data()),
          static_cast<std::streamsize>(out.values.size() * sizeof(float)));
  if (!in) throw UserError(path + ": truncated (shorter than its shape says)");
  return out;
}

}  // namespace sx::io

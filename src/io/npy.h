// NumPy .npy files (format version 1.0) of float32 matrices: what `embed --out FILE.npy`
// writes and numpy.load reads. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

// Writes rows x cols little-endian float32 values, C order, to `path` (not atomically).
void write_npy(const std::string& path, const float* data, uint64_t rows, uint64_t cols);

struct NpyMatrix {
  uint64_t rows = 0, cols = 0;
  std::vector<float> values;
};
// Reads a 2-D '<f4' C-order .npy file as write_npy writes it; anything else is a UserError.
NpyMatrix read_npy(const std::string& path);

}  // namespace sx::io

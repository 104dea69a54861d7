// The gradient rows a step writes (train.touched_rows_only, issue #23): the word embeddings are
// ~70% of XLM-R base's parameters, but a step puts gradient only on the rows of the token ids it
// looks up (and the pad row, where a CUDA graph's dummy sequences look it up); with several ranks
// the reducer averages only the union of the ranks' rows (train/reducer.h) and every other row
// stays zero on every rank. So zeroing the gradients and checking them for non-finite values
// may cover the dense part of the flat buffer (every other parameter, and the step's slots) and
// the rows the last step wrote only, with bitwise the same results as over the whole buffer.
//
// TouchedRows knows the row-sparse entry of the flat buffer and keeps the one record of which
// of its rows may hold non-zero gradient:
//
//   step start      zero_dense() and zero_rows(): the recorded rows (the previous step's,
//                   NaN where that step was skipped as non-finite) become zero;
//   after reducing  record(this step's rows): with several ranks the union the reducer
//                   reduced (GradientReducer::reduced_rows), with one the micro-batches' ids;
//   the check       non_finite_flag(): the dense part and the recorded rows, on the device.
//
// The record starts as every row: whatever wrote the buffer before the first step (a graph's
// eager first sight, a test's backward) is zeroed once, by the first step.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/flat_params.h"

namespace sx::train {

// Token ids, as the reducer takes them (any order, duplicates and padding fine).
using TokenIdLists = std::vector<std::reference_wrapper<const std::vector<int32_t>>>;

// The rows `token_ids` name, as a bitmap of `rows` bits (one uint64 per 64 rows). Throws naming
// `what` when an id is outside [0, rows).
std::vector<uint64_t> row_bitmap(const TokenIdLists& token_ids, int64_t rows,
                                 const std::string& what);
// Calls f(i) for each set bit i of `bits`, ascending.
template <typename F>
void for_each_set_bit(const std::vector<uint64_t>& bits, F&& f) {
  for (size_t w = 0; w < bits.size(); ++w)
    for (uint64_t word = bits[w]; word; word &= word - 1)
      f(w * 64 + static_cast<size_t>(__builtin_ctzll(word)));
}
// The set rows of `bits`, ascending, as int64 on `device` (copied asynchronously from pinned
// memory on a GPU); undefined when no bit is set.
torch::Tensor row_indices(const std::vector<uint64_t>& bits, const torch::Device& device);

class TouchedRows {
 public:
  // For `flat`'s 2-D entry `name`; null when it has none (every gradient is then dense).
  static std::unique_ptr<TouchedRows> find(FlatParameters& flat, const std::string& name);
  TouchedRows(FlatParameters& flat, size_t entry);

  // Zeroes every gradient but the row-sparse entry's, and the step's slots.
  void zero_dense();
  // Zeroes the recorded rows (all of them while the record is "every row").
  void zero_rows();
  // The rows that may hold gradient from now on: int64 row indices on the buffer's device (any
  // order, duplicates fine); undefined = every row, empty = none (train/rows_adam.h consumed them).
  void record(torch::Tensor rows);
  // The rows of `token_ids` on the buffer's device (one rank: the rows its step wrote).
  torch::Tensor rows_of(const TokenIdLists& token_ids) const;
  // [1] float on the buffer's device, no host sync: 1 when the dense gradients (slots not
  // included) or a recorded row hold a NaN or an infinity, else 0.
  torch::Tensor non_finite_flag() const;

  const std::string& name() const { return name_; }
  int64_t rows() const { return rows_; }
  int64_t offset() const { return offset_; }  // of the entry in the flat buffer, in elements
  int64_t width() const { return width_; }
  const torch::Tensor& recorded() const { return recorded_; }  // undefined: every row
  torch::Tensor block() const;                                 // [rows, width] gradient view

 private:
  FlatParameters& flat_;
  std::string name_;
  int64_t offset_ = 0, rows_ = 0, width_ = 0;
  torch::Tensor recorded_;  // int64 rows on the device; undefined: every row
};

}  // namespace sx::train

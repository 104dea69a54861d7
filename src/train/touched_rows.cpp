#include "train/touched_rows.h"

namespace sx::train {

std::vector<uint64_t> row_bitmap(const TokenIdLists& token_ids, int64_t rows,
                                 const std::string& what) {
  std::vector<uint64_t> bits(static_cast<size_t>((rows + 63) / 64), 0);
  for (const auto& ids : token_ids)
    for (int32_t id : ids.get()) {
      TORCH_CHECK(id >= 0 && id < rows, "token id ", id, " outside the ", rows, " rows of ", what);
      bits[static_cast<size_t>(id) / 64] |= uint64_t{1} << (id % 64);
    }
  return bits;
}

torch::Tensor row_indices(const std::vector<uint64_t>& bits, const torch::Device& device) {
  std::vector<int64_t> rows;
  for_each_set_bit(bits, [&](size_t row) { rows.push_back(static_cast<int64_t>(row)); });
  if (rows.empty()) return torch::Tensor();
  torch::Tensor host =
      torch::from_blob(rows.data(), {static_cast<int64_t>(rows.size())}, torch::kLong);
  // On a GPU from pinned memory, asynchronously: a pageable copy would wait for the stream to
  // drain (the previous step's optimizer) before forward is even queued.
  return device.is_cuda() ? host.pin_memory().to(device, /*non_blocking=*/true) : host.clone();
}

std::unique_ptr<TouchedRows> TouchedRows::find(FlatParameters& flat, const std::string& name) {
  const auto& entries = flat.entries();
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].name == name && entries[i].shape.size() == 2)
      return std::make_unique<TouchedRows>(flat, i);
  return nullptr;
}

TouchedRows::TouchedRows(FlatParameters& flat, size_t entry) : flat_(flat) {
  const FlatParameters::Entry& e = flat.entries().at(entry);
  TORCH_CHECK(e.shape.size() == 2, "TouchedRows: ", e.name, " is not a matrix");
  name_ = e.name;
  offset_ = e.offset;
  rows_ = e.shape[0];
  width_ = e.shape[1];
}

torch::Tensor TouchedRows::block() const {
  return flat_.grads().narrow(0, offset_, rows_ * width_).view({rows_, width_});
}

void TouchedRows::zero_dense() {
  torch::NoGradGuard no_grad;
  const torch::Tensor grads = flat_.grads();
  const int64_t end = offset_ + rows_ * width_;
  grads.narrow(0, 0, offset_).zero_();
  grads.narrow(0, end, grads.numel() - end).zero_();
  flat_.slots().zero_();
}

void TouchedRows::zero_rows() {
  torch::NoGradGuard no_grad;
  if (recorded_.defined())
    block().index_fill_(0, recorded_, 0.0);
  else
    block().zero_();
}

void TouchedRows::record(torch::Tensor rows) {
  TORCH_CHECK(!rows.defined() || (rows.dim() == 1 && rows.scalar_type() == torch::kLong &&
                                  rows.device() == flat_.grads().device()),
              "TouchedRows::record takes int64 row indices on the gradients' device");
  recorded_ = std::move(rows);
}

torch::Tensor TouchedRows::rows_of(const TokenIdLists& token_ids) const {
  return row_indices(row_bitmap(token_ids, rows_, name_), flat_.grads().device());
}

torch::Tensor TouchedRows::non_finite_flag() const {
  torch::NoGradGuard no_grad;
  const torch::Tensor grads = flat_.grads();
  const int64_t end = offset_ + rows_ * width_;
  // A sum is non-finite exactly when one of its terms is (barring an overflow of finite sums
  // beyond 3e38, as model::non_finite_flag); one sum per part, so that parts cannot cancel.
  const torch::Tensor rows = recorded_.defined() ? block().index_select(0, recorded_) : block();
  const torch::Tensor sums =
      torch::stack({grads.narrow(0, 0, offset_).sum(),
                    grads.narrow(0, end, grads.numel() - end).sum(), rows.sum()});
  return torch::isfinite(sums).logical_not().any().to(torch::kFloat).reshape({1});
}

}  // namespace sx::train

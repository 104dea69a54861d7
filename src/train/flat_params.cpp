#include "train/flat_params.h"

#include <algorithm>

namespace sx::train {

FlatParameters::FlatParameters(torch::nn::Module& module, double bucket_mb, int64_t extra)
    : extra_(extra) {
  torch::NoGradGuard no_grad;
  auto named = module.named_parameters();
  std::vector<std::pair<std::string, torch::Tensor>> ordered;
  for (const auto& item : named) ordered.emplace_back(item.key(), item.value());
  std::reverse(ordered.begin(), ordered.end());
  for (const auto& [name, p] : ordered) {
    entries_.push_back({name, n_, p.numel(), p.sizes().vec()});
    n_ += p.numel();
  }
  auto options = ordered.front().second.options();
  params_ = torch::empty({n_}, options);
  grads_ = torch::zeros({n_ + extra_}, options);
  for (size_t i = 0; i < ordered.size(); ++i) {
    const Entry& e = entries_[i];
    torch::Tensor& p = ordered[i].second;
    torch::Tensor view = params_.narrow(0, e.offset, e.numel).view(e.shape);
    view.copy_(p);
    p.set_data(view);
    p.mutable_grad() = grads_.narrow(0, e.offset, e.numel).view(e.shape);
    parameters_.push_back(p);
  }
  const int64_t per_bucket = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * (1 << 20) / 4));
  for (int64_t start = 0; start < n_ + extra_; start += per_bucket)
    buckets_.push_back(grads_.narrow(0, start, std::min(per_bucket, n_ + extra_ - start)));
}

void FlatParameters::zero_grads() {
  grads_.zero_();
}

void FlatParameters::collect_grads() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor& p = parameters_[i];
    const Entry& e = entries_[i];
    torch::Tensor slot = grads_.narrow(0, e.offset, e.numel);
    const torch::Tensor& g = p.grad();
    if (!g.defined()) continue;  // unused parameter: its slot stays zero
    if (g.data_ptr() != slot.data_ptr()) {
      slot.copy_(g.reshape({-1}));
      p.mutable_grad() = slot.view(e.shape);
    }
  }
}

}  // namespace sx::train

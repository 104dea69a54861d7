#include "train/flat_params.h"

#include <algorithm>

namespace sx::train {

FlatParameters::FlatParameters(torch::nn::Module& module) {
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
  grads_ = torch::zeros({n_ + kStepSlots}, options);
  for (size_t i = 0; i < ordered.size(); ++i) {
    const Entry& e = entries_[i];
    torch::Tensor& p = ordered[i].second;
    torch::Tensor view = params_.narrow(0, e.offset, e.numel).view(e.shape);
    view.copy_(p);
    p.set_data(view);
    p.mutable_grad() = grads_.narrow(0, e.offset, e.numel).view(e.shape);
    parameters_.push_back(p);
  }
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

std::string FlatParameters::stray_grad() const {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const torch::Tensor& g = parameters_[i].grad();
    const Entry& e = entries_[i];
    if (g.defined() && g.data_ptr() != grads_.narrow(0, e.offset, e.numel).data_ptr())
      return e.name;
  }
  return "";
}

}  // namespace sx::train

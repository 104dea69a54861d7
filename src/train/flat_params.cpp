#include "train/flat_params.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"

namespace sx::train {

namespace {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

// `ordered` with each group of `adjacent` moved to where its first member in `ordered` was, its
// members in the group's order. Names a group lists that the module lacks are ignored.
Named with_groups_adjacent(const Named& ordered,
                           const std::vector<std::vector<std::string>>& adjacent) {
  std::unordered_map<std::string, size_t> index, group_of;
  for (size_t i = 0; i < ordered.size(); ++i) index[ordered[i].first] = i;
  for (size_t g = 0; g < adjacent.size(); ++g)
    for (const std::string& name : adjacent[g])
      if (index.count(name)) group_of[name] = g;
  Named out;
  std::vector<bool> placed(ordered.size(), false);
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (placed[i]) continue;
    auto group = group_of.find(ordered[i].first);
    if (group == group_of.end()) {
      out.push_back(ordered[i]);
      placed[i] = true;
      continue;
    }
    for (const std::string& name : adjacent[group->second]) {
      auto at = index.find(name);
      if (at == index.end() || placed[at->second]) continue;
      out.push_back(ordered[at->second]);
      placed[at->second] = true;
    }
  }
  return out;
}

}  // namespace

FlatParameters::FlatParameters(torch::nn::Module& module,
                               const std::vector<std::vector<std::string>>& adjacent) {
  torch::NoGradGuard no_grad;
  auto named = module.named_parameters();
  Named reversed;
  for (const auto& item : named) reversed.emplace_back(item.key(), item.value());
  std::reverse(reversed.begin(), reversed.end());
  for (const auto& item : reversed) registration_order_.push_back(item.first);
  Named ordered = with_groups_adjacent(reversed, adjacent);
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

std::vector<std::string> FlatParameters::names() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

torch::Tensor FlatParameters::rearranged(const torch::Tensor& values,
                                         const std::vector<std::string>& order) const {
  if (values.numel() != n_)
    throw UserError("its layout covers " + std::to_string(values.numel()) +
                    " values, the model's parameters " + std::to_string(n_));
  if (order.size() != entries_.size())
    throw UserError("its layout lists " + std::to_string(order.size()) +
                    " parameters, the model has " + std::to_string(entries_.size()));
  std::unordered_map<std::string, const Entry*> by_name;
  for (const Entry& e : entries_) by_name[e.name] = &e;
  // `order` names each parameter once (checked here), so its sizes sum to n_ and the copies
  // stay inside `values`.
  torch::Tensor out = torch::empty({n_}, values.options());
  int64_t from = 0;
  for (const std::string& name : order) {
    auto at = by_name.find(name);
    if (at == by_name.end())
      throw UserError("its layout lists '" + name + "' twice or a parameter the model lacks");
    const Entry& e = *at->second;
    by_name.erase(at);
    out.narrow(0, e.offset, e.numel).copy_(values.narrow(0, from, e.numel));
    from += e.numel;
  }
  return out;
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

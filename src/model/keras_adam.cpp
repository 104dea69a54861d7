#include "model/keras_adam.h"

#include <cmath>

#include "core/error.h"

namespace sx::model {

KerasAdam::KerasAdam(std::vector<torch::Tensor> params, AdamOptions options)
    : params_(std::move(params)), options_(options) {
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    v_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  }
}

void KerasAdam::step(double lr) {
  torch::NoGradGuard no_grad;
  const double t = static_cast<double>(iterations_ + 1);
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double alpha = lr * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& g = params_[i].grad();
    if (!g.defined()) continue;
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    params_[i].addcdiv_(m_[i], v_[i].sqrt().add_(options_.epsilon), -alpha);
  }
  ++iterations_;
}

std::map<std::string, torch::Tensor> KerasAdam::state() const {
  std::map<std::string, torch::Tensor> out;
  out["iterations"] = torch::tensor({iterations_}, torch::kLong);
  for (size_t i = 0; i < params_.size(); ++i) {
    out["m." + std::to_string(i)] = m_[i];
    out["v." + std::to_string(i)] = v_[i];
  }
  return out;
}

void KerasAdam::load_state(const std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  auto get = [&](const std::string& key, const torch::Tensor& like) {
    auto it = state.find(key);
    if (it == state.end()) throw UserError("optimizer state: missing '" + key + "'");
    if (it->second.sizes() != like.sizes())
      throw UserError("optimizer state: '" + key + "' has the wrong shape");
    return it->second;
  };
  auto it = state.find("iterations");
  if (it == state.end() || it->second.numel() != 1)
    throw UserError("optimizer state: missing 'iterations'");
  for (size_t i = 0; i < params_.size(); ++i) {
    m_[i].copy_(get("m." + std::to_string(i), m_[i]));
    v_[i].copy_(get("v." + std::to_string(i), v_[i]));
  }
  iterations_ = it->second.to(torch::kLong).item<int64_t>();
}

}  // namespace sx::model

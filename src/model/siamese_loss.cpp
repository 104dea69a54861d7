#include "model/siamese_loss.h"

#include <cmath>

namespace sx::model {
namespace {
constexpr double kEpsilon = 1e-7;  // Keras' backend epsilon
}

torch::Tensor pair_loss(SiameseEncoderImpl& model, const PackedIds& packed,
                        const torch::Tensor& labels, double margin) {
  const int64_t pairs = labels.size(0);
  torch::Tensor embeddings = model.forward(packed);
  return dbl_loss(pair_distance(embeddings.narrow(0, 0, pairs), embeddings.narrow(0, pairs, pairs)),
                  labels, margin);
}

torch::Tensor pair_distance(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::sqrt(torch::clamp_min((a - b).pow(2).sum(-1), kEpsilon));
}

torch::Tensor dbl_loss(const torch::Tensor& distance, const torch::Tensor& labels, double margin) {
  // log p     = log(1 + e^-m) - softplus(d - m)
  // 1 - p      = e^-m (e^d - 1) / (1 + e^(d - m)), so
  // log(1 - p) = -m + log(expm1(d)) - softplus(d - m)
  torch::Tensor d = distance.to(torch::kDouble);
  torch::Tensor y = labels.to(torch::kDouble);
  const double log_c = std::log1p(std::exp(-margin));
  torch::Tensor softplus = torch::nn::functional::softplus(d - margin);
  torch::Tensor log_p = log_c - softplus;
  // log(expm1(d)) without overflow: d + log1p(-e^-d) for large d.
  torch::Tensor log_expm1 =
      torch::where(d < 20.0, torch::log(torch::expm1(torch::clamp_max(d, 20.0))),
                   d + torch::log1p(-torch::exp(-d)));
  torch::Tensor log_1mp = -margin + log_expm1 - softplus;
  // Keras: p clipped to [eps, 1 - eps], then log(p + eps). Both in log space.
  const double log_lo = std::log(kEpsilon), log_hi = std::log1p(-kEpsilon);
  auto keras_log = [&](const torch::Tensor& log_q) {
    torch::Tensor clipped = torch::clamp(log_q, log_lo, log_hi);
    return torch::logaddexp(clipped, torch::full_like(clipped, log_lo));
  };
  torch::Tensor loss = -(y * keras_log(log_p) + (1.0 - y) * keras_log(log_1mp));
  return loss.mean().to(distance.scalar_type());
}

torch::Tensor dbl_loss_keras(const torch::Tensor& distance, const torch::Tensor& labels,
                             double margin) {
  torch::Tensor p = (1.0 + std::exp(-margin)) / (1.0 + torch::exp(distance - margin));
  p = torch::clamp(p, kEpsilon, 1.0 - kEpsilon);
  torch::Tensor loss =
      -(labels * torch::log(p + kEpsilon) + (1.0 - labels) * torch::log(1.0 - p + kEpsilon));
  return loss.mean();
}

}  // namespace sx::model

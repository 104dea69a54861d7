// Adam as Keras computes it (TensorFlow's ResourceApplyAdam, the notebook's optimizer):
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2        (uncorrected moments)
//   alpha = lr sqrt(1 - b2^t) / (1 - b1^t),  p -= alpha m / (sqrt(v) + eps_hat)
// with t = updates done + 1. This is not torch's Adam with the same eps: torch adds eps to
// the bias-corrected root, which equals Keras' form only with eps_t = eps_hat / sqrt(1 - b2^t).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace sx::model {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-7;
};

class KerasAdam {
 public:
  KerasAdam(std::vector<torch::Tensor> params, AdamOptions options);

  // One update with learning rate `lr` from each parameter's .grad().
  void step(double lr);
  int64_t iterations() const { return iterations_; }

  // State as plain tensors (checkpoints): "iterations", "m.<i>", "v.<i>".
  std::map<std::string, torch::Tensor> state() const;
  // Restores state() output; throws UserError on missing or mis-shaped entries.
  void load_state(const std::map<std::string, torch::Tensor>& state);

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> m_, v_;
  AdamOptions options_;
  int64_t iterations_ = 0;
};

}  // namespace sx::model

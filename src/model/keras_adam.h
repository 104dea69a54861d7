// Adam as Keras computes it (TensorFlow's ResourceApplyAdam, the notebook's optimizer):
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2        (uncorrected moments)
//   alpha = lr sqrt(1 - b2^t) / (1 - b1^t),  p -= alpha m / (sqrt(v) + eps_hat)
// with t = updates done + 1. This is not torch's Adam with the same eps: torch adds eps to
// the bias-corrected root, which equals Keras' form only with eps_t = eps_hat / sqrt(1 - b2^t).
//
// One pass over ONE flat fp32 parameter tensor (the trainer's flat buffer): every element's
// g, m, v and p are read once and m, v, p written once.
//   CUDA, libtorch 2.x: at::_fused_adam_ with a constant huge step count, so that its bias
//     corrections are exactly 1, learning rate alpha (computed here in double) and eps = eps_hat.
//   Otherwise: one loop over chunks on the CPU threads (at::parallel_for); on a GPU without
//     libtorch 2.x, the same formula as tensor ops.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sx::model {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-7;
};

class KerasAdam {
 public:
  // `params`: the flat fp32 contiguous tensor the optimizer updates in place.
  KerasAdam(torch::Tensor params, AdamOptions options);

  // One update from `grads` (same shape as params) with learning rate `lr`.
  // `found_inf`: optional [1] float or int tensor on the params' device; nonzero skips the whole
  // update on the device (no host sync on CUDA; the CPU path reads it, which is free there).
  //
  // Iterations: step() counts the update as applied (t advances by one). A caller that passes
  // found_inf and learns on the host afterwards that it was set calls note_skipped() before the
  // next step(), which takes the count back, so iterations() counts exactly the applied updates
  // (as Keras' optimizer.iterations does) and the next alpha uses the right t.
  void step(const torch::Tensor& grads, double lr, const torch::Tensor& found_inf = {});
  void note_skipped();

  // The flat moments, exposed directly (checkpoints, broadcast); same shape and device as params.
  torch::Tensor& m() { return m_; }
  torch::Tensor& v() { return v_; }
  int64_t iterations() const { return iterations_; }
  void set_iterations(int64_t iterations);

  // The learning rate of Keras' form at update t = iterations() + 1.
  double alpha(double lr) const;

 private:
  void step_cpu(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf);
  void step_tensor_ops(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf);
  void step_fused(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf);

  torch::Tensor params_, m_, v_;
  torch::Tensor fused_step_;  // the fused kernel's step count (CUDA), constant
  AdamOptions options_;
  int64_t iterations_ = 0;
};

// [1] float on grads' device: 1 when `grads` holds a NaN or an infinity, else 0. One read-only
// pass, no host sync (a sum is non-finite exactly when an element is, barring an overflow of
// the sum of finite gradients beyond 3e38).
torch::Tensor non_finite_flag(const torch::Tensor& grads);

}  // namespace sx::model

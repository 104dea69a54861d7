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
#include <utility>
#include <vector>

namespace sx::model {

// A row-major [rows, width] block of the flat buffer, from element `offset` (the word embeddings).
struct RowBlock {
  int64_t offset = 0, rows = 0, width = 0;
  int64_t numel() const { return rows * width; }
};

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

  // One update in parts (train.embedding_adam_overlap, train/rows_adam.h): step_outside()
  // updates every element outside `block`, counts the update as step() does and returns its
  // alpha; update_rows() then updates, with that alpha, the block's rows whose byte in `now` is
  // nonzero (`selected` true) or zero (false), and sets the gradient of those of them whose byte
  // in `consume` is nonzero to zero (also when found_inf skips the update). Each row must be
  // updated exactly once per update; the calls may run on different streams. On the CPU the parts
  // give bitwise what step() gives; on CUDA the rows' kernel (model/kernels/adam_rows.cu) rounds
  // as the CPU loop does, the dense part is step()'s fused kernel.
  double step_outside(const torch::Tensor& grads, double lr, const torch::Tensor& found_inf,
                      const RowBlock& block);
  void update_rows(torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                   const RowBlock& block, const torch::Tensor& now, bool selected,
                   const torch::Tensor& consume);

  // The flat moments, exposed directly (checkpoints, broadcast); same shape and device as params.
  torch::Tensor& m() { return m_; }
  torch::Tensor& v() { return v_; }
  int64_t iterations() const { return iterations_; }
  void set_iterations(int64_t iterations);

  // The learning rate of Keras' form at update t = iterations() + 1.
  double alpha(double lr) const;

 private:
  // [begin, end) ranges of the flat buffer.
  using Ranges = std::vector<std::pair<int64_t, int64_t>>;
  void check_grads(const torch::Tensor& grads) const;
  void step_ranges(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                   const Ranges& ranges);
  void step_cpu(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                const Ranges& ranges);
  void step_tensor_ops(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                       const Ranges& ranges);
  void step_fused(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                  const Ranges& ranges);
  void update_rows_cpu(torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                       const RowBlock& block, const torch::Tensor& now, bool selected,
                       const torch::Tensor& consume);
  void update_rows_tensor_ops(torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                              const RowBlock& block, const torch::Tensor& now, bool selected,
                              const torch::Tensor& consume);

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

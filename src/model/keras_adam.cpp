#include "model/keras_adam.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cmath>

namespace sx::model {
namespace {

// The fused kernel's bias corrections are 1 - beta^step with step read from a float tensor;
// at this step beta^step underflows to exactly 0 for every beta in [0, 1), so they are exactly
// 1 and the kernel computes p -= lr m / (sqrt(v) + eps): Keras' form with lr = alpha. Adding 1
// leaves it unchanged in float, so a kernel that counted steps could not move it either.
constexpr float kHugeStep = 1e30f;

void check_flat(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.defined() && t.scalar_type() == torch::kFloat && t.is_contiguous(),
              "KerasAdam: ", what, " must be a contiguous float32 tensor");
}

}  // namespace

KerasAdam::KerasAdam(torch::Tensor params, AdamOptions options)
    : params_(std::move(params)), options_(options) {
  check_flat(params_, "params");
  m_ = torch::zeros_like(params_);
  v_ = torch::zeros_like(params_);
}

double KerasAdam::alpha(double lr) const {
  const double t = static_cast<double>(iterations_ + 1);
  return lr * std::sqrt(1.0 - std::pow(options_.beta2, t)) / (1.0 - std::pow(options_.beta1, t));
}

void KerasAdam::set_iterations(int64_t iterations) {
  TORCH_CHECK(iterations >= 0, "KerasAdam: iterations must not be negative");
  iterations_ = iterations;
}

void KerasAdam::note_skipped() {
  TORCH_CHECK(iterations_ > 0, "KerasAdam::note_skipped without a step to take back");
  --iterations_;
}

void KerasAdam::step(const torch::Tensor& grads, double lr, const torch::Tensor& found_inf) {
  check_flat(grads, "grads");
  TORCH_CHECK(grads.sizes() == params_.sizes() && grads.device() == params_.device(),
              "KerasAdam: grads must match the parameters' shape and device");
  torch::NoGradGuard no_grad;
  const double a = alpha(lr);
  if (params_.is_cpu()) {
    step_cpu(grads, a, found_inf);
  } else {
#if TORCH_VERSION_MAJOR >= 2
    if (params_.is_cuda())
      step_fused(grads, a, found_inf);
    else
      step_tensor_ops(grads, a, found_inf);
#else
    step_tensor_ops(grads, a, found_inf);
#endif
  }
  ++iterations_;
}

void KerasAdam::step_cpu(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf) {
  if (found_inf.defined() && found_inf.to(torch::kCPU).ne(0).any().item<bool>()) return;
  float* p = params_.data_ptr<float>();
  float* m = m_.data_ptr<float>();
  float* v = v_.data_ptr<float>();
  const float* g = grads.data_ptr<float>();
  // Coefficients rounded to float once, as torch's tensor ops round their scalars.
  const float b1 = static_cast<float>(options_.beta1),
              c1 = static_cast<float>(1.0 - options_.beta1);
  const float b2 = static_cast<float>(options_.beta2),
              c2 = static_cast<float>(1.0 - options_.beta2);
  const float a = static_cast<float>(alpha), eps = static_cast<float>(options_.epsilon);
  at::parallel_for(0, params_.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + c1 * gi;
      const float vi = b2 * v[i] + c2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      p[i] -= a * mi / (std::sqrt(vi) + eps);
    }
  });
}

void KerasAdam::step_tensor_ops(const torch::Tensor& grads, double alpha,
                                const torch::Tensor& found_inf) {
  // Accelerators without the fused kernel: the formula as tensor ops; a flag selects the old
  // values on the device (no host sync).
  const double b1 = options_.beta1, b2 = options_.beta2;
  torch::Tensor m = m_ * b1 + grads * (1.0 - b1);
  torch::Tensor v = v_ * b2 + grads * grads * (1.0 - b2);
  torch::Tensor p = params_ - alpha * m / (v.sqrt() + options_.epsilon);
  if (found_inf.defined()) {
    torch::Tensor skip = found_inf.reshape({-1}).narrow(0, 0, 1).ne(0);
    m = torch::where(skip, m_, m);
    v = torch::where(skip, v_, v);
    p = torch::where(skip, params_, p);
  }
  m_.copy_(m);
  v_.copy_(v);
  params_.copy_(p);
}

void KerasAdam::step_fused(const torch::Tensor& grads, double alpha,
                           const torch::Tensor& found_inf) {
#if TORCH_VERSION_MAJOR >= 2
  // aten::_fused_adam_(Tensor(a!)[] self, Tensor(b!)[] grads, Tensor(c!)[] exp_avgs,
  //   Tensor(d!)[] exp_avg_sqs, Tensor(e!)[] max_exp_avg_sqs, Tensor[] state_steps, *, float lr,
  //   float beta1, float beta2, float weight_decay, float eps, bool amsgrad, bool maximize,
  //   Tensor? grad_scale=None, Tensor? found_inf=None) -> ()
  // The kernel reads the step as float and skips the update where *found_inf == 1.0f.
  if (!fused_step_.defined())
    fused_step_ = torch::full({1}, kHugeStep, params_.options().dtype(torch::kFloat));
  std::vector<torch::Tensor> self{params_}, g{grads}, m{m_}, v{v_}, steps{fused_step_}, none;
  if (found_inf.defined()) {
    torch::Tensor flag = found_inf.ne(0).to(torch::kFloat);
    at::_fused_adam_(self, g, m, v, none, steps, alpha, options_.beta1, options_.beta2, 0.0,
                     options_.epsilon, /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/{},
                     flag);
  } else {
    at::_fused_adam_(self, g, m, v, none, steps, alpha, options_.beta1, options_.beta2, 0.0,
                     options_.epsilon, /*amsgrad=*/false, /*maximize=*/false);
  }
#else
  step_tensor_ops(grads, alpha, found_inf);
#endif
}

torch::Tensor non_finite_flag(const torch::Tensor& grads) {
  torch::NoGradGuard no_grad;
  return torch::isfinite(grads.sum()).logical_not().to(torch::kFloat).reshape({1});
}

}  // namespace sx::model

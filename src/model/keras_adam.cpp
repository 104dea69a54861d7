#include "model/keras_adam.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>

#if SX_WITH_KERNELS
#include "model/kernels/adam_rows.h"
#endif

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

void KerasAdam::check_grads(const torch::Tensor& grads) const {
  check_flat(grads, "grads");
  TORCH_CHECK(grads.sizes() == params_.sizes() && grads.device() == params_.device(),
              "KerasAdam: grads must match the parameters' shape and device");
}

void KerasAdam::step(const torch::Tensor& grads, double lr, const torch::Tensor& found_inf) {
  check_grads(grads);
  step_ranges(grads, alpha(lr), found_inf, {{0, params_.numel()}});
  ++iterations_;
}

double KerasAdam::step_outside(const torch::Tensor& grads, double lr,
                               const torch::Tensor& found_inf, const RowBlock& block) {
  check_grads(grads);
  const int64_t end = block.offset + block.numel();
  TORCH_CHECK(block.offset >= 0 && block.rows >= 0 && block.width >= 0 && end <= params_.numel(),
              "KerasAdam: the row block lies outside the parameters");
  const double a = alpha(lr);
  step_ranges(grads, a, found_inf, {{0, block.offset}, {end, params_.numel()}});
  ++iterations_;
  return a;
}

void KerasAdam::step_ranges(const torch::Tensor& grads, double alpha,
                            const torch::Tensor& found_inf, const Ranges& ranges) {
  torch::NoGradGuard no_grad;
  if (params_.is_cpu()) {
    step_cpu(grads, alpha, found_inf, ranges);
  } else {
#if TORCH_VERSION_MAJOR >= 2
    if (params_.is_cuda())
      step_fused(grads, alpha, found_inf, ranges);
    else
      step_tensor_ops(grads, alpha, found_inf, ranges);
#else
    step_tensor_ops(grads, alpha, found_inf, ranges);
#endif
  }
}

namespace {

// Coefficients rounded to float once, as torch's tensor ops round their scalars.
struct FloatCoefficients {
  float b1, c1, b2, c2, a, eps;
  FloatCoefficients(const AdamOptions& o, double alpha)
      : b1(static_cast<float>(o.beta1)),
        c1(static_cast<float>(1.0 - o.beta1)),
        b2(static_cast<float>(o.beta2)),
        c2(static_cast<float>(1.0 - o.beta2)),
        a(static_cast<float>(alpha)),
        eps(static_cast<float>(o.epsilon)) {}
  // Element i's update: the one expression both CPU loops use (adam_rows.cu rounds alike).
  void apply(float* p, float* m, float* v, const float* g, int64_t i) const {
    const float gi = g[i];
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] -= a * mi / (std::sqrt(vi) + eps);
  }
};

bool flag_set(const torch::Tensor& found_inf) {
  return found_inf.defined() && found_inf.to(torch::kCPU).ne(0).any().item<bool>();
}

}  // namespace

void KerasAdam::step_cpu(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                         const Ranges& ranges) {
  if (flag_set(found_inf)) return;
  float* p = params_.data_ptr<float>();
  float* m = m_.data_ptr<float>();
  float* v = v_.data_ptr<float>();
  const float* g = grads.data_ptr<float>();
  const FloatCoefficients k(options_, alpha);
  for (const auto& [first, last] : ranges)
    at::parallel_for(first, last, 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) k.apply(p, m, v, g, i);
    });
}

void KerasAdam::step_tensor_ops(const torch::Tensor& grads, double alpha,
                                const torch::Tensor& found_inf, const Ranges& ranges) {
  // Accelerators without the fused kernel: the formula as tensor ops; a flag selects the old
  // values on the device (no host sync).
  const double b1 = options_.beta1, b2 = options_.beta2;
  for (const auto& [first, last] : ranges) {
    if (last <= first) continue;
    torch::Tensor g = grads.narrow(0, first, last - first);
    torch::Tensor m0 = m_.narrow(0, first, last - first), v0 = v_.narrow(0, first, last - first);
    torch::Tensor p0 = params_.narrow(0, first, last - first);
    torch::Tensor m = m0 * b1 + g * (1.0 - b1);
    torch::Tensor v = v0 * b2 + g * g * (1.0 - b2);
    torch::Tensor p = p0 - alpha * m / (v.sqrt() + options_.epsilon);
    if (found_inf.defined()) {
      torch::Tensor skip = found_inf.reshape({-1}).narrow(0, 0, 1).ne(0);
      m = torch::where(skip, m0, m);
      v = torch::where(skip, v0, v);
      p = torch::where(skip, p0, p);
    }
    m0.copy_(m);
    v0.copy_(v);
    p0.copy_(p);
  }
}

void KerasAdam::step_fused(const torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                           const Ranges& ranges) {
#if TORCH_VERSION_MAJOR >= 2
  // aten::_fused_adam_(Tensor(a!)[] self, Tensor(b!)[] grads, Tensor(c!)[] exp_avgs,
  //   Tensor(d!)[] exp_avg_sqs, Tensor(e!)[] max_exp_avg_sqs, Tensor[] state_steps, *, float lr,
  //   float beta1, float beta2, float weight_decay, float eps, bool amsgrad, bool maximize,
  //   Tensor? grad_scale=None, Tensor? found_inf=None) -> ()
  // The kernel reads the step as float and skips the update where *found_inf == 1.0f. One list
  // entry per range, all sharing the constant step tensor.
  if (!fused_step_.defined())
    fused_step_ = torch::full({1}, kHugeStep, params_.options().dtype(torch::kFloat));
  std::vector<torch::Tensor> self, g, m, v, steps, none;
  for (const auto& [first, last] : ranges) {
    if (last <= first) continue;
    self.push_back(params_.narrow(0, first, last - first));
    g.push_back(grads.narrow(0, first, last - first));
    m.push_back(m_.narrow(0, first, last - first));
    v.push_back(v_.narrow(0, first, last - first));
    steps.push_back(fused_step_);
  }
  if (self.empty()) return;
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
  step_tensor_ops(grads, alpha, found_inf, ranges);
#endif
}

void KerasAdam::update_rows(torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                            const RowBlock& block, const torch::Tensor& now, bool selected,
                            const torch::Tensor& consume) {
  check_grads(grads);
  TORCH_CHECK(block.offset >= 0 && block.rows >= 0 && block.width >= 0 &&
                  block.offset + block.numel() <= params_.numel(),
              "KerasAdam: the row block lies outside the parameters");
  for (const torch::Tensor* mask : {&now, &consume})
    TORCH_CHECK(mask->defined() && mask->scalar_type() == torch::kByte && mask->dim() == 1 &&
                    mask->size(0) == block.rows && mask->device() == params_.device(),
                "KerasAdam::update_rows: row masks must be [rows] uint8 on the parameters' device");
  torch::NoGradGuard no_grad;
  if (params_.is_cpu()) {
    update_rows_cpu(grads, alpha, found_inf, block, now, selected, consume);
    return;
  }
#if SX_WITH_KERNELS
  if (params_.is_cuda()) {
    const auto view = [&](const torch::Tensor& flat) {
      return flat.narrow(0, block.offset, block.numel()).view({block.rows, block.width});
    };
    torch::Tensor p = view(params_), m = view(m_), v = view(v_), g = view(grads);
    const FloatCoefficients k(options_, alpha);
    kernels::AdamRowsArgs args;
    args.alpha = k.a;
    args.beta1 = k.b1;
    args.one_minus_beta1 = k.c1;
    args.beta2 = k.b2;
    args.one_minus_beta2 = k.c2;
    args.epsilon = k.eps;
    args.selected = selected;
    const torch::Tensor flag =
        found_inf.defined() ? found_inf.ne(0).to(torch::kFloat).reshape({1}) : torch::Tensor();
    kernels::keras_adam_rows(p, m, v, g, now.contiguous(), consume.contiguous(), flag, args);
    return;
  }
#endif
  update_rows_tensor_ops(grads, alpha, found_inf, block, now, selected, consume);
}

void KerasAdam::update_rows_cpu(torch::Tensor& grads, double alpha, const torch::Tensor& found_inf,
                                const RowBlock& block, const torch::Tensor& now, bool selected,
                                const torch::Tensor& consume) {
  const bool skip = flag_set(found_inf);
  float* p = params_.data_ptr<float>();
  float* m = m_.data_ptr<float>();
  float* v = v_.data_ptr<float>();
  float* g = grads.data_ptr<float>();
  const torch::Tensor now_c = now.contiguous(), consume_c = consume.contiguous();
  const uint8_t* is_now = now_c.data_ptr<uint8_t>();
  const uint8_t* clear = consume_c.data_ptr<uint8_t>();
  const FloatCoefficients k(options_, alpha);
  at::parallel_for(0, block.rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      if ((is_now[row] != 0) != selected) continue;
      const int64_t first = block.offset + row * block.width, last = first + block.width;
      if (!skip)
        for (int64_t i = first; i < last; ++i) k.apply(p, m, v, g, i);
      if (clear[row]) std::fill(g + first, g + last, 0.0f);
    }
  });
}

void KerasAdam::update_rows_tensor_ops(torch::Tensor& grads, double alpha,
                                       const torch::Tensor& found_inf, const RowBlock& block,
                                       const torch::Tensor& now, bool selected,
                                       const torch::Tensor& consume) {
  // Devices without the rows' kernel: every row computed, the chosen ones kept (no host sync).
  const auto view = [&](const torch::Tensor& flat) {
    return flat.narrow(0, block.offset, block.numel()).view({block.rows, block.width});
  };
  torch::Tensor p0 = view(params_), m0 = view(m_), v0 = view(v_), g = view(grads);
  torch::Tensor rows = (now != 0).eq(selected).unsqueeze(1);
  torch::Tensor take = rows;
  if (found_inf.defined()) take = rows.logical_and(found_inf.reshape({-1}).narrow(0, 0, 1).eq(0));
  const double b1 = options_.beta1, b2 = options_.beta2;
  torch::Tensor m = m0 * b1 + g * (1.0 - b1);
  torch::Tensor v = v0 * b2 + g * g * (1.0 - b2);
  torch::Tensor p = p0 - alpha * m / (v.sqrt() + options_.epsilon);
  m0.copy_(torch::where(take, m, m0));
  v0.copy_(torch::where(take, v, v0));
  p0.copy_(torch::where(take, p, p0));
  g.masked_fill_(rows.logical_and(consume.ne(0).unsqueeze(1)), 0.0);
}

torch::Tensor non_finite_flag(const torch::Tensor& grads) {
  torch::NoGradGuard no_grad;
  return torch::isfinite(grads.sum()).logical_not().to(torch::kFloat).reshape({1});
}

}  // namespace sx::model

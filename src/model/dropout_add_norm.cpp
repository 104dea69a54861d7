#include "model/dropout_add_norm.h"

#if SX_WITH_KERNELS
#include "model/kernels/dropout_add_norm.h"
#endif

namespace sx::model {
namespace {

// r + dropout(x) with the explicit keep mask, in r's dtype.
torch::Tensor dropped_sum(const torch::Tensor& x, const torch::Tensor& r, const torch::Tensor& keep,
                          double p) {
  torch::Tensor v = x.to(r.scalar_type());
  if (keep.defined()) v = v * keep.to(v.scalar_type()) * (1.0 / (1.0 - p));
  return v + r;
}

#if SX_WITH_KERNELS
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y and y_bf16 from (x, r, weight, bias); backward takes either output's gradient, or both
// (the fp32 residual path and the next matmul), summed inside the kernel.
struct FusedDropoutAddNorm : torch::autograd::Function<FusedDropoutAddNorm> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& r,
                               const torch::Tensor& weight, const torch::Tensor& bias, double p,
                               double eps) {
    auto out = kernels::dropout_add_norm_forward(x, r, weight, bias, p, eps);
    ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined, not zeros
    ctx->save_for_backward({x, r, weight, out.mean, out.rstd, out.rng});
    ctx->saved_data["p"] = p;
    return {out.y, out.y_bf16};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(6);
    if (!grads[0].defined() && !grads[1].defined()) return out;
    const auto s = ctx->get_saved_variables();
    auto g = kernels::dropout_add_norm_backward(grads[0], grads[1], s[0], s[1], s[2], s[3], s[4],
                                                s[5], ctx->saved_data["p"].toDouble());
    out[0] = g.x, out[1] = g.r, out[2] = g.weight, out[3] = g.bias;
    return out;
  }
};
#endif

}  // namespace

NormForward dropout_add_norm_reference(const torch::Tensor& x, const torch::Tensor& r,
                                       const torch::Tensor& keep, double p,
                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                       double eps) {
  const torch::Tensor v = dropped_sum(x, r, keep, p);
  const torch::Tensor mean = v.mean(-1, true);
  const torch::Tensor centered = v - mean;
  const torch::Tensor rstd = (centered.square().mean(-1, true) + eps).rsqrt();
  return {centered * rstd * weight + bias, mean.squeeze(-1), rstd.squeeze(-1)};
}

NormGrads dropout_add_norm_reference_backward(const torch::Tensor& dy, const torch::Tensor& x,
                                              const torch::Tensor& r, const torch::Tensor& keep,
                                              double p, const torch::Tensor& weight,
                                              const torch::Tensor& mean,
                                              const torch::Tensor& rstd) {
  const int64_t h = x.size(-1);
  const torch::Tensor rs = rstd.unsqueeze(-1);
  const torch::Tensor xhat = (dropped_sum(x, r, keep, p) - mean.unsqueeze(-1)) * rs;
  const torch::Tensor gw = dy * weight;
  // d/dv of (v - mean) * rstd, applied to gw: rstd (gw - mean(gw) - xhat mean(gw xhat)).
  const torch::Tensor dv = rs * (gw - gw.mean(-1, true) - xhat * (gw * xhat).mean(-1, true));
  NormGrads g;
  g.r = dv;
  g.x = keep.defined() ? dv * keep.to(dv.scalar_type()) * (1.0 / (1.0 - p)) : dv;
  g.weight = (dy * xhat).reshape({-1, h}).sum(0);
  g.bias = dy.reshape({-1, h}).sum(0);
  return g;
}

bool fused_kernels_compiled() {
#if SX_WITH_KERNELS
  return true;
#else
  return false;
#endif
}

FusedNorm fused_dropout_add_norm(const torch::Tensor& x, const torch::Tensor& r,
                                 const torch::Tensor& weight, const torch::Tensor& bias, double p,
                                 double eps) {
#if SX_WITH_KERNELS
  auto out = FusedDropoutAddNorm::apply(x.contiguous(), r.contiguous(), weight, bias, p, eps);
  return {out[0], out[1]};
#else
  (void)x, (void)r, (void)weight, (void)bias, (void)p, (void)eps;
  TORCH_CHECK(false, "fused_dropout_add_norm: this build has no fused CUDA kernels");
  return {};
#endif
}

}  // namespace sx::model

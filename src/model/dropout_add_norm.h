// dropout + residual add + LayerNorm of the post-LN encoder layer as one operation:
//
//   y = LayerNorm(r + dropout(x)) over the last dimension, with weight and bias
//
// The ATen reference (any device and dtype, an explicit keep mask) spells out the forward and
// the hand-written backward that the fused CUDA kernel (model/kernels/dropout_add_norm.cu,
// model.fused_kernels) computes; the tests hold the reference to autograd on the CPU and the
// kernel to the reference on a GPU.
#pragma once

#include <torch/torch.h>

namespace sx::model {

// "rows": every dimension of x but the last.
struct NormForward {
  torch::Tensor y;
  torch::Tensor mean, rstd;  // [rows]: mean of r + dropout(x), 1 / sqrt(variance + eps)
};
// x any floating dtype (computed in r's), r of x's shape; keep: bool of x's shape, the elements
// dropout keeps (undefined: no dropout), kept values scaled by 1 / (1 - p).
NormForward dropout_add_norm_reference(const torch::Tensor& x, const torch::Tensor& r,
                                       const torch::Tensor& keep, double p,
                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                       double eps);

struct NormGrads {
  torch::Tensor x, r, weight, bias;  // in r's dtype
};
// The gradients given dy (of y), from the forward's inputs and its mean and rstd.
NormGrads dropout_add_norm_reference_backward(const torch::Tensor& dy, const torch::Tensor& x,
                                              const torch::Tensor& r, const torch::Tensor& keep,
                                              double p, const torch::Tensor& weight,
                                              const torch::Tensor& mean, const torch::Tensor& rstd);

// Whether this build has the fused CUDA kernels (the CUDA tree with SX_FUSED_KERNELS).
bool fused_kernels_compiled();

struct FusedNorm {
  torch::Tensor y;       // fp32: the residual of the next sublayer
  torch::Tensor y_bf16;  // the same rounded to bf16: the next matmul's input
};
// The fused kernel under autograd: x bf16, r of x's shape, weight and bias [H] fp32, on one CUDA
// device; p the dropout probability (0 in eval mode), drawn from the default CUDA generator
// (graph-safe). Throws where fused_kernels_compiled() is false.
FusedNorm fused_dropout_add_norm(const torch::Tensor& x, const torch::Tensor& r,
                                 const torch::Tensor& weight, const torch::Tensor& bias, double p,
                                 double eps);

}  // namespace sx::model

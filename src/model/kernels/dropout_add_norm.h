// dropout + residual add + LayerNorm of the post-LN encoder layer in one CUDA kernel forward and
// one backward (model.fused_kernels). Plain launchers over ATen tensors; autograd and the ATen
// reference they are tested against are in model/dropout_add_norm.h. Per row of [T,H]:
//
//   v = r + dropout(x)                      x bf16 (the sublayer's output), r fp32 (the residual)
//   y = (v - mean(v)) * rstd * weight + bias,   rstd = 1 / sqrt(var(v) + eps)   (fp32)
//
// y is written twice: fp32 (the next sublayer's residual) and rounded to bf16 (the next matmul's
// input). Dropout keeps element (row, col) with probability 1 - p, scaled by 1 / (1 - p): its
// uniform is component col % 4 of curand_uniform4 of Philox (seed, subsequence row, offset +
// col - col % 4), seed and offset from the default CUDA generator (graph-safe, like torch's
// dropout), so backward regenerates the mask instead of storing it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sx::model::kernels {

// The widest row the kernels take (their shared memory holds rows of this many floats).
constexpr int64_t kMaxNormCols = 2048;

struct DropoutAddNormForward {
  at::Tensor y;           // x's shape, fp32
  at::Tensor y_bf16;      // x's shape, bf16
  at::Tensor mean, rstd;  // [rows] fp32, rows = numel / H
  at::Tensor rng;  // [2] int64 on the device: the Philox seed and offset drawn; [0]: no dropout
};

// x bf16, r of x's shape, weight and bias [H] fp32, all contiguous on one CUDA device;
// 0 <= p < 1 (p = 0 draws nothing from the generator).
DropoutAddNormForward dropout_add_norm_forward(const at::Tensor& x, const at::Tensor& r,
                                               const at::Tensor& weight, const at::Tensor& bias,
                                               double p, double eps);

struct DropoutAddNormGrads {
  at::Tensor x;  // bf16
  at::Tensor r, weight, bias;
};

// The gradients given dy (of y, fp32) and dy_bf16 (of y_bf16): either may be undefined, not both.
// x, r, weight, mean, rstd, rng and p as forward took and returned them.
DropoutAddNormGrads dropout_add_norm_backward(const at::Tensor& dy, const at::Tensor& dy_bf16,
                                              const at::Tensor& x, const at::Tensor& r,
                                              const at::Tensor& weight, const at::Tensor& mean,
                                              const at::Tensor& rstd, const at::Tensor& rng,
                                              double p);

// The keep mask [rows, cols] (bool, on rng's device) of a forward that drew `rng` with p.
at::Tensor dropout_keep_mask(const at::Tensor& rng, int64_t rows, int64_t cols, double p);

}  // namespace sx::model::kernels

// Keras Adam over chosen rows of a row-major block of the flat buffer (the word embeddings), for
// train.embedding_adam_overlap: the rows the next step looks up are updated on the compute stream,
// the rest on a side stream while the next step runs (train/rows_adam.h). Each element is computed
// with the CPU's operations in the CPU's order, rounded the same way (no contraction into fused
// multiply-adds), so the GPU gives bitwise what KerasAdam's CPU loop gives for the same inputs.
// The reference is KerasAdam::update_rows on the CPU (model/keras_adam.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sx::model::kernels {

struct AdamRowsArgs {
  float alpha = 0, beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0, epsilon = 0;
  bool selected = true;  // the rows whose byte in `now` is nonzero (true) or zero (false)
};

// params, m, v, grads: [rows, width] fp32 contiguous views on one CUDA device; now, consume:
// [rows] uint8 on it; found_inf: undefined or [1] float (nonzero skips the update, not the
// consumption). For each selected row: the update, then its gradient set to zero where
// consume[row] is nonzero. On the current stream; no host sync (graph-safe).
void keras_adam_rows(at::Tensor& params, at::Tensor& m, at::Tensor& v, at::Tensor& grads,
                     const at::Tensor& now, const at::Tensor& consume, const at::Tensor& found_inf,
                     const AdamRowsArgs& args);

}  // namespace sx::model::kernels

// The word embeddings' gradient added straight into its slot (model.fused_kernels with one
// replica): grad[ids[i]] += dout[i] for every token i, instead of autograd's dense [V, H]
// gradient of the lookup and then its addition into .grad (two passes over all V rows where a
// batch touches a few thousand). Deterministic: the tokens are sorted by id and each distinct id's
// rows are summed in that order by one block, with no atomics and no host sync (graph-safe).
// The ATen reference is grad.index_add_(0, ids, dout) (model/embedding_grad.h).
#pragma once

#include <ATen/core/Tensor.h>

namespace sx::model::kernels {

// grad [V,H] fp32 (contiguous, e.g. a view into the flat gradient buffer), ids [T] int64 in
// [0, V), dout [T,H] fp32, all on one CUDA device. Adds in place.
void embedding_grad_add(at::Tensor& grad, const at::Tensor& ids, const at::Tensor& dout);

}  // namespace sx::model::kernels

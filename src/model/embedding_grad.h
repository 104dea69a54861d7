// The word-embedding lookup whose backward adds its gradient straight into the weight's .grad
// (its slot of the flat gradient buffer) where that exists: index adds of the touched rows
// instead of autograd's dense [V, H] gradient and its addition into .grad. On CUDA the add is
// the kernel of model/kernels/embedding_grad.cu (model.fused_kernels, one replica); elsewhere
// its ATen reference, grad.index_add_(0, ids, dout).
#pragma once

#include <torch/torch.h>

namespace sx::model {

// grad[ids[i]] += dout[i]: the reference of the CUDA kernel (any device).
void embedding_grad_add_reference(torch::Tensor& grad, const torch::Tensor& ids,
                                  const torch::Tensor& dout);

// weight[ids] (any shape of ids) under autograd. Backward: where weight has a defined .grad, adds
// into it in place (the CUDA kernel on a GPU, with this build's kernels; else the reference) and
// returns no gradient for weight; else returns the dense gradient as at::embedding does. Only for
// a weight whose gradient nobody hooks (one replica, ComputeOptions::direct_weight_grads).
torch::Tensor embedding_direct_grad(const torch::Tensor& weight, const torch::Tensor& ids);

}  // namespace sx::model

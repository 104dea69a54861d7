#include "model/embedding_grad.h"

#if SX_WITH_KERNELS
#include "model/kernels/embedding_grad.h"
#endif

namespace sx::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct EmbeddingDirectGrad : torch::autograd::Function<EmbeddingDirectGrad> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& weight,
                               const torch::Tensor& ids) {
    ctx->saved_data["weight"] = weight;  // its .grad at backward time, not a saved version
    ctx->save_for_backward({ids});
    return at::embedding(weight, ids);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    torch::Tensor weight = ctx->saved_data["weight"].toTensor();
    const torch::Tensor ids = ctx->get_saved_variables()[0].reshape({-1});
    const torch::Tensor dout = grad_out[0].reshape({-1, weight.size(1)});
    if (!weight.grad().defined())
      return {at::embedding_dense_backward(dout, ids, weight.size(0), -1, false), {}};
    torch::NoGradGuard no_grad;
    torch::Tensor grad = weight.mutable_grad();
#if SX_WITH_KERNELS
    if (grad.is_cuda() && grad.is_contiguous()) {
      kernels::embedding_grad_add(grad, ids, dout.to(torch::kFloat));
      return {{}, {}};
    }
#endif
    embedding_grad_add_reference(grad, ids, dout.to(grad.scalar_type()));
    return {{}, {}};
  }
};

}  // namespace

void embedding_grad_add_reference(torch::Tensor& grad, const torch::Tensor& ids,
                                  const torch::Tensor& dout) {
  grad.index_add_(0, ids, dout);
}

torch::Tensor embedding_direct_grad(const torch::Tensor& weight, const torch::Tensor& ids) {
  return EmbeddingDirectGrad::apply(weight, ids);
}

}  // namespace sx::model

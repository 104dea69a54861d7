// The word-embedding lookup whose backward adds into the weight's .grad (model/embedding_grad.h)
// on the CPU, where the add is the kernel's ATen reference: the same gradient as autograd's
// dense one, added in place where .grad exists (and not a second time by autograd), returned
// where it does not. The CUDA kernel against the reference is in test_gpu_fused.cpp.
#include <torch/torch.h>

#include "model/embedding_grad.h"
#include "test_util.h"

namespace sx::model {
namespace {

struct Lookup {
  torch::Tensor weight, ids, dout;
};

// Ids with repeats (a long run of one id, as <s> in every sequence) and an untouched row.
Lookup lookup() {
  torch::manual_seed(3);
  Lookup l;
  l.weight = torch::randn({50, 13});
  l.ids =
      torch::cat({torch::randint(1, 50, {40}, torch::kLong), torch::full({25}, 7, torch::kLong)})
          .view({5, 13});
  l.dout = torch::randn({5, 13, 13});
  return l;
}

torch::Tensor dense_gradient(const Lookup& l) {
  torch::Tensor w = l.weight.clone().requires_grad_(true);
  at::embedding(w, l.ids).backward(l.dout);
  return w.grad();
}

TEST(EmbeddingDirectGrad, AddsIntoAnExistingGradInPlace) {
  const Lookup l = lookup();
  torch::Tensor w = l.weight.clone().requires_grad_(true);
  torch::Tensor before = torch::randn_like(w);
  w.mutable_grad() = before.clone();
  const void* slot = w.grad().data_ptr();
  torch::Tensor out = embedding_direct_grad(w, l.ids);
  EXPECT_TRUE(torch::equal(out, at::embedding(l.weight, l.ids)));
  out.backward(l.dout);
  EXPECT_EQ(w.grad().data_ptr(), slot);  // the same storage: the flat slot stays the slot
  EXPECT_LT((w.grad() - before - dense_gradient(l)).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::equal(w.grad()[0], before[0]));  // row 0 is never looked up
}

TEST(EmbeddingDirectGrad, WithoutAGradReturnsTheDenseGradient) {
  const Lookup l = lookup();
  torch::Tensor w = l.weight.clone().requires_grad_(true);
  embedding_direct_grad(w, l.ids).backward(l.dout);
  ASSERT_TRUE(w.grad().defined());
  EXPECT_LT((w.grad() - dense_gradient(l)).abs().max().item<double>(), 1e-6);
}

TEST(EmbeddingDirectGrad, TheReferenceIsAnIndexAdd) {
  torch::Tensor grad = torch::zeros({4, 2});
  embedding_grad_add_reference(grad, torch::tensor({3, 1, 3}, torch::kLong),
                               torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}).view({3, 2}));
  EXPECT_TRUE(torch::equal(
      grad, torch::tensor({0.0f, 0.0f, 3.0f, 4.0f, 0.0f, 0.0f, 6.0f, 8.0f}).view({4, 2})));
}

}  // namespace
}  // namespace sx::model

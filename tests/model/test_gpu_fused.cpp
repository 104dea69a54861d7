// The fused dropout + residual add + LayerNorm kernel (model/kernels/dropout_add_norm.cu) against
// its ATen reference (model/dropout_add_norm.h) on the CPU in float64, with the kernel's own
// dropout mask, forward and backward; at p = 0 against the unfused ops under autograd; and its
// dropout following the generator's seed. Skipped without CUDA or without the kernels (a build
// against a libtorch without CUDA); the encoder with the kernels on vs off is in test_gpu.cpp.
#include <torch/torch.h>

#include <array>

#include "model/dropout_add_norm.h"
#include "model/embedding_grad.h"
#include "test_util.h"

#if SX_WITH_KERNELS
#include "model/kernels/dropout_add_norm.h"
#include "model/kernels/embedding_grad.h"
#endif

namespace sx::model {
namespace {

class GpuFused : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    if (!fused_kernels_compiled()) GTEST_SKIP() << "this build has no fused CUDA kernels";
  }
};

#if SX_WITH_KERNELS

const double kEps = 1e-5;

struct Inputs {
  torch::Tensor x, r, weight, bias;  // CUDA: x bf16, the others fp32
};

Inputs inputs_of(int64_t rows, int64_t cols) {
  auto o = torch::dtype(torch::kFloat).device(torch::kCUDA);
  return {(torch::randn({rows, cols}, o) * 3).to(torch::kBFloat16), torch::randn({rows, cols}, o),
          torch::randn({cols}, o), torch::randn({cols}, o)};
}

torch::Tensor cpu_double(const torch::Tensor& t) {
  return t.defined() ? t.to(torch::kCPU).to(torch::kDouble) : t;
}

// max |got - want| / max(1, max |want|)
double relative(const torch::Tensor& got, const torch::Tensor& want) {
  torch::Tensor w = cpu_double(want);
  const double scale = std::max(1.0, w.abs().max().item<double>());
  return (cpu_double(got) - w).abs().max().item<double>() / scale;
}

// bf16 rounds to 8 significant bits: half a step is 2^-9 of the value.
const double kBf16 = 1.0 / 256;

TEST_F(GpuFused, KernelFollowsTheReferenceWithItsOwnMask) {
  torch::manual_seed(11);
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {5, 13}, {3, 31}, {9, 768}, {257, 768}, {33, 1025}, {4, 2048}})
    for (double p : {0.0, 0.1, 0.5}) {
      const std::string what =
          std::to_string(rows) + "x" + std::to_string(cols) + " p=" + std::to_string(p);
      const Inputs in = inputs_of(rows, cols);
      auto f = kernels::dropout_add_norm_forward(in.x, in.r, in.weight, in.bias, p, kEps);
      torch::Tensor keep;
      if (p > 0) {
        ASSERT_EQ(f.rng.numel(), 2) << what;
        keep = kernels::dropout_keep_mask(f.rng, rows, cols, p).to(torch::kCPU);
        if (rows * cols >= 10000) {  // the kept fraction is 1 - p
          EXPECT_NEAR(keep.to(torch::kDouble).mean().item<double>(), 1 - p, 0.02) << what;
        }
      }
      NormForward ref =
          dropout_add_norm_reference(cpu_double(in.x), cpu_double(in.r), keep, p,
                                     cpu_double(in.weight), cpu_double(in.bias), kEps);
      EXPECT_LT(relative(f.y, ref.y), 1e-5) << what;
      EXPECT_TRUE(torch::equal(f.y_bf16, f.y.to(torch::kBFloat16))) << what;
      EXPECT_LT(relative(f.mean, ref.mean), 1e-5) << what;
      EXPECT_LT(relative(f.rstd, ref.rstd), 1e-5) << what;

      // Backward from both outputs' gradients (their sum) and from y's alone.
      auto o = torch::dtype(torch::kFloat).device(torch::kCUDA);
      torch::Tensor dy = torch::randn({rows, cols}, o);
      torch::Tensor dy16 = torch::randn({rows, cols}, o).to(torch::kBFloat16);
      for (bool both : {true, false}) {
        auto g = kernels::dropout_add_norm_backward(dy, both ? dy16 : torch::Tensor(), in.x, in.r,
                                                    in.weight, f.mean, f.rstd, f.rng, p);
        torch::Tensor total = both ? cpu_double(dy) + cpu_double(dy16) : cpu_double(dy);
        NormGrads want =
            dropout_add_norm_reference_backward(total, cpu_double(in.x), cpu_double(in.r), keep, p,
                                                cpu_double(in.weight), ref.mean, ref.rstd);
        const std::string w = what + (both ? " both" : " dy");
        EXPECT_EQ(g.x.scalar_type(), torch::kBFloat16) << w;
        EXPECT_LT(relative(g.x, want.x), kBf16) << w;
        EXPECT_LT(relative(g.r, want.r), 1e-5) << w;
        EXPECT_LT(relative(g.weight, want.weight), 1e-5) << w;
        EXPECT_LT(relative(g.bias, want.bias), 1e-5) << w;
      }
    }
}

TEST_F(GpuFused, WithoutDropoutItIsTheUnfusedOps) {
  // p = 0 (eval mode): the unfused path is x.to(fp32) + r, then ATen's layer_norm.
  torch::manual_seed(12);
  Inputs in = inputs_of(300, 768);
  for (auto* t : {&in.x, &in.r, &in.weight, &in.bias}) t->requires_grad_(true);
  FusedNorm fused = fused_dropout_add_norm(in.x, in.r, in.weight, in.bias, 0.0, kEps);
  torch::Tensor unfused =
      torch::layer_norm(in.x.to(torch::kFloat) + in.r, {768}, in.weight, in.bias, kEps);
  EXPECT_LT(relative(fused.y, unfused), 1e-5);
  torch::Tensor dy = torch::randn_like(unfused);
  const torch::autograd::variable_list inputs{in.x, in.r, in.weight, in.bias};
  const auto want = torch::autograd::grad({unfused}, inputs, {dy}, /*retain_graph=*/true);
  const auto got = torch::autograd::grad({fused.y}, inputs, {dy}, /*retain_graph=*/true);
  EXPECT_LT(relative(got[0], want[0]), kBf16);
  for (int i = 1; i < 4; ++i) EXPECT_LT(relative(got[i], want[i]), 1e-5) << i;
  // The bf16 output's gradient joins the fp32 one's: as y + y_bf16 cast up, unfused.
  const auto both =
      torch::autograd::grad({fused.y, fused.y_bf16}, {in.r}, {dy, dy.to(torch::kBFloat16)});
  const auto twice =
      torch::autograd::grad({unfused}, {in.r}, {dy + dy.to(torch::kBFloat16).to(torch::kFloat)});
  EXPECT_LT(relative(both[0], twice[0]), 1e-5);
}

TEST_F(GpuFused, DropoutFollowsTheGeneratorsSeed) {
  const Inputs in = inputs_of(64, 768);
  auto run = [&](int64_t seed) {
    torch::manual_seed(seed);
    return kernels::dropout_add_norm_forward(in.x, in.r, in.weight, in.bias, 0.1, kEps);
  };
  auto a = run(5), b = run(5), c = run(6);
  EXPECT_TRUE(torch::equal(a.y, b.y));
  EXPECT_TRUE(torch::equal(a.rng, b.rng));
  EXPECT_FALSE(torch::equal(a.y, c.y));
  // The generator moves on: the next call draws another mask.
  torch::manual_seed(5);
  auto first = kernels::dropout_add_norm_forward(in.x, in.r, in.weight, in.bias, 0.1, kEps);
  auto second = kernels::dropout_add_norm_forward(in.x, in.r, in.weight, in.bias, 0.1, kEps);
  EXPECT_FALSE(torch::equal(kernels::dropout_keep_mask(first.rng, 64, 768, 0.1),
                            kernels::dropout_keep_mask(second.rng, 64, 768, 0.1)));
}

// ---- the word embeddings' gradient added into its slot ----

TEST_F(GpuFused, EmbeddingGradAddFollowsTheIndexAdd) {
  torch::manual_seed(13);
  auto o = torch::dtype(torch::kFloat).device(torch::kCUDA);
  for (auto [vocab, tokens, cols] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 100, 13}, {1000, 4416, 768}, {250002, 17000, 768}}) {
    // Repeats as in real batches: a long run of one id (<s>), some frequent ids, many rare ones.
    torch::Tensor ids =
        torch::cat({torch::zeros({tokens / 10}, o.dtype(torch::kLong)),
                    torch::randint(vocab, {tokens - tokens / 10}, o.dtype(torch::kLong))});
    ids = ids.index_select(0, torch::randperm(tokens, o.dtype(torch::kLong)));
    torch::Tensor dout = torch::randn({tokens, cols}, o), grad = torch::randn({vocab, cols}, o);
    torch::Tensor want = grad.to(torch::kCPU).to(torch::kDouble);
    embedding_grad_add_reference(want, ids.to(torch::kCPU),
                                 dout.to(torch::kCPU).to(torch::kDouble));
    kernels::embedding_grad_add(grad, ids, dout);
    EXPECT_LT(relative(grad, want), 1e-5) << vocab << " " << tokens << " " << cols;
  }
}

TEST_F(GpuFused, EmbeddingDirectGradIsDeterministicAndAddsIntoTheGrad) {
  torch::manual_seed(14);
  auto o = torch::dtype(torch::kFloat).device(torch::kCUDA);
  torch::Tensor ids = torch::randint(300, {2000}, o.dtype(torch::kLong));
  torch::Tensor dout = torch::randn({2000, 768}, o);
  auto run = [&] {
    torch::Tensor w = torch::randn({300, 768}, o).requires_grad_(true);
    w.mutable_grad() = torch::zeros_like(w);
    embedding_direct_grad(w, ids).backward(dout);
    return w.grad();
  };
  torch::Tensor a = run(), b = run();
  EXPECT_TRUE(torch::equal(a, b));  // no atomics: the same sums in the same order
  torch::Tensor w = torch::zeros({300, 768}, o).requires_grad_(true);
  at::embedding(w, ids).backward(dout);
  EXPECT_LT(relative(a, w.grad()), 1e-5);
}

#else

TEST_F(GpuFused, KernelFollowsTheReferenceWithItsOwnMask) {}

#endif

}  // namespace
}  // namespace sx::model

// The ATen reference of dropout + residual add + LayerNorm (model/dropout_add_norm.h), which the
// fused CUDA kernel is held to on a GPU (test_gpu_fused.cpp): its forward against the composite
// ops, its hand-written backward against autograd of the composite ops, with and without a
// fixed dropout mask, in fp32 and float64, at XLM-R's width and at odd ones.
#include <torch/torch.h>

#include "model/dropout_add_norm.h"
#include "test_util.h"

namespace sx::model {
namespace {

struct Case {
  std::vector<int64_t> shape;  // [..., H]
  double p;                    // dropout probability; 0 = no mask
  torch::ScalarType dtype;
};

std::string name_of(const Case& c) {
  std::ostringstream os;
  for (int64_t d : c.shape) os << d << "x";
  os << " p=" << c.p << (c.dtype == torch::kDouble ? " float64" : " fp32");
  return os.str();
}

struct Inputs {
  torch::Tensor x, r, keep, weight, bias, dy;
};

Inputs inputs_of(const Case& c, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  const auto o = torch::dtype(c.dtype);
  const int64_t h = c.shape.back();
  Inputs in;
  in.x = torch::randn(c.shape, o) * 3;
  in.r = torch::randn(c.shape, o) + 0.5;
  if (c.p > 0) in.keep = torch::rand(c.shape, o) >= c.p;
  in.weight = torch::randn({h}, o);
  in.bias = torch::randn({h}, o);
  in.dy = torch::randn(c.shape, o);
  return in;
}

// LayerNorm(r + x * keep / (1 - p)) with ATen's own layer_norm.
torch::Tensor composite(const Inputs& in, double p, double eps) {
  torch::Tensor v = in.keep.defined() ? in.x * in.keep.to(in.x.scalar_type()) / (1.0 - p) : in.x;
  return torch::layer_norm(v + in.r, {in.x.size(-1)}, in.weight, in.bias, eps);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Within `tol` of the expected values' scale (at least 1).
void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = std::max(1.0, want.abs().max().item<double>());
  EXPECT_LT(max_abs(got, want), tol * scale) << what;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  // H = 1 is left out: its centred value is 0 and ATen's backward rounding, amplified by
  // rstd = 1/sqrt(eps), is all a comparison would measure.
  const std::vector<std::vector<int64_t>> shapes = {{1, 2},   {3, 7},   {5, 13},   {2, 3, 31},
                                                    {4, 768}, {9, 768}, {33, 1025}};
  for (auto dtype : {torch::kFloat, torch::kDouble})
    for (const auto& shape : shapes)
      for (double p : {0.0, 0.1, 0.5}) out.push_back({shape, p, dtype});
  return out;
}

TEST(DropoutAddNormReference, ForwardIsTheCompositeOps) {
  for (const Case& c : cases()) {
    const Inputs in = inputs_of(c, 1);
    const double eps = 1e-5;
    NormForward f = dropout_add_norm_reference(in.x, in.r, in.keep, c.p, in.weight, in.bias, eps);
    expect_close(f.y, composite(in, c.p, eps), 1e-5, name_of(c));
    const std::vector<int64_t> rows(c.shape.begin(), c.shape.end() - 1);
    EXPECT_EQ(f.mean.sizes(), rows) << name_of(c);
    EXPECT_EQ(f.rstd.sizes(), rows) << name_of(c);
  }
}

TEST(DropoutAddNormReference, BackwardIsAutogradOfTheCompositeOps) {
  for (const Case& c : cases()) {
    Inputs in = inputs_of(c, 2);
    const double eps = 1e-5;
    NormForward f = dropout_add_norm_reference(in.x, in.r, in.keep, c.p, in.weight, in.bias, eps);
    NormGrads g = dropout_add_norm_reference_backward(in.dy, in.x, in.r, in.keep, c.p, in.weight,
                                                      f.mean, f.rstd);
    for (auto* t : {&in.x, &in.r, &in.weight, &in.bias}) t->requires_grad_(true);
    const auto want =
        torch::autograd::grad({composite(in, c.p, eps)}, {in.x, in.r, in.weight, in.bias}, {in.dy});
    expect_close(g.x, want[0], 1e-5, name_of(c) + " dx");
    expect_close(g.r, want[1], 1e-5, name_of(c) + " dr");
    expect_close(g.weight, want[2], 1e-5, name_of(c) + " dweight");
    expect_close(g.bias, want[3], 1e-5, name_of(c) + " dbias");
    if (c.p > 0) {  // dropped elements get no gradient
      EXPECT_TRUE(g.x.masked_select(~in.keep).eq(0).all().item<bool>()) << name_of(c);
    }
  }
}

TEST(DropoutAddNormReference, TheMaskDropsAndScales) {
  // One row: x = 1 everywhere, r = 0, half the elements dropped at p = 0.5: v is 0 or 2.
  torch::Tensor x = torch::ones({1, 4}, torch::kDouble), r = torch::zeros({1, 4}, torch::kDouble);
  torch::Tensor keep = torch::tensor({true, false, true, false}).view({1, 4});
  NormForward f = dropout_add_norm_reference(x, r, keep, 0.5, torch::ones({4}, torch::kDouble),
                                             torch::zeros({4}, torch::kDouble), 0.0);
  EXPECT_DOUBLE_EQ(f.mean.item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(f.rstd.item<double>(), 1.0);
  EXPECT_LT(max_abs(f.y, torch::tensor({1.0, -1.0, 1.0, -1.0}).view({1, 4})), 1e-15);
}

TEST(FusedDropoutAddNorm, CpuTensorsAreRefused) {
  // Without the kernels (the CPU tree) the call is refused; with them, CPU tensors are.
  const auto o = torch::dtype(torch::kFloat);
  EXPECT_THROW(
      fused_dropout_add_norm(torch::zeros({2, 4}, torch::kBFloat16), torch::zeros({2, 4}, o),
                             torch::ones({4}, o), torch::zeros({4}, o), 0.1, 1e-5),
      c10::Error);
}

}  // namespace
}  // namespace sx::model

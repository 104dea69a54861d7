// GPU paths (libtorch 2.x with CUDA): fp32 parity on the GPU, fused attention (sdpa) against
// the math path, and bf16 autocast within bf16 tolerance of fp32. Skipped without CUDA;
// launch/gpu-check.sh runs them on a GPU machine.
#include <torch/torch.h>

#include "model/siamese_loss.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "test_util.h"

namespace sx::model {
namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    at::globalContext().setAllowTF32CuBLAS(false);  // fp32 parity means real fp32 matmuls
    at::globalContext().setAllowTF32CuDNN(false);
    const std::string dir = test::fixtures_dir() + "/hf-tiny-xlmr";
    ref_ = read_safetensors(dir + "/forward_ref.safetensors");
    model_ = SiameseEncoder(read_xlmr_config(dir + "/config.json"), 1e-3);
    auto weights = read_hf_weights(dir);
    weights["pool_ln.weight"] = ref_["pool_ln.weight"];
    weights["pool_ln.bias"] = ref_["pool_ln.bias"];
    load_state(*model_, weights, "fixture");
    model_->to(torch::kCUDA);
    model_->eval();
    ids_ = ref_["input_ids"].to(torch::kCUDA);
  }
  torch::Tensor embed(ComputeOptions compute) {
    torch::NoGradGuard no_grad;
    model_->set_compute(compute);
    return model_->forward(ids_).to(torch::kCPU).to(torch::kDouble);
  }
  std::map<std::string, torch::Tensor> ref_;
  SiameseEncoder model_{nullptr};
  torch::Tensor ids_;
};

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

TEST_F(Gpu, Fp32MathPathMatchesHf) {
  torch::NoGradGuard no_grad;
  model_->set_compute({});
  torch::Tensor hidden = model_->hidden_states(ids_).to(torch::kCPU);
  EXPECT_LT(max_abs(hidden, ref_["last_hidden_state"]), 1e-5);
  EXPECT_LT(max_abs(embed({}), ref_["embedding"]), 1e-5);
}

TEST_F(Gpu, SdpaMatchesMathPathInFp32) {
  if (!sdpa_available()) GTEST_SKIP() << "libtorch 1.x";
  EXPECT_LT(max_abs(embed({false, true}), embed({})), 1e-5);
}

TEST_F(Gpu, Bf16WithinBf16ToleranceOfFp32) {
  // bf16 keeps 8 mantissa bits (relative step 2^-8 ~ 0.4%); through 2 layers and a
  // LayerNorm the embeddings (unit scale) may move by a few hundredths.
  torch::Tensor fp32 = embed({});
  for (bool sdpa : {false, sdpa_available()}) {
    torch::Tensor bf16 = embed({true, sdpa});
    EXPECT_LT(max_abs(bf16, fp32), 5e-2) << "sdpa " << sdpa;
    double cosine = torch::cosine_similarity(bf16.flatten(), fp32.flatten(), 0).item<double>();
    EXPECT_GT(cosine, 0.999) << "sdpa " << sdpa;
  }
}

TEST_F(Gpu, Bf16TrainingStepGradientsFollowFp32) {
  const std::string dir = test::fixtures_dir() + "/hf-tiny-xlmr";
  auto train = read_safetensors(dir + "/train_step_ref.safetensors");
  torch::Tensor ids = torch::cat({train["left_ids"], train["right_ids"]}, 0).to(torch::kCUDA);
  torch::Tensor labels = train["labels"].to(torch::kCUDA);
  auto grads = [&](ComputeOptions compute) {
    model_->set_compute(compute);
    model_->zero_grad();
    torch::Tensor e = model_->forward(ids);
    dbl_loss(pair_distance(e.narrow(0, 0, 6), e.narrow(0, 6, 6)), labels, 1.0).backward();
    std::vector<torch::Tensor> out;
    for (auto& [name, p] : named_parameters(*model_))
      out.push_back(p.grad().flatten().to(torch::kCPU).to(torch::kDouble));
    return torch::cat(out);
  };
  torch::Tensor fp32 = grads({});
  EXPECT_LT((fp32 - torch::cat([&] {
               std::vector<torch::Tensor> v;
               for (auto& [name, t] : named_parameters(*model_))
                 v.push_back(train.at("grad." + name).flatten().to(torch::kDouble));
               return v;
             }()))
                .norm()
                .item<double>(),
            1e-4 * fp32.norm().item<double>());
  torch::Tensor bf16 = grads({true, sdpa_available()});
  EXPECT_TRUE(torch::isfinite(bf16).all().item<bool>());
  EXPECT_GT(torch::cosine_similarity(bf16, fp32, 0).item<double>(), 0.99);
}

}  // namespace
}  // namespace sx::model

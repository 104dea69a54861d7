// GPU paths (libtorch 2.x with CUDA): fp32 parity on the GPU, fused attention (sdpa) against
// the math path, bf16 autocast within bf16 tolerance of fp32, the packed layout (generic path
// in fp32, variable-length flash in bf16) against the padded one, and the fused Keras Adam.
// Skipped without CUDA; launch/gpu-check.sh runs them on a GPU machine.
#include <torch/torch.h>

#include <limits>

#include "model/dropout_add_norm.h"
#include "model/keras_adam.h"
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

TEST_F(Gpu, Bf16ResidualStreamWithinBf16ToleranceOfFp32) {
  // model.residual_dtype: bf16 rounds the hidden states between layers to bf16 too: the same
  // tolerance as bf16 matmuls alone (the fixture's 2 layers), with SDPA or flash attention.
  torch::Tensor fp32 = embed({});
  for (bool sdpa : {false, sdpa_available()}) {
    ComputeOptions compute;
    compute.bf16 = true;
    compute.sdpa = sdpa;
    compute.bf16_residual = true;
    torch::Tensor bf16 = embed(compute);
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
  ComputeOptions residual;  // the residual stream in bf16 too (flash where available)
  residual.bf16 = true;
  residual.sdpa = sdpa_available();
  residual.bf16_residual = true;
  torch::Tensor bf16_residual = grads(residual);
  EXPECT_TRUE(torch::isfinite(bf16_residual).all().item<bool>());
  EXPECT_GT(torch::cosine_similarity(bf16_residual, fp32, 0).item<double>(), 0.99);
}

TEST_F(Gpu, FusedKernelsWithinBf16ToleranceOfUnfused) {
  // model.fused_kernels: dropout + residual add + LayerNorm as one kernel (dropout is off in eval
  // mode), the same formula with other roundings: within the bf16 tolerance of the unfused
  // bf16 path and of fp32.
  if (!fused_kernels_compiled()) GTEST_SKIP() << "this build has no fused CUDA kernels";
  ComputeOptions unfused;
  unfused.bf16 = true;
  unfused.sdpa = sdpa_available();
  ComputeOptions fused = unfused;
  fused.fused_kernels = true;
  torch::Tensor a = embed(unfused), b = embed(fused), fp32 = embed({});
  EXPECT_LT(max_abs(b, a), 5e-2);
  EXPECT_GT(torch::cosine_similarity(b.flatten(), a.flatten(), 0).item<double>(), 0.999);
  EXPECT_LT(max_abs(b, fp32), 5e-2);
}

// ---- packed layout ----

// Embeddings and every gradient of the fixture's training step under `compute`.
struct StepOut {
  torch::Tensor embeddings, grads;  // CPU double; grads flat in named_parameters order
};

class GpuPacked : public Gpu {
 protected:
  StepOut step(ComputeOptions compute) {
    const std::string dir = test::fixtures_dir() + "/hf-tiny-xlmr";
    auto train = read_safetensors(dir + "/train_step_ref.safetensors");
    torch::Tensor ids = torch::cat({train["left_ids"], train["right_ids"]}, 0).to(torch::kCUDA);
    torch::Tensor labels = train["labels"].to(torch::kCUDA);
    model_->set_compute(compute);
    model_->zero_grad();
    torch::Tensor e = model_->forward(ids);
    dbl_loss(pair_distance(e.narrow(0, 0, 6), e.narrow(0, 6, 6)), labels, 1.0).backward();
    std::vector<torch::Tensor> g;
    for (auto& [name, p] : named_parameters(*model_))
      g.push_back(p.grad().flatten().to(torch::kCPU).to(torch::kDouble));
    return {e.detach().to(torch::kCPU).to(torch::kDouble), torch::cat(g)};
  }
  // b within bf16 rounding of a (relative step 2^-8): embeddings and gradients.
  static void expect_within_bf16(const StepOut& b, const StepOut& a) {
    EXPECT_LT(max_abs(b.embeddings, a.embeddings), 5e-2);
    EXPECT_GT(
        torch::cosine_similarity(b.embeddings.flatten(), a.embeddings.flatten(), 0).item<double>(),
        0.999);
    EXPECT_TRUE(torch::isfinite(b.grads).all().item<bool>());
    EXPECT_GT(torch::cosine_similarity(b.grads, a.grads, 0).item<double>(), 0.99);
  }
};

TEST_F(GpuPacked, Fp32GenericPathMatchesHf) {
  const auto train =
      read_safetensors(test::fixtures_dir() + "/hf-tiny-xlmr/train_step_ref.safetensors");
  std::vector<torch::Tensor> want;
  for (auto& [name, t] : named_parameters(*model_))
    want.push_back(train.at("grad." + name).flatten().to(torch::kDouble));
  const torch::Tensor want_grads = torch::cat(want);
  for (bool sdpa : {false, sdpa_available()}) {
    ComputeOptions generic{false, sdpa};
    ASSERT_EQ(packed_attention(generic, model_->config(), torch::kCUDA),
              PackedAttention::kPaddedInside);
    StepOut b = step(generic);
    EXPECT_LE((b.grads - want_grads).norm().item<double>(), 1e-4 * want_grads.norm().item<double>())
        << "sdpa " << sdpa;
    EXPECT_LT(max_abs(embed(generic), ref_["embedding"]), 1e-5) << "sdpa " << sdpa;
  }
}

TEST_F(GpuPacked, Bf16FlashFollowsFp32) {
  if (!flash_varlen_available()) GTEST_SKIP() << "libtorch < 2.4: no variable-length flash";
  ComputeOptions fp32{false, false}, packed{true, true};
  ASSERT_EQ(packed_attention(packed, model_->config(), torch::kCUDA), PackedAttention::kFlash);
  // bf16 against fp32: they differ by bf16 rounding (relative step 2^-8).
  StepOut a = step(fp32), b = step(packed);
  expect_within_bf16(b, a);
  // And against fp32 (the HF values): the packed bf16 embeddings stay within bf16 tolerance.
  EXPECT_LT(max_abs(embed(packed), ref_["embedding"]), 5e-2);
}

TEST_F(GpuPacked, FusedKernelsStepFollowsUnfused) {
  if (!fused_kernels_compiled()) GTEST_SKIP() << "this build has no fused CUDA kernels";
  ComputeOptions unfused{true, sdpa_available()};
  ComputeOptions fused = unfused;
  fused.fused_kernels = true;
  StepOut a = step(unfused), b = step(fused);
  expect_within_bf16(b, a);
}

TEST_F(GpuPacked, FlashTrainsWithDropout) {
  if (!flash_varlen_available()) GTEST_SKIP() << "libtorch < 2.4: no variable-length flash";
  XlmrConfig c = model_->config();
  c.attention_probs_dropout_prob = 0.1, c.hidden_dropout_prob = 0.1;
  SiameseEncoder model(c);
  init_weights(*model, 1);
  model->to(torch::kCUDA);
  model->train();
  PackedIds packed = make_packed(torch::randint(4, c.vocab_size, {90}, torch::kLong),
                                 {0, 30, 31, 90}, torch::kCUDA);
  // Unfused, then with the fused dropout + add + LayerNorm kernels where this build has them.
  for (bool fused : {false, fused_kernels_compiled()}) {
    ComputeOptions compute{true, true, true};
    compute.fused_kernels = fused;
    model->set_compute(compute);
    model->zero_grad();
    torch::Tensor e = model->forward(packed);
    ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, c.hidden_size}));
    e.sum().backward();
    for (auto& [name, p] : named_parameters(*model)) {
      ASSERT_TRUE(p.grad().defined()) << name << " fused " << fused;
      EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << name << " fused " << fused;
    }
  }
}

// ---- fused Keras Adam ----

TEST_F(Gpu, FusedAdamMatchesTheKerasFixture) {
  const std::string dir = test::fixtures_dir() + "/hf-tiny-xlmr";
  auto train = read_safetensors(dir + "/train_step_ref.safetensors");
  std::vector<std::string> names;
  std::vector<torch::Tensor> p, g, want;
  for (auto& [name, t] : named_parameters(*model_)) {
    names.push_back(name);
    p.push_back(t.detach().flatten().to(torch::kCPU));
    g.push_back(train.at("grad." + name).flatten());
    want.push_back(train.at("after_keras_adam." + name).flatten());
  }
  torch::Tensor params = torch::cat(p).to(torch::kCUDA), grads = torch::cat(g).to(torch::kCUDA);
  KerasAdam adam(params, AdamOptions{0.9, 0.999, 1e-7});
  adam.step(grads, 1e-3);
  EXPECT_LT(max_abs(params.to(torch::kCPU), torch::cat(want)), 1e-6);
}

// The rows' kernel of train.embedding_adam_overlap (model/kernels/adam_rows.cu) rounds every
// operation as the CPU loop does: bitwise the CPU's parts, whichever rows go first, a skipped
// update included; the consumed rows' gradient is zero after.
TEST_F(Gpu, TheRowsKernelIsBitwiseTheCpuLoop) {
  if (!fused_kernels_compiled()) GTEST_SKIP() << "this build has no fused kernels";
  torch::manual_seed(6);
  const RowBlock block{101, 1000, 768};
  const int64_t n = block.offset + block.numel() + 77;
  torch::Tensor cpu = torch::randn({n}), gpu = cpu.to(torch::kCUDA);
  const AdamOptions o{0.9, 0.999, 1e-7};
  KerasAdam a(cpu, o), b(gpu, o);
  for (int t = 1; t <= 4; ++t) {
    torch::Tensor g = torch::randn({n}) * (t % 2 ? 1e-3 : 1.0);
    if (t == 2) g[block.offset + 3] = NAN;
    torch::Tensor g_gpu = g.to(torch::kCUDA);
    const torch::Tensor first = torch::randint(0, 2, {block.rows}, torch::kByte);
    const torch::Tensor consume = torch::randint(0, 2, {block.rows}, torch::kByte);
    const double alpha = a.step_outside(g, 1e-3, non_finite_flag(g), block);
    a.update_rows(g, alpha, non_finite_flag(g), block, first, true, consume);
    a.update_rows(g, alpha, non_finite_flag(g), block, first, false, consume);
    const torch::Tensor flag = non_finite_flag(g_gpu);
    b.step_outside(g_gpu, 1e-3, flag, block);
    b.update_rows(g_gpu, alpha, flag, block, first.to(torch::kCUDA), true,
                  consume.to(torch::kCUDA));
    b.update_rows(g_gpu, alpha, flag, block, first.to(torch::kCUDA), false,
                  consume.to(torch::kCUDA));
    const auto rows = [&](const torch::Tensor& flat) {
      return flat.narrow(0, block.offset, block.numel()).to(torch::kCPU);
    };
    EXPECT_TRUE(torch::equal(rows(gpu), rows(cpu))) << "step " << t;
    EXPECT_TRUE(torch::equal(rows(b.m()), rows(a.m()))) << "step " << t;
    EXPECT_TRUE(torch::equal(rows(b.v()), rows(a.v()))) << "step " << t;
    EXPECT_TRUE(rows(g_gpu).nan_to_num(0).equal(rows(g).nan_to_num(0))) << "the same rows consumed";
    if (t == 2) a.note_skipped(), b.note_skipped();
  }
  // The dense part is the fused kernel's: within its rounding of the CPU loop.
  EXPECT_LT(max_abs(gpu.to(torch::kCPU), cpu), 5e-6);
}

TEST_F(Gpu, FusedAdamFollowsTheCpuLoopAndSkipsOnFoundInf) {
  torch::manual_seed(5);
  const int64_t n = 1000003;
  torch::Tensor cpu = torch::randn({n}), gpu = cpu.to(torch::kCUDA);
  const AdamOptions o{0.8, 0.99, 1e-6};
  KerasAdam a(cpu, o), b(gpu, o);
  for (int t = 1; t <= 5; ++t) {
    torch::Tensor g = torch::randn({n}) * (t % 2 ? 1e-3 : 1.0);
    a.step(g, 1e-2 / t);
    b.step(g.to(torch::kCUDA), 1e-2 / t, non_finite_flag(g.to(torch::kCUDA)));
  }
  // Same float formula, different operation order (FMA contraction, division): a few ulps.
  EXPECT_LT(max_abs(gpu.to(torch::kCPU), cpu), 5e-6);
  EXPECT_LT(max_abs(b.m().to(torch::kCPU), a.m()), 1e-6);
  EXPECT_LT(max_abs(b.v().to(torch::kCPU), a.v()), 1e-6);
  // A non-finite gradient: the flag skips everything on the device.
  torch::Tensor before = gpu.clone(), m = b.m().clone(), v = b.v().clone();
  torch::Tensor bad = torch::randn({n}, torch::kCUDA);
  bad[17] = std::numeric_limits<float>::infinity();
  torch::Tensor flag = non_finite_flag(bad);
  b.step(bad, 1e-2, flag);
  b.note_skipped();
  EXPECT_TRUE(torch::equal(gpu, before));
  EXPECT_TRUE(torch::equal(b.m(), m));
  EXPECT_TRUE(torch::equal(b.v(), v));
  EXPECT_EQ(b.iterations(), 5);
  b.step(bad.nan_to_num(0, 0, 0), 1e-2,
         torch::zeros({1}, torch::dtype(torch::kInt).device(torch::kCUDA)));
  EXPECT_FALSE(torch::equal(gpu, before));
}

}  // namespace
}  // namespace sx::model

// Parity of the libtorch model with HF transformers' XLM-R and the notebook's training step
// (../shared/fixtures/hf-tiny-xlmr), and the model layer's error handling.
#include <torch/torch.h>

#include <fstream>

#include "core/error.h"
#include "model/keras_adam.h"
#include "model/siamese_loss.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "test_util.h"

namespace sx::model {
namespace {

std::string tiny_dir() {
  return test::fixtures_dir() + "/hf-tiny-xlmr";
}

std::map<std::string, torch::Tensor> forward_ref() {
  static auto ref = read_safetensors(tiny_dir() + "/forward_ref.safetensors");
  return ref;
}
std::map<std::string, torch::Tensor> train_ref() {
  static auto ref = read_safetensors(tiny_dir() + "/train_step_ref.safetensors");
  return ref;
}

// The fixture model with the fixture's pooling LayerNorm, in eval mode (dropout is 0 anyway).
SiameseEncoder fixture_model() {
  SiameseEncoder model(read_xlmr_config(tiny_dir() + "/config.json"), 1e-3);
  auto weights = read_hf_weights(tiny_dir());
  weights["pool_ln.weight"] = forward_ref()["pool_ln.weight"];
  weights["pool_ln.bias"] = forward_ref()["pool_ln.bias"];
  LoadReport report = load_state(*model, weights, "fixture");
  EXPECT_TRUE(report.pool_ln_from_file);
  model->eval();
  return model;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Every HF parity test runs through both CPU attention paths of the one (packed) encode path:
// one attention per sequence (the CPU's default), and padded inside attention with a key mask
// (the path devices without flash take).
enum class Layout { kPerSequence, kPaddedInside };

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) {
  return info.param == Layout::kPaddedInside ? "PaddedInside" : "PerSequence";
}

void use_layout(SiameseEncoder& model, Layout layout) {
  ComputeOptions compute;
  compute.pad_inside_attention = layout == Layout::kPaddedInside;
  model->set_compute(compute);
}

class XlmrParity : public ::testing::TestWithParam<Layout> {};

TEST_P(XlmrParity, LastHiddenStateWithin1e5) {
  auto model = fixture_model();
  torch::NoGradGuard no_grad;
  torch::Tensor ids = forward_ref()["input_ids"];
  torch::Tensor mask = forward_ref()["attention_mask"].to(torch::kBool);
  torch::Tensor want = forward_ref()["last_hidden_state"];
  // HF's own layout (the reference path): HF computes pad positions too; compare every one.
  EXPECT_LT(max_abs_diff(model->hidden_states(ids), want), 1e-5);
  // The packed layout has the real tokens only, in row order: HF's rows at the mask.
  use_layout(model, GetParam());
  torch::Tensor hidden = model->hidden_states(pack_padded(ids, 1));
  ASSERT_EQ(hidden.size(0), mask.sum().item<int64_t>());
  EXPECT_LT(max_abs_diff(hidden, want.index({mask})), 1e-5);
}

TEST_P(XlmrParity, EmbeddingWithin1e5) {
  auto model = fixture_model();
  use_layout(model, GetParam());
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff(model->forward(forward_ref()["input_ids"]), forward_ref()["embedding"]),
            1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layouts, XlmrParity,
                         ::testing::Values(Layout::kPerSequence, Layout::kPaddedInside),
                         layout_name);

TEST(XlmrParityPositions, PositionIdsFollowRoberta) {
  torch::Tensor ids = torch::tensor({0, 5, 6, 2, 1, 1}, torch::kLong).view({1, 6});
  torch::Tensor pos = roberta_position_ids(ids, 1);
  EXPECT_TRUE(torch::equal(pos, torch::tensor({2, 3, 4, 5, 1, 1}, torch::kLong).view({1, 6})));
}

struct StepResult {
  torch::Tensor embeddings, distance, loss;
  SiameseEncoder model{nullptr};
};

StepResult fixture_step(Layout layout, ComputeOptions compute = {}) {
  StepResult r;
  r.model = fixture_model();
  compute.pad_inside_attention = layout == Layout::kPaddedInside;
  r.model->set_compute(compute);
  auto ref = train_ref();
  torch::Tensor ids = torch::cat({ref["left_ids"], ref["right_ids"]}, 0);
  r.embeddings = r.model->forward(ids);
  const int64_t n = ref["left_ids"].size(0);
  r.distance = pair_distance(r.embeddings.narrow(0, 0, n), r.embeddings.narrow(0, n, n));
  r.loss = dbl_loss(r.distance, ref["labels"], 1.0);
  r.loss.backward();
  return r;
}

class SiameseParity : public ::testing::TestWithParam<Layout> {};

TEST_P(SiameseParity, DistanceAndLossWithinRelative1e6) {
  StepResult r = fixture_step(GetParam());
  auto ref = train_ref();
  torch::Tensor want_d = ref["distance"].to(torch::kDouble);
  EXPECT_LT(
      ((r.distance.detach().to(torch::kDouble) - want_d).abs() / want_d.abs()).max().item<double>(),
      1e-6);
  double want_loss = ref["loss"].item<double>();
  EXPECT_NEAR(r.loss.item<double>(), want_loss, 1e-6 * std::abs(want_loss));
}

TEST_P(SiameseParity, EveryGradientWithinRelative1e4OfItsNorm) {
  StepResult r = fixture_step(GetParam());
  auto ref = train_ref();
  size_t checked = 0;
  for (auto& [name, p] : named_parameters(*r.model)) {
    auto it = ref.find("grad." + name);
    ASSERT_NE(it, ref.end()) << name;
    ASSERT_TRUE(p.grad().defined()) << name;
    double norm = it->second.to(torch::kDouble).norm().item<double>();
    double err =
        (p.grad().to(torch::kDouble) - it->second.to(torch::kDouble)).norm().item<double>();
    // Two gradients are zero in exact arithmetic: attention key biases (softmax ignores a
    // shift shared by all keys of a query) and pool_ln.bias (it cancels in eL - eR). Both
    // sides are float32 rounding noise there (~1e-10..1e-8), so "relative to the norm" means
    // nothing; require the noise to stay at that level instead.
    const bool analytically_zero =
        name.find("attention.self.key.bias") != std::string::npos || name == "pool_ln.bias";
    if (analytically_zero)
      EXPECT_LT(p.grad().to(torch::kDouble).norm().item<double>(), 1e-6) << name;
    else
      EXPECT_LE(err, 1e-4 * norm) << name << " err " << err << " norm " << norm;
    ++checked;
  }
  EXPECT_EQ(checked, 39u);  // 5 embedding + 2 x 16 layer tensors + pool_ln weight and bias
}

INSTANTIATE_TEST_SUITE_P(Layouts, SiameseParity,
                         ::testing::Values(Layout::kPerSequence, Layout::kPaddedInside),
                         layout_name);

// ---- packed ids ----

// The packed layout's CPU attention paths: per sequence (the default), padded inside attention.
class Packed : public ::testing::TestWithParam<bool> {
 protected:
  ComputeOptions compute() const {
    ComputeOptions c;
    c.pad_inside_attention = GetParam();
    return c;
  }
};

std::string attention_name(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "PaddedInside" : "PerSequence";
}

TEST(PackedIdsTest, PackPaddedKeepsRealTokensAndOffsets) {
  torch::Tensor ids =
      torch::tensor({0, 7, 2, 1, 1, 0, 8, 9, 10, 2, 0, 2, 1, 1, 1}, torch::kLong).view({3, 5});
  PackedIds p = pack_padded(ids, 1);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 3, 8, 10}));
  EXPECT_EQ(p.max_seqlen, 5);
  EXPECT_EQ(p.batch(), 3);
  EXPECT_EQ(p.tokens(), 10);
  EXPECT_TRUE(torch::equal(p.ids, torch::tensor({0, 7, 2, 0, 8, 9, 10, 2, 0, 2}, torch::kLong)));
  EXPECT_EQ(p.cu_seqlens.scalar_type(), torch::kInt);
  EXPECT_TRUE(torch::equal(p.cu_seqlens, torch::tensor({0, 3, 8, 10}, torch::kInt)));
  EXPECT_THROW(make_packed(p.ids, {0, 3, 2, 10}, torch::kCPU), c10::Error);
  EXPECT_THROW(make_packed(p.ids, {0, 3, 9}, torch::kCPU), c10::Error);
}

// Pooling by segment (model.fused_kernels): each sequence's sum of its rows, forward and
// backward, empty sequences included, against a sum per sequence; and within float rounding of
// the padded layout's sums (another summation order).
TEST(SegmentSums, EachSequenceSumsItsOwnRowsAndEmptyOnesAreZero) {
  torch::manual_seed(11);
  const std::vector<int64_t> lengths{3, 0, 7, 1, 0, 12, 5};
  std::vector<int64_t> offsets{0};
  for (const int64_t n : lengths) offsets.push_back(offsets.back() + n);
  const int64_t tokens = offsets.back(), hidden = 16;
  const torch::Tensor cu = torch::tensor(offsets, torch::kLong).to(torch::kInt);
  torch::Tensor x = torch::randn({tokens, hidden}, torch::kDouble).requires_grad_();
  torch::Tensor sums = segment_sums(x, cu);
  ASSERT_EQ(sums.sizes(), (std::vector<int64_t>{static_cast<int64_t>(lengths.size()), hidden}));
  const torch::Tensor g = torch::randn_like(sums);
  const torch::Tensor dx = torch::autograd::grad({sums}, {x}, {g})[0];
  for (size_t b = 0; b < lengths.size(); ++b) {
    const torch::Tensor rows = x.detach().narrow(0, offsets[b], lengths[b]);
    EXPECT_TRUE(torch::allclose(sums[b].detach(), rows.sum(0), 0, 1e-12)) << b;
    // d(sum)/d(row) = 1: every row of sequence b gets g[b].
    EXPECT_TRUE(torch::equal(dx.narrow(0, offsets[b], lengths[b]),
                             g[b].unsqueeze(0).expand({lengths[b], hidden})))
        << b;
  }
  // float32, as the trainer pools: the padded layout's order agrees to rounding.
  const torch::Tensor xf = x.detach().to(torch::kFloat);
  torch::Tensor padded = torch::zeros({static_cast<int64_t>(lengths.size()), 12, hidden});
  for (size_t b = 0; b < lengths.size(); ++b)
    padded[b].narrow(0, 0, lengths[b]).copy_(xf.narrow(0, offsets[b], lengths[b]));
  EXPECT_TRUE(torch::allclose(segment_sums(xf, cu), padded.sum(1), 1e-6, 1e-6));
}

// A random model of other sizes, sequences of uniform random lengths: each sequence's
// packed hidden states equal the sequence run alone (positions restart, attention stays
// within the sequence), and the packed embeddings equal the padded ones.
TEST_P(Packed, SequencesDoNotSeeEachOther) {
  XlmrConfig c;
  c.vocab_size = 300, c.hidden_size = 48, c.num_hidden_layers = 3, c.num_attention_heads = 6;
  c.intermediate_size = 80, c.max_position_embeddings = 64;
  SiameseEncoder model(c);
  init_weights(*model, 3);
  model->eval();
  model->set_compute(compute());
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  const std::vector<int64_t> lengths{5, 1, 40, 0, 17, 2, 33};  // an empty one too
  std::vector<torch::Tensor> seqs;
  std::vector<int64_t> offsets{0};
  for (int64_t n : lengths) {
    seqs.push_back(torch::randint(4, 300, {n}, torch::kLong));
    offsets.push_back(offsets.back() + n);
  }
  PackedIds packed = make_packed(torch::cat(seqs), offsets, torch::kCPU);
  EXPECT_EQ(packed.max_seqlen, 40);
  torch::Tensor hidden = model->hidden_states(packed);
  torch::Tensor padded = torch::ones({7, 40}, torch::kLong);
  for (size_t i = 0; i < seqs.size(); ++i) {
    padded[i].narrow(0, 0, lengths[i]).copy_(seqs[i]);
    if (lengths[i] == 0) continue;
    torch::Tensor alone = model->hidden_states(seqs[i].view({1, -1}))[0];  // padded layout
    EXPECT_LT(max_abs_diff(hidden.narrow(0, offsets[i], lengths[i]), alone), 1e-5) << i;
  }
  torch::Tensor packed_embeddings = model->forward(packed);
  model->set_compute({});
  EXPECT_LT(max_abs_diff(packed_embeddings, model->forward(padded)), 1e-5);
}

TEST_P(Packed, TrainsWithDropoutOnAnotherConfiguration) {
  XlmrConfig c;
  c.vocab_size = 300, c.hidden_size = 48, c.num_hidden_layers = 3, c.num_attention_heads = 6;
  c.intermediate_size = 80, c.max_position_embeddings = 64, c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = 0.1;
  SiameseEncoder model(c);
  init_weights(*model, 1);
  model->train();
  model->set_compute(compute());
  PackedIds packed =
      make_packed(torch::randint(4, 300, {50}, torch::kLong), {0, 20, 21, 50}, torch::kCPU);
  torch::Tensor e = model->forward(packed);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 48}));
  e.sum().backward();
  for (auto& [name, p] : named_parameters(*model)) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(CpuAttention, Packed, ::testing::Values(false, true), attention_name);

// ---- Keras Adam over one flat buffer ----

struct FlatFixture {
  std::vector<std::string> names;
  std::vector<torch::Tensor> shapes;
  torch::Tensor params, grads;
};

FlatFixture flat_fixture() {
  FlatFixture f;
  auto model = fixture_model();
  auto ref = train_ref();
  std::vector<torch::Tensor> p, g;
  for (auto& [name, t] : named_parameters(*model)) {
    f.names.push_back(name);
    f.shapes.push_back(t);
    p.push_back(t.detach().flatten());
    g.push_back(ref.at("grad." + name).flatten());
  }
  f.params = torch::cat(p).contiguous();
  f.grads = torch::cat(g).contiguous();
  return f;
}

TEST(KerasAdamParity, OneStepWithin1e6) {
  FlatFixture f = flat_fixture();
  auto ref = train_ref();
  KerasAdam adam(f.params, AdamOptions{0.9, 0.999, 1e-7});
  adam.step(f.grads, 1e-3);
  EXPECT_EQ(adam.iterations(), 1);
  int64_t at = 0;
  for (size_t i = 0; i < f.names.size(); ++i) {
    const int64_t n = f.shapes[i].numel();
    EXPECT_LT(max_abs_diff(f.params.narrow(0, at, n).view(f.shapes[i].sizes()),
                           ref.at("after_keras_adam." + f.names[i])),
              1e-6)
        << f.names[i];
    at += n;
  }
  EXPECT_EQ(at, f.params.numel());
}

TEST(KerasAdamParity, IsNotTorchAdamWithTheSameEpsilon) {
  // The fixture's after_adam.* (torch.optim.Adam, eps 1e-7) differs from Keras' step by up
  // to 7e-4: make sure we implement the Keras one, not the torch one.
  auto ref = train_ref();
  double largest = 0;
  for (const auto& [key, t] : ref)
    if (key.rfind("after_adam.", 0) == 0)
      largest = std::max(largest, max_abs_diff(t, ref.at("after_keras_adam." + key.substr(11))));
  EXPECT_GT(largest, 1e-5);
}

TEST(KerasAdam, OnePassLoopIsTheFormulaOverSeveralSteps) {
  // Enough elements for several parallel chunks; the reference is the formula in double.
  torch::manual_seed(3);
  const int64_t n = 100003;
  torch::Tensor p = torch::randn({n});
  torch::Tensor p_ref = p.to(torch::kDouble), m_ref = torch::zeros_like(p_ref),
                v_ref = torch::zeros_like(p_ref);
  const AdamOptions o{0.8, 0.99, 1e-6};
  KerasAdam adam(p, o);
  for (int t = 1; t <= 5; ++t) {
    torch::Tensor g = torch::randn({n}) * (t % 2 ? 1e-3 : 1.0);
    const double lr = 1e-2 / t;
    adam.step(g, lr);
    torch::Tensor gd = g.to(torch::kDouble);
    m_ref = o.beta1 * m_ref + (1 - o.beta1) * gd;
    v_ref = o.beta2 * v_ref + (1 - o.beta2) * gd * gd;
    const double alpha = lr * std::sqrt(1 - std::pow(o.beta2, t)) / (1 - std::pow(o.beta1, t));
    p_ref = p_ref - alpha * m_ref / (v_ref.sqrt() + o.epsilon);
  }
  EXPECT_EQ(adam.iterations(), 5);
  // float32 arithmetic against double: a few float ulps of the values (|p| < 5).
  EXPECT_LT(max_abs_diff(p, p_ref), 5e-6);
  EXPECT_LT(max_abs_diff(adam.m(), m_ref), 1e-6);  // |m| < 1
  EXPECT_LT(max_abs_diff(adam.v(), v_ref), 1e-6);  // |v| < 1
}

TEST(KerasAdam, FoundInfSkipsTheUpdateAndNoteSkippedKeepsIterationsExact) {
  torch::Tensor p = torch::ones({4});
  KerasAdam adam(p, {});
  torch::Tensor g = torch::tensor({0.1f, -0.2f, 0.3f, 0.4f});
  adam.step(g, 0.01, torch::zeros({1}));
  torch::Tensor p1 = p.clone(), m1 = adam.m().clone(), v1 = adam.v().clone();
  EXPECT_FALSE(torch::equal(p1, torch::ones({4})));
  torch::Tensor bad = torch::tensor({NAN, 1.0f, 1.0f, 1.0f});
  torch::Tensor flag = non_finite_flag(bad);
  EXPECT_EQ(flag.item<float>(), 1.0f);
  EXPECT_EQ(non_finite_flag(g).item<float>(), 0.0f);
  adam.step(bad, 0.01, flag);
  EXPECT_TRUE(torch::equal(p, p1));
  EXPECT_TRUE(torch::equal(adam.m(), m1));
  EXPECT_TRUE(torch::equal(adam.v(), v1));
  EXPECT_EQ(adam.iterations(), 2);
  adam.note_skipped();
  EXPECT_EQ(adam.iterations(), 1);
  adam.step(g, 0.01, torch::zeros({1}, torch::kInt));  // int flags work too
  EXPECT_FALSE(torch::equal(p, p1));
  EXPECT_EQ(adam.iterations(), 2);
}

// train.embedding_adam_overlap's parts of one update: outside a row block, then the block's rows
// in two sets (any split), give bitwise what step() gives; the rows marked consumed end with zero
// gradient, also when found_inf skips the update.
TEST(KerasAdam, AnUpdateInPartsIsBitwiseTheWholeStepAndConsumesTheMarkedRows) {
  torch::manual_seed(11);
  const RowBlock block{37, 50, 9};  // dense values before and after the block
  const int64_t n = block.offset + block.numel() + 23;
  torch::Tensor whole = torch::randn({n}), parts = whole.clone();
  const AdamOptions o{0.8, 0.99, 1e-6};
  KerasAdam a(whole, o), b(parts, o);
  for (int t = 1; t <= 4; ++t) {
    torch::Tensor g = torch::randn({n}) * (t % 2 ? 1e-3 : 1.0);
    if (t == 3) g[block.offset + 5 * block.width + 2] = NAN;  // skipped, on both sides
    const torch::Tensor flag = non_finite_flag(g);
    torch::Tensor first = torch::randint(0, 2, {block.rows}, torch::kByte);
    torch::Tensor consume = torch::randint(0, 2, {block.rows}, torch::kByte);
    torch::Tensor g_parts = g.clone();
    const double want_alpha = a.alpha(1e-2 / t);
    a.step(g, 1e-2 / t, flag);
    const double alpha = b.step_outside(g_parts, 1e-2 / t, flag, block);
    EXPECT_EQ(alpha, want_alpha) << "step " << t;
    b.update_rows(g_parts, alpha, flag, block, first, /*selected=*/true, consume);
    b.update_rows(g_parts, alpha, flag, block, first, /*selected=*/false, consume);
    if (t == 3) a.note_skipped(), b.note_skipped();
    EXPECT_TRUE(torch::equal(whole, parts)) << "step " << t;
    EXPECT_TRUE(torch::equal(a.m(), b.m())) << "step " << t;
    EXPECT_TRUE(torch::equal(a.v(), b.v())) << "step " << t;
    EXPECT_EQ(a.iterations(), b.iterations());
    // The consumed rows' gradient is zero, everything else untouched.
    torch::Tensor rows_after =
        g_parts.narrow(0, block.offset, block.numel()).view({block.rows, -1});
    torch::Tensor rows_before = g.narrow(0, block.offset, block.numel()).view({block.rows, -1});
    for (int64_t r = 0; r < block.rows; ++r) {
      if (consume[r].item<uint8_t>())
        EXPECT_TRUE(torch::equal(rows_after[r], torch::zeros({block.width}))) << r;
      else
        EXPECT_TRUE(rows_after[r].nan_to_num(0).equal(rows_before[r].nan_to_num(0))) << r;
    }
    EXPECT_TRUE(torch::equal(g_parts.narrow(0, 0, block.offset), g.narrow(0, 0, block.offset)));
  }
  torch::Tensor g = torch::zeros({n});
  const torch::Tensor mask = torch::ones({block.rows}, torch::kByte);
  EXPECT_THROW(b.update_rows(g, 0.1, {}, block, torch::ones({3}, torch::kByte), true, mask),
               c10::Error);  // a mask of the wrong length
  EXPECT_THROW(b.step_outside(g, 0.1, {}, RowBlock{n - 5, 2, 3}), c10::Error);  // past the end
}

TEST(KerasAdam, StateRoundTripsThroughTheFlatMoments) {
  torch::Tensor p = torch::ones({3});
  torch::Tensor g = torch::tensor({0.1f, -0.2f, 0.3f});
  KerasAdam a(p, {});
  a.step(g, 0.01);
  a.step(g, 0.01);
  torch::Tensor q = p.clone();
  KerasAdam b(q, {});
  b.m().copy_(a.m());
  b.v().copy_(a.v());
  b.set_iterations(a.iterations());
  a.step(g, 0.01);
  b.step(g, 0.01);
  EXPECT_TRUE(torch::equal(p, q));
  EXPECT_THROW(KerasAdam(torch::ones({2, 2}).t(), {}), c10::Error);  // not contiguous
  EXPECT_THROW(a.step(torch::ones({4}), 0.01), c10::Error);          // wrong shape
}

TEST(DblLoss, AgreesWithKerasFormWhereItIsFinite) {
  torch::Tensor d = torch::linspace(std::sqrt(1e-7), 30.0, 2000, torch::kDouble);
  for (double y : {0.0, 1.0}) {
    torch::Tensor labels = torch::full_like(d, y);
    for (int64_t i = 0; i < d.size(0); ++i) {
      torch::Tensor di = d.narrow(0, i, 1), yi = labels.narrow(0, i, 1);
      double ours = dbl_loss(di, yi, 1.0).item<double>();
      double keras = dbl_loss_keras(di, yi, 1.0).item<double>();
      ASSERT_NEAR(ours, keras, 1e-9 * std::max(1.0, std::abs(keras)))
          << "d " << di.item<double>() << " y " << y;
    }
  }
}

TEST(DblLoss, FiniteValueAndGradientWhereKerasOverflows) {
  torch::Tensor d = torch::tensor({50.0f, 100.0f, 1000.0f}, torch::requires_grad());
  torch::Tensor y = torch::tensor({1.0f, 0.0f, 1.0f});
  torch::Tensor ours = dbl_loss(d, y, 1.0);
  ours.backward();
  EXPECT_TRUE(std::isfinite(ours.item<double>()));
  EXPECT_TRUE(torch::isfinite(d.grad()).all().item<bool>());
  // The value is the Keras one (saturated at the clip): -log(2e-7) for y=1, -log(1) for y=0.
  double expected = (2 * -std::log(2e-7) + -std::log(1.0 - 1e-7 + 1e-7)) / 3;
  EXPECT_NEAR(ours.item<double>(), expected, 1e-5);
  // Keras' float32 form: exp(d - m) overflows and its gradient is NaN there.
  torch::Tensor d2 = torch::tensor({100.0f, 1000.0f}, torch::requires_grad());
  dbl_loss_keras(d2, torch::tensor({1.0f, 1.0f}), 1.0).backward();
  EXPECT_FALSE(torch::isfinite(d2.grad()).all().item<bool>());
}

TEST(Weights, MissingUnexpectedAndMisshapedInOneError) {
  SiameseEncoder model(read_xlmr_config(tiny_dir() + "/config.json"));
  auto weights = read_hf_weights(tiny_dir());
  weights.erase("encoder.layer.1.output.dense.bias");
  weights["encoder.layer.9.extra.weight"] = torch::zeros({2});
  weights["embeddings.LayerNorm.bias"] = torch::zeros({31});
  try {
    load_state(*model, weights, "model.pretrained: dir");
    FAIL();
  } catch (const UserError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("1 missing (encoder.layer.1.output.dense.bias)"), std::string::npos) << m;
    EXPECT_NE(m.find("1 unexpected (encoder.layer.9.extra.weight)"), std::string::npos) << m;
    EXPECT_NE(m.find("1 mis-shaped (embeddings.LayerNorm.bias (file [31], model [32]))"),
              std::string::npos)
        << m;
  }
}

TEST(Weights, RobertaPrefixLmHeadPoolerAndAbsentPoolLn) {
  SiameseEncoder model(read_xlmr_config(tiny_dir() + "/config.json"));
  std::map<std::string, torch::Tensor> prefixed;
  for (auto& [name, t] : read_hf_weights(tiny_dir())) prefixed["roberta." + name] = t;
  prefixed["lm_head.dense.weight"] = torch::zeros({32, 32});
  prefixed["roberta.pooler.dense.weight"] = torch::zeros({32, 32});
  LoadReport report = load_state(*model, prefixed, "x");
  EXPECT_FALSE(report.pool_ln_from_file);
  EXPECT_EQ(report.tensors_ignored, 2u);
  EXPECT_TRUE(torch::equal(model->pool_ln()->weight, torch::ones({32})));
  EXPECT_TRUE(torch::equal(model->pool_ln()->bias, torch::zeros({32})));
}

TEST(Weights, ShardedIndexLoadsTheSameTensors) {
  test::TempDir dir;
  auto all = read_hf_weights(tiny_dir());
  std::map<std::string, torch::Tensor> a, b;
  std::string index = "{\"weight_map\": {";
  bool first = true;
  for (auto& [name, t] : all) {
    bool to_a = name.find("layer.1") == std::string::npos;
    (to_a ? a : b)[name] = t;
    index += std::string(first ? "" : ",") + "\"" + name + "\": \"" +
             (to_a ? "part-1.safetensors" : "part-2.safetensors") + "\"";
    first = false;
  }
  index += "}}";
  write_safetensors(dir.path("part-1.safetensors"), a);
  write_safetensors(dir.path("part-2.safetensors"), b);
  dir.write("model.safetensors.index.json", index);
  auto loaded = read_hf_weights(dir.path());
  ASSERT_EQ(loaded.size(), all.size());
  for (auto& [name, t] : all) EXPECT_TRUE(torch::equal(loaded.at(name), t)) << name;
}

TEST(Weights, Bf16AndF16ConvertToFloat) {
  test::TempDir dir;
  torch::Tensor x = torch::tensor({1.5f, -2.25f, 3.0f});
  write_safetensors(dir.path("m.safetensors"),
                    {{"h", x.to(torch::kHalf)}, {"b", x.to(torch::kBFloat16)}});
  auto back = read_safetensors(dir.path("m.safetensors"));
  EXPECT_TRUE(torch::equal(back.at("h"), x));
  EXPECT_TRUE(torch::equal(back.at("b"), x));
  EXPECT_EQ(back.at("h").scalar_type(), torch::kFloat);
}

TEST(Init, AsHfDoesAndDeterministic) {
  XlmrConfig c;
  c.vocab_size = 100, c.hidden_size = 24, c.num_hidden_layers = 3, c.num_attention_heads = 6;
  c.intermediate_size = 40, c.max_position_embeddings = 40;
  SiameseEncoder a(c), b(c);
  init_weights(*a, 5);
  init_weights(*b, 5);
  for (auto& [name, p] : named_parameters(*a))
    EXPECT_TRUE(torch::equal(p, named_parameters(*b).at(name))) << name;
  auto p = named_parameters(*a);
  EXPECT_TRUE(torch::equal(p.at("embeddings.word_embeddings.weight")[1], torch::zeros({24})));
  EXPECT_TRUE(torch::equal(p.at("encoder.layer.2.output.LayerNorm.weight"), torch::ones({24})));
  EXPECT_TRUE(torch::equal(p.at("encoder.layer.0.attention.self.query.bias"), torch::zeros({24})));
  EXPECT_NEAR(p.at("encoder.layer.0.intermediate.dense.weight").std().item<double>(), 0.02, 0.003);
}

TEST(AnySize, ForwardAndBackwardOnAnotherConfiguration) {
  // Nothing may depend on the fixture's sizes: 3 layers, hidden 48, 6 heads, odd lengths.
  XlmrConfig c;
  c.vocab_size = 300, c.hidden_size = 48, c.num_hidden_layers = 3, c.num_attention_heads = 6;
  c.intermediate_size = 80, c.max_position_embeddings = 64, c.hidden_dropout_prob = 0.1;
  SiameseEncoder model(c);
  init_weights(*model, 1);
  model->train();
  torch::Tensor ids = torch::randint(4, 300, {5, 37}, torch::kLong);
  ids.index_put_({torch::indexing::Slice(), 0}, 0);
  ids.index_put_({2, torch::indexing::Slice(20, torch::indexing::None)}, 1);
  torch::Tensor e = model->forward(ids);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{5, 48}));
  e.sum().backward();
  for (auto& [name, p] : named_parameters(*model)) EXPECT_TRUE(p.grad().defined()) << name;
}

TEST(Masking, PaddingDoesNotChangeEmbeddings) {
  auto model = fixture_model();
  torch::NoGradGuard no_grad;
  torch::Tensor ids = forward_ref()["input_ids"].narrow(0, 0, 3);
  int64_t len = (ids[0] != 1).sum().item<int64_t>();
  torch::Tensor short_ids = ids.narrow(0, 0, 1).narrow(1, 0, len);
  EXPECT_LT(max_abs_diff(model->forward(short_ids), model->forward(ids.narrow(0, 0, 1))), 1e-5);
}

// The bf16 linear (one GEMM for several linears sharing an input, bias gradient as a GEMV,
// optional direct accumulation into .grad) against autocast's formulation, layer by layer.
// One linear or three (the fused query/key/value projection): every argument the autograd
// function gets is a defined tensor, as torch 2.x requires.
class Bf16Linear : public ::testing::TestWithParam<int> {};

TEST_P(Bf16Linear, MatchesCastLinearsAndAccumulatesDirectly) {
  torch::manual_seed(3);
  const int linears = GetParam();
  std::vector<torch::Tensor> params;
  for (int i = 0; i < linears; ++i) {
    params.push_back(torch::randn({4, 8}).requires_grad_());
    params.push_back(torch::randn({4}).requires_grad_());
  }
  const torch::Tensor x0 = torch::randn({2, 5, 8}), upstream = torch::randn({2, 5, 4 * linears});
  auto run = [&](bool fused, bool direct) {
    for (auto& p : params) p.mutable_grad() = direct ? torch::zeros_like(p) : torch::Tensor();
    torch::Tensor x = x0.clone().requires_grad_();
    torch::Tensor y;
    if (fused) {
      y = bf16_linear(x, params, direct);
    } else {
      std::vector<torch::Tensor> parts;
      for (size_t i = 0; i < params.size(); i += 2)
        parts.push_back(torch::nn::functional::linear(x.to(torch::kBFloat16),
                                                      params[i].to(torch::kBFloat16),
                                                      params[i + 1].to(torch::kBFloat16)));
      y = torch::cat(parts, -1);
    }
    (y.to(torch::kFloat) * upstream).sum().backward();
    std::vector<torch::Tensor> out{y.detach().to(torch::kFloat), x.grad()};
    for (auto& p : params) out.push_back(p.grad().clone());
    return out;
  };
  const auto reference = run(false, false), fused = run(true, false), direct = run(true, true);
  ASSERT_EQ(reference.size(), fused.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    // bf16 products summed in another order round differently: bf16's relative step 2^-8.
    const double scale = reference[i].abs().max().item<double>();
    EXPECT_LE((fused[i] - reference[i]).abs().max().item<double>(), 2e-2 * scale + 1e-6) << i;
    // Adding into zeroed fp32 gradients is exact: the same numbers either way.
    EXPECT_TRUE(torch::equal(direct[i], fused[i])) << i;
  }
  EXPECT_EQ(fused[1].scalar_type(), torch::kFloat);  // x's gradient in x's dtype
}

INSTANTIATE_TEST_SUITE_P(OneOrThree, Bf16Linear, ::testing::Values(1, 3));

// bf16 compute on the CPU (the GPU tests repeat it with flash and SDPA): with the residual stream
// in fp32 (autocast's rule) or in bf16 (model.residual_dtype: bf16), on both attention paths, the
// fixture step stays within bf16 tolerance of fp32 and the last hidden state comes back in
// fp32 for pooling.
class Bf16Residual : public ::testing::TestWithParam<std::tuple<Layout, bool>> {};

TEST_P(Bf16Residual, FixtureStepWithinBf16ToleranceOfFp32) {
  const auto [layout, bf16_residual] = GetParam();
  const StepResult fp32 = fixture_step(layout);
  ComputeOptions compute;
  compute.bf16 = true;
  compute.bf16_residual = bf16_residual;
  const StepResult bf16 = fixture_step(layout, compute);
  // bf16 keeps 8 mantissa bits (relative step 2^-8); through 2 layers and a LayerNorm the
  // unit-scale embeddings move by a few hundredths at most (as in test_gpu's bf16 tests).
  EXPECT_EQ(bf16.embeddings.scalar_type(), torch::kFloat);
  EXPECT_LT(max_abs_diff(bf16.embeddings, fp32.embeddings), 5e-2);
  EXPECT_GT(torch::cosine_similarity(bf16.embeddings.flatten(), fp32.embeddings.flatten(), 0)
                .item<double>(),
            0.999);
  EXPECT_NEAR(bf16.loss.item<double>(), fp32.loss.item<double>(),
              2e-2 * std::abs(fp32.loss.item<double>()));
  auto flat_grads = [](const SiameseEncoder& model) {
    std::vector<torch::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().flatten());
    return torch::cat(g).to(torch::kDouble);
  };
  const torch::Tensor g32 = flat_grads(fp32.model), g16 = flat_grads(bf16.model);
  EXPECT_TRUE(torch::isfinite(g16).all().item<bool>());
  EXPECT_GT(torch::cosine_similarity(g16, g32, 0).item<double>(), 0.99);
  ComputeOptions residual_only;
  residual_only.bf16_residual = true;  // without bf16 compute: fp32 throughout, the same numbers
  EXPECT_TRUE(torch::equal(fixture_step(layout, residual_only).embeddings, fp32.embeddings));
}

INSTANTIATE_TEST_SUITE_P(LayoutsAndResidual, Bf16Residual,
                         ::testing::Combine(::testing::Values(Layout::kPerSequence,
                                                              Layout::kPaddedInside),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<Layout, bool>>& info) {
                           return std::string(std::get<0>(info.param) == Layout::kPaddedInside
                                                  ? "PaddedInside"
                                                  : "PerSequence") +
                                  (std::get<1>(info.param) ? "Bf16Residual" : "Fp32Residual");
                         });

// Parameters laid out back to back in one buffer, weights then biases, with their gradients
// likewise (as train/flat_params.h lays out the fused query/key/value projection): the fused
// linear reads the weights as one view and adds the gradients in one pass each, and computes
// bitwise what it computes for separate tensors, directly accumulated or not. A layout that is
// not back to back (the biases in another order) still computes the same.
TEST(Bf16LinearLayout, BackToBackParametersGiveBitwiseWhatSeparateOnesGive) {
  torch::manual_seed(5);
  const int64_t rows = 4, cols = 8;
  const torch::Tensor values = torch::randn({3 * rows * cols + 3 * rows});
  const torch::Tensor x0 = torch::randn({2, 5, cols}), upstream = torch::randn({2, 5, 3 * rows});
  // (weight, bias) pairs as views of one parameter buffer and one gradient buffer, in `order`.
  auto laid_out = [&](torch::Tensor& buffer, torch::Tensor& grads,
                      const std::vector<int64_t>& bias_order) {
    buffer = values.clone();
    grads = torch::zeros_like(values);
    std::vector<torch::Tensor> params(6);
    for (int64_t i = 0; i < 3; ++i) {
      const int64_t w = i * rows * cols, b = 3 * rows * cols + bias_order[i] * rows;
      params[2 * i] = buffer.narrow(0, w, rows * cols).view({rows, cols}).detach().requires_grad_();
      params[2 * i + 1] = buffer.narrow(0, b, rows).detach().requires_grad_();
      params[2 * i].mutable_grad() = grads.narrow(0, w, rows * cols).view({rows, cols});
      params[2 * i + 1].mutable_grad() = grads.narrow(0, b, rows);
    }
    return params;
  };
  auto run = [&](std::vector<torch::Tensor> params, bool direct) {
    if (!direct)
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
    torch::Tensor x = x0.clone().requires_grad_();
    torch::Tensor y = bf16_linear(x, params, direct);
    (y.to(torch::kFloat) * upstream).sum().backward();
    std::vector<torch::Tensor> out{y.detach().to(torch::kFloat), x.grad()};
    for (auto& p : params) out.push_back(p.grad().clone());
    return out;
  };
  std::vector<torch::Tensor> separate;
  for (int64_t i = 0; i < 3; ++i) {
    separate.push_back(values.narrow(0, i * rows * cols, rows * cols).view({rows, cols}).clone());
    separate.push_back(values.narrow(0, 3 * rows * cols + i * rows, rows).clone());
  }
  for (auto& p : separate) p.requires_grad_();
  const auto reference = run(separate, false);
  for (const std::vector<int64_t>& bias_order :
       {std::vector<int64_t>{0, 1, 2}, std::vector<int64_t>{2, 0, 1}}) {
    for (const bool direct : {false, true}) {
      torch::Tensor buffer, grads;
      std::vector<torch::Tensor> params = laid_out(buffer, grads, {0, 1, 2});
      if (bias_order[0] != 0) {  // only the biases move: still the same values per parameter
        params = laid_out(buffer, grads, bias_order);
        for (int64_t i = 0; i < 3; ++i)
          params[2 * i + 1].detach().copy_(separate[2 * i + 1].detach());
      }
      const std::vector<torch::Tensor> weights{params[0], params[2], params[4]},
          biases{params[1], params[3], params[5]};
      {
        torch::NoGradGuard off;  // as in the fused linear's forward
        EXPECT_EQ(stacked(weights).data_ptr(), buffer.data_ptr());  // a view, no copy
        EXPECT_EQ(stacked(biases).data_ptr() == params[1].data_ptr(), bias_order[0] == 0);
        EXPECT_TRUE(torch::equal(stacked(biases), torch::cat(biases)));
      }
      const auto got = run(params, direct);
      ASSERT_EQ(got.size(), reference.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(torch::equal(got[i], reference[i]))
            << "output " << i << ", direct " << direct << ", biases " << bias_order[0];
      if (!direct) continue;
      for (size_t i = 0; i < params.size(); ++i)  // added into the gradient buffer itself
        EXPECT_EQ(params[i].grad().data_ptr(),
                  static_cast<void*>(grads.data_ptr<float>() +
                                     (params[i].data_ptr<float>() - buffer.data_ptr<float>())))
            << i;
    }
  }
}

// stacked() views only memory it may: tensors that merely sit next to each other (separate
// storages, as an allocator may place two parameters) are concatenated, and so are parameters
// autograd records (a view through the first one's geometry would lose the others' gradients).
TEST(Bf16LinearLayout, StackedCopiesWhatItMayNotView) {
  std::vector<float> memory(12);
  for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<float>(i);
  const torch::Tensor a = torch::from_blob(memory.data(), {2, 3}),
                      b = torch::from_blob(memory.data() + 6, {2, 3});  // adjacent, own storage
  ASSERT_NE(a.storage().unsafeGetStorageImpl(), b.storage().unsafeGetStorageImpl());
  const torch::Tensor ab = stacked({a, b});
  EXPECT_NE(ab.data_ptr(), a.data_ptr());
  EXPECT_TRUE(torch::equal(ab, torch::cat({a, b})));

  const torch::Tensor flat = torch::arange(12, torch::kFloat);
  torch::Tensor p = flat.narrow(0, 0, 6).view({2, 3}).detach().requires_grad_(),
                q = flat.narrow(0, 6, 6).view({2, 3}).detach().requires_grad_();
  {
    torch::NoGradGuard off;
    EXPECT_EQ(stacked({p, q}).data_ptr(), flat.data_ptr());
  }
  const torch::Tensor recorded = stacked({p, q});
  EXPECT_NE(recorded.data_ptr(), flat.data_ptr());
  (recorded * torch::arange(12, torch::kFloat).view({4, 3})).sum().backward();
  EXPECT_TRUE(torch::equal(p.grad(), torch::arange(6, torch::kFloat).view({2, 3})));
  EXPECT_TRUE(torch::equal(q.grad(), torch::arange(6, 12, torch::kFloat).view({2, 3})));
}

TEST(Bf16LinearArguments, OtherCountsAndUndefinedParametersAreRefused) {
  const torch::Tensor x = torch::randn({2, 8}), w = torch::randn({4, 8}), b = torch::randn({4});
  EXPECT_THROW(bf16_linear(x, {w, b, w, b}, false), c10::Error);
  EXPECT_THROW(bf16_linear(x, {w, torch::Tensor()}, false), c10::Error);
}

}  // namespace
}  // namespace sx::model

// libtorch's own words for a failed allocation (1.x and 2.x differ) are said as out of memory:
// one line, exit 2, the keys that size the work.
TEST(OutOfMemory, LibtorchsAllocatorFailureIsOneLine) {
  try {
    const torch::Tensor t = torch::empty({int64_t{1} << 60}, torch::kFloat);  // 4 EiB
    FAIL() << "allocated " << t.numel() << " floats";
  } catch (const std::exception& e) {
    const sx::Failure f = sx::failure_of(e);
    EXPECT_EQ(f.code, sx::kExitUserError) << e.what();
    EXPECT_EQ(f.text.rfind("out of memory (DefaultCPUAllocator", 0), 0u) << f.text;
    EXPECT_EQ(f.text.find('\n'), std::string::npos) << f.text;
  }
}

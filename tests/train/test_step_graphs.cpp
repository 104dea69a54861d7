// CUDA graphs over a step's forward and backward (train/step_graphs.h): a replayed graph
// computes what the same code computes eagerly, for every batch of its shape; dropout follows
// the seed set before each replay; and the padded-to-a-bucket batch trains as the plain one.
// The GPU cases skip without CUDA and libtorch >= 2.4; launch/gpu-check.sh runs them.
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "data/jigsaw.h"
#include "data/pairs.h"
#include "data/rank_deal.h"
#include "data/synth.h"
#include "data/text_batch.h"
#include "data/token_store.h"
#include "dist/communicator.h"
#include "dist/deadline.h"
#include "dist/mpi_env.h"
#include "model/dropout_add_norm.h"
#include "model/keras_adam.h"
#include "model/siamese_loss.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "mpi_main.h"
#include "test_util.h"
#include "train/flat_params.h"
#include "train/reducer.h"
#include "train/rows_adam.h"
#include "train/step.h"
#include "train/step_graphs.h"
#include "train/touched_rows.h"

namespace sx::train {
namespace {
// The default bucket size (train.graph_bucket_tokens), which every test but the first uses.
constexpr int64_t kBucket = StepGraphs::kDefaultBucketTokens;

// This rank (the shared MPI main sets it).
const dist::MpiEnv& g_env = test::mpi_env();

model::XlmrConfig tiny(double dropout) {
  model::XlmrConfig c = model::read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
  c.attention_probs_dropout_prob = dropout;
  c.hidden_dropout_prob = dropout;
  return c;
}

TEST(StepGraphs, AreCompiledIntoEveryCudaBuildOfLibtorch2) {
#if defined(SX_WITH_CUDA) && !defined(SX_NO_CUDA_GRAPHS)
  EXPECT_EQ(StepGraphs::compiled(), TORCH_VERSION_MAJOR >= 2);
#else
  EXPECT_FALSE(StepGraphs::compiled());
#endif
}

// A batch fills the smallest bucket that holds it: one whose token count is a multiple of the
// bucket size gets no filler (its dummy sequences have length 0), not a whole wasted bucket.
TEST(StepGraphs, ABatchFillsTheSmallestBucketThatHoldsIt) {
  for (const int64_t b : {int64_t{64}, int64_t{128}, StepGraphs::kDefaultBucketTokens}) {
    EXPECT_EQ(StepGraphs::bucket_for(1, b), b);
    EXPECT_EQ(StepGraphs::bucket_for(b - 1, b), b);
    EXPECT_EQ(StepGraphs::bucket_for(b, b), b);
    EXPECT_EQ(StepGraphs::bucket_for(b + 1, b), 2 * b);
    EXPECT_EQ(StepGraphs::bucket_for(3 * b, b), 3 * b);
    EXPECT_EQ(StepGraphs::bucket_for(0, b), b);
  }
  // A smaller bucket never wastes more padding than a larger one that divides into it.
  for (int64_t tokens = 1; tokens < 2000; tokens += 37)
    EXPECT_LE(StepGraphs::bucket_for(tokens, 128), StepGraphs::bucket_for(tokens, 256)) << tokens;
}

TEST(StepGraphs, FillerSequencesCoverTheBucketAndMayBeEmpty) {
  const int64_t b = kBucket;
  for (const int64_t max_len : {16, 64, 100, 128, 512}) {
    for (const int64_t tokens : {int64_t{1}, b - 1, b, b + 7, 2 * b}) {
      // This rank's own bucket, or a larger one another rank's share chose.
      for (const int64_t bucket : {StepGraphs::bucket_for(tokens, kBucket), 4 * b}) {
        const std::vector<int32_t> ends = StepGraphs::filler_ends(tokens, bucket, max_len);
        ASSERT_EQ(static_cast<int64_t>(ends.size()),
                  std::max<int64_t>(1, (bucket + max_len - 1) / max_len))
            << max_len;
        int64_t start = tokens;
        for (const int32_t end : ends) {  // in order, each at most max_len, none negative
          EXPECT_GE(end, start) << tokens << " " << max_len;
          EXPECT_LE(end - start, max_len) << tokens << " " << max_len;
          start = end;
        }
        EXPECT_EQ(ends.back(), bucket) << tokens << " " << max_len;  // the bucket is covered
        if (tokens == bucket) {  // an exact multiple: every dummy has length 0
          for (const int32_t end : ends) {
            EXPECT_EQ(end, tokens);
          }
        }
      }
    }
  }
}

// The bucket of a rank's micro-batch holds the largest share of its global batch: ranks with
// different token counts pick the same bucket from the same deal.
TEST(StepGraphs, EveryRankPicksTheBucketOfTheLargestShare) {
  const int64_t b = kBucket;
  HostBatch small, large;
  small.text = data::random_text_batch(2, 1, 10, 20);   // far under one bucket
  large.text = data::random_text_batch(16, 2, 60, 64);  // over three
  ASSERT_GT(large.text.tokens(), 3 * b);
  EXPECT_EQ(StepGraphs::bucket_for(small, kBucket), b);  // alone: its own bucket
  small.most_rank_tokens = large.most_rank_tokens = large.text.tokens();
  EXPECT_EQ(StepGraphs::bucket_for(small, kBucket), StepGraphs::bucket_for(large, kBucket));
  EXPECT_EQ(StepGraphs::bucket_for(large, kBucket),
            StepGraphs::bucket_for(large.text.tokens(), kBucket));
}

// Two ranks (or one): each deals the same global batches from the same pairs and picks its
// micro-batch's bucket; all ranks' buckets are equal and hold every rank's own tokens.
TEST(GlobalBucket, EveryRankReplaysTheSameBucket) {
  test::TempDir dir;
  auto synth = data::write_synthetic_jigsaw(dir.path(), 400, 5);
  auto en = data::load_labeled_csv(synth.train_csv, {"comment_text", {"toxic"}, "lang"},
                                   data::LoadOptions{});
  const size_t max_len = 64;
  data::XlmrTokenizer tok({test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", max_len,
                           Pretokenize::kWordpunct, true});
  data::PairOptions options;
  options.n_pairs = 400, options.seed = 1, options.min_chars = 10;
  const auto pairs = data::build_pairs(en, options);
  data::TokenStore store(tok, en.texts, 2);
  const int64_t per_rank = 24;
  int64_t differing = 0;
  for (const bool balance : {true, false})
    for (uint64_t step = 0; step < 6; ++step) {
      const uint64_t consumed = step * static_cast<uint64_t>(per_rank * g_env.world);
      data::DealSummary deal;
      const auto positions = data::rank_positions(pairs, consumed, g_env.rank, g_env.world,
                                                  per_rank, balance, store, max_len, &deal);
      HostBatch batch;
      batch.text = data::make_text_batch(pairs, positions, store, max_len);
      batch.most_rank_tokens = deal.most_tokens;
      const int64_t bucket = StepGraphs::bucket_for(batch, kBucket);
      // Over the ranks: the largest and the smallest bucket, the largest own token count.
      const std::vector<int64_t> most =
          dist::allreduce_max({bucket, -bucket, batch.text.tokens()}, "buckets");
      EXPECT_EQ(most[0], -most[1]) << "the ranks' buckets differ at step " << step;
      EXPECT_GE(bucket, most[2]) << step;
      EXPECT_EQ(bucket, StepGraphs::bucket_for(most[2], kBucket)) << step;
      if (StepGraphs::bucket_for(batch.text.tokens(), kBucket) != bucket) ++differing;
    }
  // With several ranks, some step's shares fall into different buckets of their own.
  if (g_env.world > 1) {
    EXPECT_GT(dist::allreduce_max({differing}, "differing buckets")[0], 0);
  }
}

double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::cosine_similarity(a.to(torch::kDouble), b.to(torch::kDouble), 0).item<double>();
}
double max_abs(const torch::Tensor& a) {
  return a.abs().max().item<double>();
}

struct Outcome {
  torch::Tensor grads;  // CPU copy of the flat gradients
  double loss = 0;
};

class StepGraphsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    if (!model::flash_varlen_available()) GTEST_SKIP() << "no variable-length flash attention";
    StepGraphs::use_own_stream(device_);
  }
  // The tiny fixture model on the GPU: bf16, flash attention over the packed layout.
  void make(double dropout) {
    model_ = model::SiameseEncoder(tiny(dropout), 1e-3);
    model::init_weights(*model_, 7);
    model_->to(device_);
    model_->set_compute({true, true});
    model_->train();
    trainee_ = Trainee{};
    trainee_.model = model_;
    trainee_.device = device_;
    // Laid out as build_trainee lays it out: q, k, v back to back, read as one view.
    trainee_.flat = std::make_unique<FlatParameters>(*model_, model_->adjacent_parameters());
    ASSERT_TRUE(StepGraphs::compiled());
  }
  HostBatch batch(uint64_t seed) const {
    return make_host_batch(data::random_text_batch(8, seed, 10, kMaxLen, 4000), device_);
  }
  Outcome graphed(StepGraphs& graphs, const HostBatch& b, uint64_t seed) {
    torch::manual_seed(seed);
    torch::Tensor loss = graphs.forward_backward(trainee_, b, 1.0);
    return {trainee_.flat->grads().to(torch::kCPU).clone(), loss.item<double>()};
  }
  // The step without graphs or buckets (as train_step runs it eagerly).
  Outcome plain(const HostBatch& b, uint64_t seed) {
    torch::manual_seed(seed);
    trainee_.flat->zero_grads();
    model::PackedIds packed = model::make_packed(b.ids.to(torch::kLong), b.text.offsets, device_);
    torch::Tensor e = model_->forward(packed);
    const int64_t n = b.text.pairs;
    torch::Tensor loss = model::dbl_loss(model::pair_distance(e.narrow(0, 0, n), e.narrow(0, n, n)),
                                         b.labels.to(device_), 1.0);
    loss.backward();
    return {trainee_.flat->grads().to(torch::kCPU).clone(), loss.item<double>()};
  }
  // Adam at learning rate 0 (the weights stay as they are: every step sees the same model),
  // and the settings of such steps.
  StepSettings frozen_steps() {
    trainee_.adam = std::make_unique<model::KerasAdam>(trainee_.flat->params(),
                                                       model::AdamOptions{0.9, 0.999, 1e-7});
    StepSettings settings;
    settings.dropout_seed = 5;
    settings.lr = 0;
    return settings;
  }
  static constexpr int64_t kMaxLen = 64;
  torch::Device device_{torch::kCUDA, 0};
  model::SiameseEncoder model_{nullptr};
  Trainee trainee_;
};

// Flash attention's backward adds into dq with atomics (summation order varies), so two runs
// of the same kernels agree to float rounding, not bit for bit.
void expect_same(const Outcome& a, const Outcome& b, const char* what) {
  EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(a.loss) + 1e-7) << what;
  EXPECT_GT(cosine(a.grads, b.grads), 0.99999) << what;
  EXPECT_LE(max_abs(a.grads - b.grads), 1e-3 * max_abs(a.grads)) << what;
}

TEST_F(StepGraphsGpu, ReplaysComputeWhatTheEagerStepComputes) {
  make(0.0);
  StepGraphs graphs(kMaxLen, data::XlmrTokenizer::kPad);
  const HostBatch first = batch(1);
  const Outcome eager = graphed(graphs, first, 5);  // first sight: the body, eagerly
  EXPECT_EQ(graphs.captured(), 0);
  const Outcome captured = graphed(graphs, first, 5);  // second: captured, then replayed
  EXPECT_EQ(graphs.captured(), 1);
  const Outcome replayed = graphed(graphs, first, 5);
  EXPECT_EQ(graphs.captured(), 1);
  expect_same(eager, captured, "capture");
  expect_same(eager, replayed, "replay");
  // Another batch of the same bucket replays the same graph with its own inputs.
  const int64_t bucket = StepGraphs::bucket_for(first.text.tokens(), kBucket);
  uint64_t seed = 2;
  while (StepGraphs::bucket_for(batch(seed).text.tokens(), kBucket) != bucket) ++seed;
  const HostBatch second = batch(seed);
  const Outcome replay2 = graphed(graphs, second, 5);
  EXPECT_EQ(graphs.captured(), 1);
  StepGraphs fresh(kMaxLen, data::XlmrTokenizer::kPad);
  expect_same(graphed(fresh, second, 5), replay2, "second batch");
  // The bucket's dummy sequences change nothing: the step without graphs agrees (bf16 GEMMs
  // over another row count may round differently: bf16 tolerance).
  const Outcome reference = plain(second, 5);
  EXPECT_NEAR(reference.loss, replay2.loss, 1e-2 * std::abs(reference.loss));
  EXPECT_GT(cosine(reference.grads, replay2.grads), 0.999);
}

// A batch whose token count is a multiple of the bucket: its dummies have length 0, and the
// replay agrees with the plain step.
TEST_F(StepGraphsGpu, ABatchThatFillsItsBucketExactlyNeedsNoFiller) {
  make(0.0);
  uint64_t seed = 1;
  while (batch(seed).text.tokens() % kBucket != 0) {
    ASSERT_LT(seed, 20000u) << "no batch of an exact multiple of the bucket";
    ++seed;
  }
  const HostBatch exact = batch(seed);
  StepGraphs graphs(kMaxLen, data::XlmrTokenizer::kPad);
  graphed(graphs, exact, 5);
  const Outcome replayed = graphed(graphs, exact, 5);
  ASSERT_EQ(graphs.captured(), 1);
  const Outcome reference = plain(exact, 5);
  EXPECT_NEAR(reference.loss, replayed.loss, 1e-2 * std::abs(reference.loss));
  EXPECT_GT(cosine(reference.grads, replayed.grads), 0.999);
}

// train.graph_bucket_tokens: 128: a batch falls in the smaller bucket (less filler), and the
// replay still agrees with the plain step.
TEST_F(StepGraphsGpu, SmallerBucketsReplayWhatThePlainStepComputes) {
  make(0.0);
  uint64_t seed = 1;  // a batch whose 128-token bucket is smaller than its 256-token one
  while (StepGraphs::bucket_for(batch(seed).text.tokens(), 128) ==
         StepGraphs::bucket_for(batch(seed).text.tokens(), 256)) {
    ASSERT_LT(seed, 20000u) << "no batch with a smaller 128-token bucket";
    ++seed;
  }
  const HostBatch b = batch(seed);
  StepGraphs graphs(kMaxLen, data::XlmrTokenizer::kPad, false, 128);
  graphed(graphs, b, 5);
  const Outcome replayed = graphed(graphs, b, 5);
  ASSERT_EQ(graphs.captured(), 1);
  const Outcome reference = plain(b, 5);
  EXPECT_NEAR(reference.loss, replayed.loss, 1e-2 * std::abs(reference.loss));
  EXPECT_GT(cosine(reference.grads, replayed.grads), 0.999);
}

// Gradient accumulation through graphs: the first micro-batch's graph zeroes the gradients,
// the next accumulates, each scaled by 1/A; the sum equals the eager accumulation.
TEST_F(StepGraphsGpu, AccumulatedMicroBatchesEqualTheEagerAccumulation) {
  make(0.0);
  StepGraphs graphs(kMaxLen, data::XlmrTokenizer::kPad);
  const HostBatch first = batch(1), second = batch(2);
  auto both = [&](StepGraphs& g) {
    torch::manual_seed(5);
    const double a = g.forward_backward(trainee_, first, 1.0, {0, 2}).item<double>();
    torch::manual_seed(6);
    const double b = g.forward_backward(trainee_, second, 1.0, {1, 2}).item<double>();
    return Outcome{trainee_.flat->grads().to(torch::kCPU).clone(), a + b};
  };
  both(graphs);  // eager first sight
  const Outcome captured = both(graphs);
  EXPECT_EQ(graphs.captured(), 2);  // one graph per kind of micro-batch
  const Outcome replayed = both(graphs);
  expect_same(captured, replayed, "replay");
  const Outcome p1 = plain(first, 5), p2 = plain(second, 6);
  EXPECT_NEAR(replayed.loss, (p1.loss + p2.loss) / 2, 1e-2 * std::abs(replayed.loss));
  EXPECT_GT(cosine((p1.grads + p2.grads) / 2, replayed.grads), 0.999);
}

TEST_F(StepGraphsGpu, DropoutFollowsTheSeedSetBeforeEachReplay) {
  make(0.1);
  StepGraphs graphs(kMaxLen, data::XlmrTokenizer::kPad);
  const HostBatch b = batch(3);
  graphed(graphs, b, 11);
  const Outcome a = graphed(graphs, b, 11);  // captured and replayed
  ASSERT_EQ(graphs.captured(), 1);
  const Outcome again = graphed(graphs, b, 11);
  const Outcome other = graphed(graphs, b, 12);
  expect_same(a, again, "same seed");
  EXPECT_GT(max_abs(a.grads - other.grads), 100 * max_abs(a.grads - again.grads) + 1e-6);
}

// train.touched_rows_only under graphs: the captured zeroing is the dense part only, the rows
// the last step wrote (its ids and the pad row of the dummies) are zeroed eagerly before each
// replay. Over the first sight, the capture and replays of two batches of one bucket (whose
// rows differ, so a row left unzeroed would show), the steps equal those without the option to
// flash attention's rounding, and every row outside the record holds zero gradient.
TEST_F(StepGraphsGpu, TouchedRowsOnlyZeroesTheLastStepsRowsBeforeEachReplay) {
  make(0.0);
  StepSettings settings = frozen_steps();
  const HostBatch first = batch(1);
  const int64_t bucket = StepGraphs::bucket_for(first.text.tokens(), kBucket);
  uint64_t seed = 2;
  while (StepGraphs::bucket_for(batch(seed).text.tokens(), kBucket) != bucket) ++seed;
  const HostBatch second = batch(seed);
  auto run = [&](bool rows_only) {
    trainee_.touched_rows =
        rows_only ? TouchedRows::find(*trainee_.flat, ReducerOptions{}.sparse_rows_param) : nullptr;
    EXPECT_EQ(trainee_.touched_rows != nullptr, rows_only);
    trainee_.graphs = std::make_unique<StepGraphs>(kMaxLen, data::XlmrTokenizer::kPad);
    std::vector<Outcome> out;
    for (const HostBatch* b : {&first, &first, &second, &first, &second}) {
      ++settings.step;
      const StepResult r = train_step(trainee_, {*b}, settings, nullptr);
      EXPECT_TRUE(r.applied);
      out.push_back({trainee_.flat->grads().to(torch::kCPU).clone(), r.loss});
      if (!rows_only) continue;
      const TouchedRows& rows = *trainee_.touched_rows;
      EXPECT_TRUE(rows.recorded().defined());
      torch::Tensor row_sums = rows.block().abs().sum(1);
      EXPECT_EQ(row_sums.index_fill_(0, rows.recorded(), 0).count_nonzero().item<int64_t>(), 0)
          << "gradient outside the recorded rows at step " << settings.step;
    }
    EXPECT_EQ(trainee_.graphs->captured(), 1);
    return out;
  };
  const std::vector<Outcome> off = run(false), on = run(true);
  for (size_t i = 0; i < off.size(); ++i) expect_same(off[i], on[i], "touched rows only");
  trainee_.touched_rows.reset();
  trainee_.graphs.reset();
}

// train.embedding_adam_overlap under graphs, on a real side stream (train/rows_adam.h): each step
// is told the next one's batch, so the embedding rows it does not look up are updated on the
// side stream, joined before the next replay (autograd's dense embedding gradient) or only after
// it (late_join, as with one replica and model.fused_kernels). Over the first sight, the capture
// and replays of two batches of one bucket, Adam's moments follow the plain update's to the
// rounding of the rows' kernel against torch's fused Adam and of flash attention (a row updated
// twice, skipped, or read before its zeroing would be off by a tenth of its moment at least), and
// the parameters to within the steps' learning rate.
TEST_F(StepGraphsGpu, TheEmbeddingAdamOverlapFollowsThePlainUpdate) {
  constexpr double kLr = 1e-5;
  const HostBatch first = batch(1);
  const int64_t bucket = StepGraphs::bucket_for(first.text.tokens(), kBucket);
  uint64_t seed = 2;
  while (StepGraphs::bucket_for(batch(seed).text.tokens(), kBucket) != bucket) ++seed;
  const std::vector<std::vector<HostBatch>> steps{
      {first}, {first}, {batch(seed)}, {first}, {batch(seed)}};
  // The word-embedding block (the rows the overlap updates) of the flat parameters, Adam's m
  // and v, and of the parameters before the first step.
  struct State {
    torch::Tensor params, m, v, start;
    torch::Tensor all_params;  // the whole flat buffer, dense parameters included
  };
  // late_join: the model adds the embeddings' gradient into the rows it looks up (the fused
  // kernels with direct gradients, as with one replica), so the join may wait until after the
  // replay; the plain run it is compared with computes alike.
  auto run = [&](bool overlap, bool late_join) {
    make(0.0);
    if (late_join) {
      model::ComputeOptions compute = model_->compute();
      compute.fused_kernels = compute.direct_weight_grads = true;
      model_->set_compute(compute);
    }
    StepSettings settings = frozen_steps();
    settings.lr = kLr;
    trainee_.touched_rows = TouchedRows::find(*trainee_.flat, ReducerOptions{}.sparse_rows_param);
    if (!trainee_.touched_rows) {
      ADD_FAILURE() << "no " << ReducerOptions{}.sparse_rows_param << " in the flat parameters";
      return State{};
    }
    const int64_t offset = trainee_.touched_rows->offset();
    const int64_t numel = trainee_.touched_rows->rows() * trainee_.touched_rows->width();
    auto block = [&](const torch::Tensor& flat) {
      return flat.narrow(0, offset, numel).to(torch::kCPU).clone();
    };
    const torch::Tensor start = block(trainee_.flat->params());
    if (overlap)
      trainee_.rows_adam = std::make_unique<RowsAdamOverlap>(*trainee_.flat, *trainee_.touched_rows,
                                                             *trainee_.adam, late_join);
    trainee_.graphs = std::make_unique<StepGraphs>(kMaxLen, data::XlmrTokenizer::kPad);
    for (size_t i = 0; i < steps.size(); ++i) {
      ++settings.step;
      settings.next_batches = [&steps, i] {
        return i + 1 < steps.size() ? &steps[i + 1] : nullptr;
      };
      EXPECT_TRUE(train_step(trainee_, steps[i], settings, nullptr).applied);
      if (overlap) {
        EXPECT_EQ(trainee_.rows_adam->pending(), i + 1 < steps.size());
      }
    }
    if (trainee_.rows_adam) trainee_.rows_adam->join();
    State out{block(trainee_.flat->params()), block(trainee_.adam->m()), block(trainee_.adam->v()),
              start, trainee_.flat->params().to(torch::kCPU).clone()};
    trainee_.rows_adam.reset();
    trainee_.touched_rows.reset();
    trainee_.graphs.reset();
    return out;
  };
  for (bool late_join : {false, true}) {
    if (late_join && !model::fused_kernels_compiled()) continue;
    const State plain = run(false, late_join), on = run(true, late_join);
    ASSERT_TRUE(plain.params.defined() && on.params.defined());
    // The word-embedding block alone, each against that block's own maximum (the whole buffer's
    // is LayerNorm's, far larger). The overlap's row kernel rounds bitwise as the CPU loop; the
    // plain step's fused Adam (torch) may contract multiply-adds differently, so the two agree
    // to a few ulp: 1e-5 of the block's maximum. A row updated twice or skipped is off by about
    // its own m and v, and its parameters by about kLr (Adam's first steps move each touched
    // parameter by about the learning rate), 10x the bound with weights of std 0.02 (max ~0.1).
    EXPECT_GT(max_abs(plain.params - plain.start), 0.5 * kLr) << "the embeddings did not move";
    EXPECT_LE(max_abs(on.m - plain.m), 1e-5 * max_abs(plain.m)) << "late_join " << late_join;
    EXPECT_LE(max_abs(on.v - plain.v), 1e-5 * max_abs(plain.v)) << "late_join " << late_join;
    EXPECT_LE(max_abs(on.params - plain.params), 1e-5 * max_abs(plain.params))
        << "late_join " << late_join;
    // The rest goes through torch's fused Adam in both runs: a loose bound (a step's gradients
    // may differ by rounding, which Adam's normalized update turns into up to kLr a step), so
    // that only garbage (NaN, a wrong block) shows.
    EXPECT_LE(max_abs(on.all_params - plain.all_params),
              2.5 * kLr * static_cast<double>(steps.size()))
        << "late_join " << late_join;
  }
}

// What several ranks run, on one GPU: train_step with a reducer (one rank over NCCL) behind the
// graphs. The eager first sight of a bucket and its capture run the hooks while no step has
// begun, and a replay runs none; the reducer begins after the replay and finish_step launches
// every bucket. One rank's average is its own gradient: the steps without a reducer agree, and
// the eager step, whose hooks launch the buckets during backward, agrees to bf16 tolerance.
TEST_F(StepGraphsGpu, WithAReducerEveryBucketIsReducedAfterTheReplay) {
  make(0.0);
  auto comm = dist::make_communicator(Backend::kNccl, device_, g_env);
  // Owned by the trainee while a step uses them, else here.
  auto spare_reducer =
      std::make_unique<GradientReducer>(*trainee_.flat, *comm, g_env, ReducerOptions{});
  auto spare_graphs = std::make_unique<StepGraphs>(kMaxLen, data::XlmrTokenizer::kPad);
  GradientReducer& reducer = *spare_reducer;
  StepGraphs& graphs = *spare_graphs;
  StepSettings settings = frozen_steps();
  const std::vector<HostBatch> b{batch(1)};
  auto step = [&](bool with_graphs, bool with_reducer) {
    if (with_graphs != (trainee_.graphs != nullptr)) std::swap(trainee_.graphs, spare_graphs);
    if (with_reducer != (trainee_.reducer != nullptr)) std::swap(trainee_.reducer, spare_reducer);
    ++settings.step;
    const StepResult r = train_step(trainee_, b, settings, nullptr);
    EXPECT_TRUE(r.applied);
    return Outcome{trainee_.flat->grads().to(torch::kCPU).clone(), r.loss};
  };
  std::vector<Outcome> graphed;
  for (int i = 0; i < 3; ++i) {  // eager first sight, capture, replay
    graphed.push_back(step(true, true));
    EXPECT_EQ(reducer.stats().launched_in_backward, 0) << i;
    EXPECT_GT(reducer.stats().sparse_rows, 0) << i;
  }
  EXPECT_EQ(graphs.captured(), 1);
  const Outcome alone = step(true, false);  // the same graph, no reducer
  for (int i = 0; i < 3; ++i) expect_same(alone, graphed[static_cast<size_t>(i)], "graph");
  const Outcome eager = step(false, true);
  EXPECT_EQ(reducer.stats().launched_in_backward, reducer.stats().buckets);
  EXPECT_NEAR(eager.loss, alone.loss, 1e-2 * std::abs(alone.loss));
  EXPECT_GT(cosine(eager.grads, alone.grads), 0.999);
}

// train.graph_allreduce: inside, on one rank over NCCL: the capture arms the reducer's hooks,
// which launch the dense buckets on the communication stream (forked from the capture and
// joined back), so the replay all-reduces them inside the graph and finish_step reduces only
// the word-embedding rows and the slots. The step equals the eager, overlapped step within
// bf16 tolerance, on the fp32 and the bf16 wire (whose scratch lives in the graphs' pool).
TEST_F(StepGraphsGpu, AllReduceInsideTheGraphEqualsTheEagerStep) {
  make(0.0);
  auto comm = dist::make_communicator(Backend::kNccl, device_, g_env);
  StepSettings settings = frozen_steps();
  const std::vector<HostBatch> b{batch(1)};
  for (const WireType wire : {WireType::kFloat32, WireType::kBFloat16}) {
    ReducerOptions options;
    options.wire = wire;
    trainee_.reducer = std::make_unique<GradientReducer>(*trainee_.flat, *comm, g_env, options);
    GradientReducer& reducer = *trainee_.reducer;
    auto step = [&] {
      ++settings.step;
      const StepResult r = train_step(trainee_, b, settings, nullptr);
      EXPECT_TRUE(r.applied);
      return Outcome{trainee_.flat->grads().to(torch::kCPU).clone(), r.loss};
    };
    trainee_.graphs = std::make_unique<StepGraphs>(kMaxLen, data::XlmrTokenizer::kPad, true);
    std::vector<Outcome> graphed;
    for (int i = 0; i < 3; ++i) {  // eager first sight, capture, replay
      graphed.push_back(step());
      const bool inside = i > 0;
      EXPECT_EQ(trainee_.graphs->reduced_in_graph(), inside) << i;
      // Inside: every bucket but the word embeddings' ran in the graph, during its backward.
      EXPECT_EQ(reducer.stats().launched_in_backward, inside ? reducer.stats().buckets - 1 : 0)
          << i;
      EXPECT_GT(reducer.stats().sparse_rows, 0) << i;
    }
    EXPECT_EQ(trainee_.graphs->captured(), 1);
    trainee_.graphs.reset();
    const Outcome eager = step();  // no graphs: the hooks launch every bucket in backward
    EXPECT_EQ(reducer.stats().launched_in_backward, reducer.stats().buckets);
    const char* what = wire == WireType::kFloat32 ? "fp32 wire" : "bf16 wire";
    for (size_t i = 1; i < graphed.size(); ++i) {
      // The same kernels as the first sight's (fp32: to rounding; bf16 rounds the wire).
      if (wire == WireType::kFloat32) expect_same(graphed[0], graphed[i], what);
      EXPECT_GT(cosine(graphed[0].grads, graphed[i].grads), 0.9999) << what;
      EXPECT_NEAR(eager.loss, graphed[i].loss, 1e-2 * std::abs(eager.loss)) << what;
      EXPECT_GT(cosine(eager.grads, graphed[i].grads), 0.999) << what;
    }
    trainee_.reducer.reset();
  }
}

}  // namespace
}  // namespace sx::train

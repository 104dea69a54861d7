// The gradient reducer (train/reducer.h) on its own. Under `mpirun -np 2` (CTest
// train.reducer_mpi, label "mpi"): the averaged gradient equals the dense average of every
// rank's gradient, sparse embedding rows included; buckets are launched from the autograd
// hooks while backward runs; unused parameters do not block; bf16 on the wire stays within
// bf16 rounding and leaves the replicas identical; begun after backward (CUDA graphs), it
// launches every bucket at finish_step with the same result. On one GPU (train.reducer_gpu, label
// "gpu"; skipped without CUDA): the overlapped NCCL reduction equals the plain gradient; and
// with 2 ranks sharing that GPU through real NCCL (train.reducer_nccl_one_gpu), the same
// average over ranks as on the CPU, different touched rows per rank, both wires.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>
#include <set>
#include <string>

#include "dist/communicator.h"
#include "dist/deadline.h"
#include "dist/mpi_env.h"
#include "model/xlmr.h"
#include "mpi_main.h"
#include "train/flat_params.h"
#include "train/reducer.h"

namespace sx::train {
namespace {

// This rank (the shared MPI main sets it).
const dist::MpiEnv& g_env = test::mpi_env();

model::XlmrConfig tiny_config() {
  model::XlmrConfig c;
  c.vocab_size = 50, c.hidden_size = 8, c.num_hidden_layers = 2, c.num_attention_heads = 2;
  c.intermediate_size = 16, c.max_position_embeddings = 20;
  return c;
}

// Rank q's batch: 2 texts of 6 tokens from [2, 30) (so some vocabulary rows stay untouched
// everywhere), the second one padded.
std::vector<int32_t> batch_ids(int q) {
  std::mt19937 rng(static_cast<unsigned>(100 + q));
  std::uniform_int_distribution<int32_t> id(2, 29);
  std::vector<int32_t> ids(12);
  for (auto& v : ids) v = id(rng);
  ids[10] = ids[11] = 1;  // padding
  return ids;
}

struct Replica {
  model::SiameseEncoder model{nullptr};
  std::unique_ptr<FlatParameters> flat;
  torch::Tensor weights;  // the loss is sum(embedding * weights)
  torch::Device device;

  explicit Replica(torch::Device d) : device(d) {
    model = model::SiameseEncoder(tiny_config());
    model::init_weights(*model, 3);
    model->to(device);
    model->eval();  // no dropout: the same batch gives the same gradient every time
    flat = std::make_unique<FlatParameters>(*model);
    weights = torch::randn({2, 8}, torch::TensorOptions().dtype(torch::kFloat)).to(device);
  }
  void backward(const std::vector<int32_t>& ids) {
    torch::Tensor t = torch::tensor(ids, torch::kInt).view({2, 6}).to(torch::kLong).to(device);
    (model->forward(t) * weights).sum().backward();
  }
  // The plain average over ranks, computed here from every rank's batch (no communication).
  torch::Tensor dense_average(int world, torch::Tensor* abs_sum = nullptr) {
    torch::Tensor sum = torch::zeros_like(flat->grads()), abs = torch::zeros_like(sum);
    for (int q = 0; q < world; ++q) {
      flat->zero_grads();
      backward(batch_ids(q));
      sum += flat->grads();
      abs += flat->grads().abs();
    }
    if (abs_sum) *abs_sum = abs;
    return sum / world;
  }
};

ReducerOptions tiny_buckets(dist::WireType wire) {
  ReducerOptions o;
  o.bucket_mb = 2e-4;  // ~50 floats: many buckets
  o.wire = wire;
  return o;
}

int64_t union_size(int world) {
  std::set<int32_t> rows;
  for (int q = 0; q < world; ++q)
    for (int32_t id : batch_ids(q)) rows.insert(id);
  return static_cast<int64_t>(rows.size());
}

// The wire, and where the replicas run: the CPU over MPI, or one GPU shared by every rank over
// NCCL (train.reducer_nccl_one_gpu: each rank its own NCCL_HOSTID, launch/nccl-one-gpu.sh).
struct WireOn {
  dist::WireType wire;
  bool gpu;
};

class Reducer : public ::testing::TestWithParam<WireOn> {};

TEST_P(Reducer, AveragesLikeTheDenseGradientWithSparseRowsAndOverlapsBackward) {
  const auto [wire, gpu] = GetParam();
  if (gpu && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device device = gpu ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  // On a GPU the embedding's backward adds with atomics: a rank's gradient computed twice
  // agrees to float rounding, not bit for bit (1e-6 of these gradients' scale, ~1).
  const double noise = gpu ? 1e-6 : 1e-12;
  torch::manual_seed(1);  // same weights on every rank
  Replica r(device);
  auto comm = dist::make_communicator(gpu ? Backend::kNccl : Backend::kMpi, device, g_env);
  GradientReducer reducer(*r.flat, *comm, g_env, tiny_buckets(wire));
  torch::Tensor abs_sum;
  const torch::Tensor expected = r.dense_average(g_env.world, &abs_sum);  // hooks idle here

  const std::vector<int32_t> ids = batch_ids(g_env.rank);
  r.flat->zero_grads();
  reducer.begin_step(1, {ids});
  r.backward(ids);
  const ReducerStats during = reducer.stats();
  r.flat->slot(StepSlot::kLoss).fill_(1.0 + g_env.rank);
  r.flat->slot(StepSlot::kTokens).fill_(10.0 * (g_env.rank + 1));
  reducer.finish_step();
  const ReducerStats& stats = reducer.stats();

  // Every bucket was launched by a hook during backward, the first while gradients of
  // earlier layers were still to come.
  EXPECT_GT(stats.buckets, 5);
  EXPECT_EQ(during.launched_in_backward, stats.buckets);
  EXPECT_GT(during.pending_at_first_launch, 0);
  // Only the union of the touched rows crossed the wire.
  EXPECT_EQ(stats.sparse_rows, union_size(g_env.world));
  const torch::Tensor got = r.flat->grads();
  if (wire == dist::WireType::kFloat32) {
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-6 + noise);
  } else {
    // bf16 keeps 8 significant bits: each rounding is off by at most 2^-8 of its value. Both
    // inputs and their sum are rounded: at most ~2 x 2^-8 x sum|g|, bounded here by 3 x.
    torch::Tensor excess = (got - expected).abs() - abs_sum * (3.0 / 256 / g_env.world);
    EXPECT_LE(excess.max().item<double>(), noise);
    // And it really was bf16: the sum (average x world) is a bf16 number.
    torch::Tensor sum = got * g_env.world;
    EXPECT_TRUE(torch::equal(sum, sum.to(torch::kBFloat16).to(torch::kFloat)));
  }
  // Rows no rank touched stay zero.
  const auto& e = r.flat->entries();
  for (const auto& entry : e)
    if (entry.name == "embeddings.word_embeddings.weight") {
      torch::Tensor rows = got.narrow(0, entry.offset, entry.numel).view(entry.shape);
      EXPECT_EQ(rows.narrow(0, 30, 20).abs().sum().item<double>(), 0);
      EXPECT_GT(rows.narrow(0, 2, 28).abs().sum().item<double>(), 0);
    }
  // The slots: the mean loss, the mean token count.
  const double mean_rank = (g_env.world - 1) / 2.0;
  EXPECT_DOUBLE_EQ(r.flat->slot(StepSlot::kLoss).item<double>(), 1.0 + mean_rank);
  EXPECT_DOUBLE_EQ(global_tokens(r.flat->slot(StepSlot::kTokens).item<double>(), g_env.world),
                   10.0 * g_env.world * (1 + mean_rank));
  // Replicas stay identical: rank 0's result everywhere.
  torch::Tensor theirs = got.clone();
  comm->broadcast(theirs, 0);
  EXPECT_TRUE(torch::equal(theirs, got));
}

std::string wire_name(const ::testing::TestParamInfo<WireOn>& info) {
  return info.param.wire == dist::WireType::kFloat32 ? "fp32" : "bf16";
}
INSTANTIATE_TEST_SUITE_P(Cpu, Reducer,
                         ::testing::Values(WireOn{dist::WireType::kFloat32, false},
                                           WireOn{dist::WireType::kBFloat16, false}),
                         wire_name);
INSTANTIATE_TEST_SUITE_P(Nccl, Reducer,
                         ::testing::Values(WireOn{dist::WireType::kFloat32, true},
                                           WireOn{dist::WireType::kBFloat16, true}),
                         wire_name);

// Two layers, the second used only on rank 0: its bucket cannot complete during backward on
// the other ranks, and finish_step must still finish it there (its gradient being zero).
struct TwoLayers : torch::nn::Module {
  torch::nn::Linear a{nullptr}, b{nullptr};
  TwoLayers() {
    a = register_module("a", torch::nn::Linear(4, 4));
    b = register_module("b", torch::nn::Linear(4, 4));
  }
};

TEST(ReducerUnused, UnusedParametersDoNotBlockAndAverageWithZero) {
  torch::manual_seed(2);
  auto m = std::make_shared<TwoLayers>();
  FlatParameters flat(*m);
  auto comm = dist::make_communicator(Backend::kMpi, torch::kCPU, g_env);
  GradientReducer reducer(flat, *comm, g_env, tiny_buckets(dist::WireType::kFloat32));
  torch::Tensor x = torch::ones({1, 4});
  flat.zero_grads();
  reducer.begin_step(1, {});
  torch::Tensor y = m->a->forward(x);
  if (g_env.rank == 0) y = m->b->forward(y);
  y.sum().backward();
  reducer.finish_step();
  // b's bias gradient is 1 on rank 0 and 0 (unused) elsewhere: the average is 1/world.
  torch::Tensor b_bias = m->b->bias.grad();
  EXPECT_TRUE(torch::allclose(b_bias, torch::full({4}, 1.0 / g_env.world)));
  EXPECT_EQ(reducer.stats().sparse_rows, -1);  // no embedding here: all dense
}

// A replica on the CPU with its reducer over MPI, the plain average of every rank's gradient,
// and this rank's batch.
torch::Device seeded_cpu() {
  torch::manual_seed(1);  // the same weights on every rank
  return torch::kCPU;
}
struct CpuStep {
  CpuStep()
      : r(seeded_cpu()),
        comm(dist::make_communicator(Backend::kMpi, torch::kCPU, g_env)),
        reducer(*r.flat, *comm, g_env, tiny_buckets(dist::WireType::kFloat32)),
        expected(r.dense_average(g_env.world)),
        ids(batch_ids(g_env.rank)) {}
  Replica r;
  std::unique_ptr<dist::Communicator> comm;
  GradientReducer reducer;
  torch::Tensor expected;
  std::vector<int32_t> ids;
};

// CUDA graphs replay backward without running autograd's hooks, so with several ranks the step
// begins the reducer after backward: finish_step then launches every bucket, and the average is
// the same as when the hooks launch them during backward.
TEST(ReducerAfterBackward, LaunchesEveryBucketAtFinishWithTheSameAverage) {
  CpuStep c;
  c.r.flat->zero_grads();
  c.r.backward(c.ids);  // the hooks fire, idle: no step has begun
  c.reducer.begin_step(1, {c.ids});
  EXPECT_EQ(c.reducer.stats().launched_in_backward, 0);
  c.reducer.finish_step();
  EXPECT_GT(c.reducer.stats().buckets, 5);
  EXPECT_EQ(c.reducer.stats().launched_in_backward, 0);
  EXPECT_EQ(c.reducer.stats().sparse_rows, union_size(g_env.world));
  EXPECT_LT((c.r.flat->grads() - c.expected).abs().max().item<double>(), 1e-6);
}

// train.graph_allreduce: inside, its bookkeeping on the CPU (no graph here: what a capture
// records, run eagerly over MPI): between begin_capture and end_capture the hooks launch the
// dense buckets as backward finishes them, never the word embeddings'; begin_step with
// dense_in_graph then leaves the dense ones alone, and finish_step reduces the touched rows and
// the slots and waits for all. The average is the plain one; the next ordinary step is too.
TEST(ReducerAroundCapture, DenseBucketsInTheCaptureTouchedRowsAfter) {
  CpuStep c;
  c.r.flat->zero_grads();
  c.reducer.begin_capture();
  c.r.backward(c.ids);
  c.reducer.end_capture();
  c.reducer.begin_step(1, {c.ids}, /*dense_in_graph=*/true);
  c.reducer.finish_step();
  const ReducerStats& stats = c.reducer.stats();
  EXPECT_GT(stats.buckets, 5);
  EXPECT_EQ(stats.launched_in_backward, stats.buckets - 1);  // all but the embeddings'
  EXPECT_EQ(stats.sparse_rows, union_size(g_env.world));
  EXPECT_LT((c.r.flat->grads() - c.expected).abs().max().item<double>(), 1e-6);
  c.r.flat->zero_grads();
  c.reducer.begin_step(2, {c.ids});
  c.r.backward(c.ids);
  c.reducer.finish_step();
  EXPECT_EQ(c.reducer.stats().launched_in_backward, c.reducer.stats().buckets);
  EXPECT_LT((c.r.flat->grads() - c.expected).abs().max().item<double>(), 1e-6);
}

TEST(ReducerGpu, OverlappedNcclEqualsThePlainGradient) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (g_env.world != 1) GTEST_SKIP() << "one rank only";
  for (auto wire : {dist::WireType::kFloat32, dist::WireType::kBFloat16}) {
    torch::manual_seed(1);
    Replica r(torch::kCUDA);
    auto comm = dist::make_communicator(Backend::kNccl, torch::kCUDA, g_env);
    GradientReducer reducer(*r.flat, *comm, g_env, tiny_buckets(wire));
    const torch::Tensor plain = r.dense_average(1).cpu();
    const std::vector<int32_t> ids = batch_ids(0);
    r.flat->zero_grads();
    reducer.begin_step(1, {ids});
    r.backward(ids);
    const ReducerStats during = reducer.stats();
    r.flat->slot(StepSlot::kLoss).fill_(0.25);
    reducer.finish_step();
    EXPECT_EQ(during.launched_in_backward, reducer.stats().buckets);
    EXPECT_EQ(reducer.stats().sparse_rows, union_size(1));
    const torch::Tensor got = r.flat->grads().cpu();
    if (wire == dist::WireType::kFloat32)
      EXPECT_LT((got - plain).abs().max().item<double>(), 1e-6);
    else  // the average of one rank in bf16 is the gradient rounded to bf16
      EXPECT_TRUE(torch::equal(got, plain.to(torch::kBFloat16).to(torch::kFloat)));
    EXPECT_EQ(r.flat->slot(StepSlot::kLoss).item<float>(), 0.25f);
  }
}

}  // namespace
}  // namespace sx::train

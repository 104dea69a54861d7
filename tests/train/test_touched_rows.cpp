// train.touched_rows_only (train/touched_rows.h): zeroing and the finiteness check over the
// dense gradients and the word-embedding rows the last step wrote give bitwise the results of
// the whole buffer: losses, gradients, parameters and Adam's moments, with and without gradient
// accumulation, on one rank (CTest train.touched_rows, label "unit") and on two whose batches
// touch different rows (train.touched_rows_mpi, label "mpi"); a NaN put into one row's gradient
// skips the step as it does without the option, and the next steps still agree; every row
// outside the record holds zero gradient after each step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/config.h"
#include "data/text_batch.h"
#include "dist/mpi_env.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "mpi_main.h"
#include "test_util.h"
#include "train/replica.h"
#include "train/step.h"
#include "train/touched_rows.h"

namespace sx::train {
namespace {

const dist::MpiEnv& g_env = test::mpi_env();

constexpr int64_t kSteps = 4;
constexpr int32_t kVocabEnd = 4000;  // the fixture's 4002 rows; a few dozen touched per batch

// The tiny fixture model with dropout (the step's seeds must match too), trained as `train`
// trains it: build_trainee and connect_trainee (a reducer over MPI with several ranks).
Trainee make_trainee(bool touched_rows_only) {
  Config config = default_config();
  config.model.device = DeviceChoice::kCpu;
  config.train.touched_rows_only = touched_rows_only;
  model::XlmrConfig c = model::read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1;
  model::SiameseEncoder encoder(c);
  model::init_weights(*encoder, 7);
  Trainee t = build_trainee(config, g_env, encoder);
  connect_trainee(t, config, g_env);
  EXPECT_EQ(t.touched_rows != nullptr, touched_rows_only);
  return t;
}

// This rank's micro-batches of step `step`: every rank and step its own ids.
std::vector<HostBatch> batches(int64_t step, int64_t accumulation) {
  std::vector<HostBatch> out;
  for (int64_t a = 0; a < accumulation; ++a) {
    const uint64_t seed = static_cast<uint64_t>(1000 * g_env.rank + 10 * step + a);
    out.push_back(make_host_batch(data::random_text_batch(3, seed, 3, 10, kVocabEnd), torch::kCPU));
  }
  return out;
}

// What a run leaves behind after each step.
struct Trace {
  std::vector<double> losses;
  std::vector<bool> applied;
  std::vector<torch::Tensor> grads;  // after each step (the averaged gradients)
  torch::Tensor params, m, v;
  int64_t iterations = 0;
};

// Every word-embedding row outside the record holds zero gradient.
void expect_zero_outside_record(const TouchedRows& rows, int64_t step) {
  if (!rows.recorded().defined()) return;  // every row recorded
  torch::Tensor outside = torch::ones({rows.rows()}, torch::kBool);
  outside.index_fill_(0, rows.recorded(), false);
  const torch::Tensor rest = rows.block().index({outside});
  EXPECT_GT(rest.size(0), 0) << step;
  EXPECT_TRUE(torch::equal(rest, torch::zeros_like(rest))) << "step " << step;
}

// kSteps steps; `poison` (a step, or 0) puts a NaN into row `poison_row` of the word
// embeddings' gradient on rank 0 during that step's backward.
Trace run(bool touched_rows_only, int64_t accumulation, int64_t poison = 0,
          int32_t poison_row = 0) {
  Trainee t = make_trainee(touched_rows_only);
  int64_t step = 0;
  torch::Tensor words;
  for (size_t i = 0; i < t.flat->entries().size(); ++i)
    if (t.flat->entries()[i].name == "embeddings.word_embeddings.weight")
      words = t.flat->parameters()[i];
  words.register_hook([&](torch::Tensor g) {
    if (step != poison || g_env.rank != 0) return g;
    g = g.clone();
    g[poison_row].fill_(std::nanf(""));
    return g;
  });
  Trace trace;
  for (step = 1; step <= kSteps; ++step) {
    StepSettings settings;
    settings.step = step;
    settings.dropout_seed = static_cast<uint64_t>(50 + step);
    settings.lr = 1e-3;
    const StepResult r = train_step(t, batches(step, accumulation), settings);
    trace.losses.push_back(r.loss);
    trace.applied.push_back(r.applied);
    trace.grads.push_back(t.flat->grads().clone());
    if (t.touched_rows) expect_zero_outside_record(*t.touched_rows, step);
  }
  trace.params = t.flat->params().clone();
  trace.m = t.adam->m().clone();
  trace.v = t.adam->v().clone();
  trace.iterations = t.adam->iterations();
  return trace;
}

// Bitwise: NaN where the other has NaN (a skipped step's gradients) counts as equal.
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

void expect_bitwise_equal(const Trace& on, const Trace& off) {
  ASSERT_EQ(on.losses.size(), off.losses.size());
  for (size_t i = 0; i < on.losses.size(); ++i) {
    EXPECT_TRUE(same_bits(torch::tensor(on.losses[i]), torch::tensor(off.losses[i])))
        << "loss of step " << i + 1 << ": " << on.losses[i] << " vs " << off.losses[i];
    EXPECT_EQ(on.applied[i], off.applied[i]) << "step " << i + 1;
    EXPECT_TRUE(same_bits(on.grads[i], off.grads[i])) << "gradients of step " << i + 1;
  }
  EXPECT_TRUE(torch::equal(on.params, off.params));
  EXPECT_TRUE(torch::equal(on.m, off.m));
  EXPECT_TRUE(torch::equal(on.v, off.v));
  EXPECT_EQ(on.iterations, off.iterations);
}

class TouchedRowsStep : public ::testing::TestWithParam<int64_t> {};

TEST_P(TouchedRowsStep, EqualsZeroingAndCheckingTheWholeBufferBitwise) {
  const int64_t accumulation = GetParam();
  const Trace off = run(false, accumulation);
  const Trace on = run(true, accumulation);
  for (bool applied : on.applied) EXPECT_TRUE(applied);
  expect_bitwise_equal(on, off);
}

INSTANTIATE_TEST_SUITE_P(Accumulation, TouchedRowsStep, ::testing::Values(1, 2));

// A row that step 2 touches (on rank 0) and step 3 touches on no rank: left as NaN by the
// skipped step 2, only the recorded rows' zeroing can clear it before step 3.
int32_t row_of_step_2_only() {
  const auto ids_of = [](int64_t step, int rank) {
    std::vector<bool> in(kVocabEnd + 2, false);
    const uint64_t seed = static_cast<uint64_t>(1000 * rank + 10 * step);
    for (int32_t id : data::random_text_batch(3, seed, 3, 10, kVocabEnd).ids) in[id] = true;
    return in;
  };
  const std::vector<bool> two = ids_of(2, 0);
  std::vector<bool> three(kVocabEnd + 2, false);
  for (int q = 0; q < g_env.world; ++q) {
    const std::vector<bool> q3 = ids_of(3, q);
    for (size_t i = 0; i < q3.size(); ++i) three[i] = three[i] || q3[i];
  }
  for (int32_t id = 5; id < kVocabEnd; ++id)
    if (two[id] && !three[id]) return id;
  ADD_FAILURE() << "no row of step 2 that step 3 leaves alone";
  return 0;
}

TEST(TouchedRowsNonFinite, ANanInOneRowSkipsTheStepAsWithoutTheOptionAndIsZeroedAfter) {
  const int32_t row = row_of_step_2_only();
  const Trace off = run(false, 1, /*poison=*/2, row);
  const Trace on = run(true, 1, /*poison=*/2, row);
  ASSERT_EQ(on.applied, (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(on.iterations, kSteps - 1);
  expect_bitwise_equal(on, off);
}

// The record on several ranks is the union the reducer reduced: more rows than this rank's.
TEST(TouchedRowsRecord, IsTheReducersUnionOnSeveralRanksAndThisRanksIdsOnOne) {
  Trainee t = make_trainee(true);
  StepSettings settings;
  settings.step = 1;
  settings.lr = 1e-3;
  const std::vector<HostBatch> b = batches(1, 1);
  EXPECT_FALSE(t.touched_rows->recorded().defined());  // every row until the first step
  train_step(t, b, settings);
  const torch::Tensor own = t.touched_rows->rows_of({b[0].text.ids});
  ASSERT_TRUE(t.touched_rows->recorded().defined());
  if (g_env.world == 1) {
    EXPECT_TRUE(torch::equal(t.touched_rows->recorded(), own));
  } else {
    EXPECT_TRUE(torch::equal(t.touched_rows->recorded(), t.reducer->reduced_rows()));
    EXPECT_GT(t.touched_rows->recorded().numel(), own.numel());
  }
}

}  // namespace
}  // namespace sx::train

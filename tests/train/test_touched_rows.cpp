// train.touched_rows_only (train/touched_rows.h): zeroing and the finiteness check over the
// dense gradients and the word-embedding rows the last step wrote give bitwise the results of
// the whole buffer: losses, gradients, parameters and Adam's moments, with and without gradient
// accumulation, on one rank (CTest train.touched_rows, label "unit") and on two whose batches
// touch different rows (train.touched_rows_mpi, label "mpi"); a NaN put into one row's gradient
// skips the step as it does without the option, and the next steps still agree; every row
// outside the record holds zero gradient after each step.
// train.embedding_adam_overlap (train/rows_adam.h), which consumes that record: the same bitwise
// results with the embedding rows the next step does not look up updated after it has run (on
// the CPU the deferred part runs as late as a GPU's side stream could finish it).
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
#include "train/rows_adam.h"
#include "train/step.h"
#include "train/touched_rows.h"

namespace sx::train {
namespace {

const dist::MpiEnv& g_env = test::mpi_env();

constexpr int64_t kSteps = 4;
constexpr int32_t kVocabEnd = 4000;  // the fixture's 4002 rows; a few dozen touched per batch

// How the step zeroes, checks and updates.
enum class Mode { kWholeBuffer, kTouchedRows, kOverlap };

// The tiny fixture model with dropout (the step's seeds must match too), trained as `train`
// trains it: build_trainee and connect_trainee (a reducer over MPI with several ranks).
Trainee make_trainee(Mode mode) {
  Config config = default_config();
  config.model.device = DeviceChoice::kCpu;
  config.train.touched_rows_only = mode == Mode::kTouchedRows;
  config.train.embedding_adam_overlap = mode == Mode::kOverlap;  // implies touched rows
  model::XlmrConfig c = model::read_xlmr_config(test::fixtures_dir() + "/hf-tiny-xlmr/config.json");
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1;
  model::SiameseEncoder encoder(c);
  model::init_weights(*encoder, 7);
  Trainee t = build_trainee(config, g_env, encoder);
  connect_trainee(t, config, g_env);
  EXPECT_EQ(t.touched_rows != nullptr, mode != Mode::kWholeBuffer);
  EXPECT_EQ(t.rows_adam != nullptr, mode == Mode::kOverlap);
  return t;
}

torch::Tensor word_embeddings(Trainee& t) {
  for (size_t i = 0; i < t.flat->entries().size(); ++i)
    if (t.flat->entries()[i].name == "embeddings.word_embeddings.weight")
      return t.flat->parameters()[i];
  ADD_FAILURE() << "no word embeddings";
  return {};
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
// embeddings' gradient on rank 0 during that step's backward. With the overlap, each step is
// told the next one's batches, except step 3 (as when the prefetcher is late).
Trace run(Mode mode, int64_t accumulation, int64_t poison = 0, int32_t poison_row = 0) {
  Trainee t = make_trainee(mode);
  int64_t step = 0;
  word_embeddings(t).register_hook([&](torch::Tensor g) {
    if (step != poison || g_env.rank != 0) return g;
    g = g.clone();
    g[poison_row].fill_(std::nanf(""));
    return g;
  });
  std::vector<std::vector<HostBatch>> steps(kSteps + 2);
  for (int64_t s = 1; s <= kSteps + 1; ++s) steps[s] = batches(s, accumulation);
  Trace trace;
  for (step = 1; step <= kSteps; ++step) {
    StepSettings settings;
    settings.step = step;
    settings.dropout_seed = static_cast<uint64_t>(50 + step);
    settings.lr = 1e-3;
    if (step != 3) settings.next_batches = [&steps, step] { return &steps[step + 1]; };
    const StepResult r = train_step(t, steps[step], settings);
    trace.losses.push_back(r.loss);
    trace.applied.push_back(r.applied);
    if (t.rows_adam) {
      // Deferred unless the next batches were unknown; the gradients are consumed once joined.
      EXPECT_EQ(t.rows_adam->pending(), step != 3) << step;
      t.rows_adam->join();
      EXPECT_TRUE(torch::equal(t.touched_rows->block(), torch::zeros_like(t.touched_rows->block())))
          << "step " << step;
      trace.grads.push_back(t.flat->grads().narrow(0, 0, t.touched_rows->offset()).clone());
    } else {
      trace.grads.push_back(t.flat->grads().clone());
      if (t.touched_rows) expect_zero_outside_record(*t.touched_rows, step);
    }
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
    // The overlap's trace holds the gradients before the embeddings (it consumes theirs).
    const torch::Tensor off_grads = off.grads[i].narrow(0, 0, on.grads[i].numel());
    EXPECT_TRUE(same_bits(on.grads[i], off_grads)) << "gradients of step " << i + 1;
  }
  EXPECT_TRUE(torch::equal(on.params, off.params));
  EXPECT_TRUE(torch::equal(on.m, off.m));
  EXPECT_TRUE(torch::equal(on.v, off.v));
  EXPECT_EQ(on.iterations, off.iterations);
}

class TouchedRowsStep : public ::testing::TestWithParam<int64_t> {};

TEST_P(TouchedRowsStep, EqualsZeroingAndCheckingTheWholeBufferBitwise) {
  const int64_t accumulation = GetParam();
  const Trace off = run(Mode::kWholeBuffer, accumulation);
  const Trace on = run(Mode::kTouchedRows, accumulation);
  for (bool applied : on.applied) EXPECT_TRUE(applied);
  expect_bitwise_equal(on, off);
}

TEST_P(TouchedRowsStep, TheEmbeddingAdamOverlapEqualsTheWholeStepBitwise) {
  const int64_t accumulation = GetParam();
  const Trace off = run(Mode::kWholeBuffer, accumulation);
  const Trace on = run(Mode::kOverlap, accumulation);
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
  const Trace off = run(Mode::kWholeBuffer, 1, /*poison=*/2, row);
  for (Mode mode : {Mode::kTouchedRows, Mode::kOverlap}) {
    const Trace on = run(mode, 1, /*poison=*/2, row);
    ASSERT_EQ(on.applied, (std::vector<bool>{true, false, true, true}));
    EXPECT_EQ(on.iterations, kSteps - 1);
    expect_bitwise_equal(on, off);
  }
}

// The record on several ranks is the union the reducer reduced: more rows than this rank's.
TEST(TouchedRowsRecord, IsTheReducersUnionOnSeveralRanksAndThisRanksIdsOnOne) {
  Trainee t = make_trainee(Mode::kTouchedRows);
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

// The late join (one replica whose backward adds the embeddings' gradient into the rows it looks
// up): the deferred rows are updated only after the next step's backward, yet the rows that step
// looks up hold their updated values before its forward, and the result is bitwise a plain Keras
// Adam step's. A step told the wrong rows joins before it starts.
TEST(RowsAdamOverlap, TheRowsLookedUpNextAreReadyBeforeTheStepAndTheRestAfterItsBackward) {
  Trainee ref = make_trainee(Mode::kWholeBuffer);
  Trainee t = make_trainee(Mode::kTouchedRows);
  RowsAdamOverlap overlap(*t.flat, *t.touched_rows, *t.adam, /*late_join=*/true);
  TouchedRows& rows = *t.touched_rows;
  const int64_t offset = rows.offset(), end = offset + rows.rows() * rows.width();
  const int64_t n = t.flat->grads().numel();
  constexpr int64_t kLast = 6;
  std::vector<std::vector<int32_t>> ids(kLast + 2);
  for (int64_t s = 1; s <= kLast + 1; ++s)
    ids[s] =
        data::random_text_batch(3, static_cast<uint64_t>(77 * s + g_env.rank), 3, 10, kVocabEnd)
            .ids;
  torch::manual_seed(9);
  torch::NoGradGuard no_grad;
  for (int64_t s = 1; s <= kLast; ++s) {
    const TokenIdLists looked_up{std::cref(ids[s])};
    overlap.before_step(looked_up);
    // Step 4 was told step 6's rows: it joined. Otherwise the last update is still half done.
    EXPECT_EQ(overlap.pending(), s > 1 && s != 4) << "step " << s;
    const torch::Tensor at = torch::tensor(ids[s], torch::kLong);
    EXPECT_TRUE(torch::equal(word_embeddings(t).index_select(0, at),
                             word_embeddings(ref).index_select(0, at)))
        << "step " << s << " looks up rows not yet updated";
    if (overlap.pending()) {
      EXPECT_FALSE(torch::equal(t.flat->params(), ref.flat->params())) << "nothing was deferred";
    }
    // The step: zeroing, then a backward that writes the dense gradients and adds into the rows
    // it looks up.
    rows.zero_rows();
    rows.zero_dense();
    ref.flat->zero_grads();
    const torch::Tensor dense = torch::randn({n}) * 1e-2;
    const torch::Tensor dout = torch::randn({at.numel(), rows.width()}) * 1e-2;
    for (Trainee* x : {&t, &ref}) {
      torch::Tensor g = x->flat->grads();
      g.narrow(0, 0, offset).copy_(dense.narrow(0, 0, offset));
      g.narrow(0, end, n - end).copy_(dense.narrow(0, end, n - end));
      g.narrow(0, offset, end - offset).view({rows.rows(), rows.width()}).index_add_(0, at, dout);
    }
    overlap.join();
    rows.record(rows.rows_of(looked_up));
    const std::vector<int32_t>& told = ids[s == 3 ? 6 : s + 1];
    const TokenIdLists next{std::cref(told)};
    overlap.update(rows.non_finite_flag(), 1e-3, s < kLast ? &next : nullptr);
    ref.adam->step(ref.flat->grads(), 1e-3, model::non_finite_flag(ref.flat->grads()));
  }
  overlap.join();
  EXPECT_TRUE(torch::equal(t.flat->params(), ref.flat->params()));
  EXPECT_TRUE(torch::equal(t.adam->m(), ref.adam->m()));
  EXPECT_TRUE(torch::equal(t.adam->v(), ref.adam->v()));
  EXPECT_EQ(t.adam->iterations(), ref.adam->iterations());
}

}  // namespace
}  // namespace sx::train

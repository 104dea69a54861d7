// Training pieces without MPI: stop rules, the epoch plan, checkpoints, flat buffers.
#include <torch/torch.h>

#include "core/error.h"
#include "model/weights.h"
#include "model/xlmr.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/flat_params.h"
#include "train/stopping.h"

namespace sx::train {
namespace {

TEST(EarlyStopping, KerasSemanticsStrictImprovementAndReset) {
  EarlyStopping e{2};
  EXPECT_TRUE(e.update(1.0));
  EXPECT_FALSE(e.update(1.0));  // equal is not an improvement (min_delta 0)
  EXPECT_FALSE(e.should_stop());
  EXPECT_TRUE(e.update(0.9));  // resets the counter
  EXPECT_EQ(e.epochs_without_improvement, 0);
  EXPECT_FALSE(e.update(0.95));
  EXPECT_FALSE(e.update(0.91));
  EXPECT_TRUE(e.should_stop());
  EXPECT_DOUBLE_EQ(e.best, 0.9);
}

TEST(EpochPlan, TheNotebooksRule) {
  // 500000 pairs, 1000 validation pairs, 32 per step on one replica.
  EpochPlan p = plan_epochs(500000, 1000, 32, 1, 0, 0);
  EXPECT_EQ(p.train_batches, 15625);
  EXPECT_EQ(p.val_batches, 32);
  EXPECT_EQ(p.steps_per_epoch, 640);
  EXPECT_EQ(p.max_epochs, 244);  // max(30, round(10 * 15625 / 640))
  EpochPlan small = plan_epochs(1000, 1000, 32, 2, 0, 0);
  EXPECT_EQ(small.steps_per_epoch, 15);  // training batches are fewer than 20 x validation batches
  EXPECT_EQ(small.max_epochs, 30);
  EXPECT_EQ(plan_epochs(1000, 100, 4, 1, 7, 3).steps_per_epoch, 7);
  EXPECT_EQ(plan_epochs(1000, 100, 4, 1, 7, 3).max_epochs, 3);
}

Checkpoint sample() {
  Checkpoint c;
  c.state.step = 12;
  c.state.epoch = 2;
  c.state.pairs_consumed = 96;
  c.state.adam_iterations = 11;
  c.state.best_val_loss = 0.5;
  c.state.epochs_without_improvement = 1;
  c.state.train_seconds = 3.5;
  c.state.world_size = 2;
  c.state.config_hash = "abc";
  c.state.lr_step_size = 30;
  c.params["encoder.layer.0.attention.self.query.weight"] = torch::randn({4, 3});
  c.params["pool_ln.bias"] = torch::randn({3});
  c.adam_m = torch::randn({15});
  c.adam_v = torch::rand({15});
  return c;
}

TEST(Checkpoint, RoundTripsEveryField) {
  test::TempDir dir;
  Checkpoint c = sample();
  write_checkpoint(dir.path("c.h5"), c);
  Checkpoint back = read_checkpoint(dir.path("c.h5"));
  EXPECT_EQ(back.state.step, 12);
  EXPECT_EQ(back.state.pairs_consumed, 96);
  EXPECT_EQ(back.state.adam_iterations, 11);
  EXPECT_EQ(back.state.config_hash, "abc");
  EXPECT_DOUBLE_EQ(back.state.train_seconds, 3.5);
  for (const auto& [name, t] : c.params) EXPECT_TRUE(torch::equal(t, back.params.at(name))) << name;
  EXPECT_TRUE(torch::equal(c.adam_m, back.adam_m));
  EXPECT_FALSE(files::exists(dir.path("c.h5.tmp")));
}

TEST(Checkpoint, TruncatedOrCorruptedFilesAreRefusedClearly) {
  test::TempDir dir;
  Checkpoint c = sample();
  write_checkpoint(dir.path("c.h5"), c);
  std::string bytes = test::read_file(dir.path("c.h5"));
  test::write_file(dir.path("cut.h5"), bytes.substr(0, bytes.size() - 200));
  // Flip one bit inside the stored optimizer moments (bytes outside datasets may be padding).
  std::string v(static_cast<const char*>(c.adam_v.data_ptr()), c.adam_v.nbytes());
  size_t at = bytes.find(v);
  ASSERT_NE(at, std::string::npos);
  std::string flipped = bytes;
  flipped[at + 5] ^= 0x10;
  test::write_file(dir.path("flip.h5"), flipped);
  test::write_file(dir.path("text.h5"), "not a checkpoint");
  for (const char* name : {"cut.h5", "flip.h5", "text.h5", "missing.h5"}) {
    try {
      read_checkpoint(dir.path(name));
      ADD_FAILURE() << name << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("checkpoint " + dir.path(name) + " is unusable"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Checkpoint, ListingIsNewestFirstAndPruningKeepsTheNewest) {
  test::TempDir dir;
  files::create_directories(checkpoint_dir(dir.path()));
  for (int64_t step : {5, 10, 100, 20})
    write_checkpoint(step_checkpoint_path(dir.path(), step), sample());
  auto all = list_step_checkpoints(dir.path());
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0], step_checkpoint_path(dir.path(), 100));
  EXPECT_EQ(all[3], step_checkpoint_path(dir.path(), 5));
  prune_step_checkpoints(dir.path(), 2);
  EXPECT_EQ(list_step_checkpoints(dir.path()),
            (std::vector<std::string>{step_checkpoint_path(dir.path(), 100),
                                      step_checkpoint_path(dir.path(), 20)}));
}

TEST(FlatParameters, ParametersAndGradientsAreViewsOfTwoBuffers) {
  model::XlmrConfig c;
  c.vocab_size = 50, c.hidden_size = 8, c.num_hidden_layers = 1, c.num_attention_heads = 2;
  c.intermediate_size = 16, c.max_position_embeddings = 20;
  model::SiameseEncoder m(c);
  model::init_weights(*m, 1);
  auto before = model::named_parameters(*m);
  std::map<std::string, torch::Tensor> copies;
  for (auto& [n, t] : before) copies[n] = t.detach().clone();
  FlatParameters flat(*m);
  EXPECT_EQ(flat.slots().numel(), kStepSlots);  // the named scalars sit behind the gradients
  EXPECT_EQ(flat.slot(StepSlot::kTokens).data_ptr<float>(),
            flat.grads().data_ptr<float>() + flat.size() + 1);
  const char* base = static_cast<const char*>(flat.params().data_ptr());
  for (auto& [name, p] : model::named_parameters(*m)) {
    EXPECT_TRUE(torch::equal(p, copies.at(name))) << name;  // values kept
    const char* ptr = static_cast<const char*>(p.data_ptr());
    EXPECT_GE(ptr, base);
    EXPECT_LT(ptr, base + flat.size() * 4);
  }
  // Backward accumulates straight into the flat gradient buffer.
  torch::Tensor ids = torch::tensor({0, 5, 6, 2, 1}, torch::kLong).view({1, 5});
  m->forward(ids).sum().backward();
  flat.collect_grads();
  double direct = 0;
  for (auto& [name, p] : model::named_parameters(*m)) direct += p.grad().abs().sum().item<double>();
  EXPECT_NEAR(flat.grads().abs().sum().item<double>(), direct, 1e-6 * direct);
  EXPECT_GT(direct, 0);
  flat.zero_grads();
  for (auto& [name, p] : model::named_parameters(*m))
    EXPECT_EQ(p.grad().abs().sum().item<double>(), 0) << name;
}

}  // namespace
}  // namespace sx::train

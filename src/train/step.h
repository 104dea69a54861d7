// One training step of one replica: the function that run_training and `bench train` both
// call, so what the benchmark times is what training runs.
//
//   host batch (made on the prefetch thread, pinned on a GPU)
//     -> H2D (asynchronous) -> forward -> loss -> backward -> all-reduce (loss and token
//        count ride on the gradient buffer) -> ONE small device-to-host copy (loss, tokens,
//        non-finite flag) -> Keras Adam (skipped when non-finite)
//
// The only host sync of a step is that copy; the optimizer's kernels are still running when
// train_step returns, so the caller's stop check and next batch hand-off overlap them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/packed_batch.h"
#include "model/keras_adam.h"
#include "model/schedule.h"
#include "model/xlmr.h"
#include "train/flat_params.h"
#include "train/reducer.h"
#include "train/step_graphs.h"

namespace sx::train {

// A step's batch on the host, ready to go to the device.
struct HostBatch {
  data::TextBatch text;      // the host ids (tokens, lengths, what rows the batch touches)
  bool packed = false;       // layout of `ids`
  torch::Tensor ids;         // packed: [T] int32; padded: [2B, L] int32 (L = longest text)
  torch::Tensor cu_seqlens;  // packed: [2B + 1] int32 (text.offsets)
  torch::Tensor labels;      // [B] float32
  uint64_t consumed = 0;     // the global batch's position in the pair sequence
  double imbalance = 1.0;    // of the global batch's split over ranks (data::token_imbalance)
  double prep_s = 0;         // how long making it took (on the prefetch thread)
};

// Wraps `text` into tensors for a replica on `device`: in pinned memory when it is a GPU, so
// that the copy to the device is asynchronous. Any thread.
HostBatch make_host_batch(data::TextBatch text, bool packed, const torch::Device& device,
                          int32_t pad_id);

// The parts of a replica a step reads and updates.
struct Trainee {
  model::SiameseEncoder model;
  FlatParameters* flat = nullptr;
  model::KerasAdam* adam = nullptr;
  GradientReducer* reducer = nullptr;  // unused with one rank
  torch::Device device{torch::kCPU};
  int world = 1;
  StepGraphs* graphs = nullptr;  // forward and backward through CUDA graphs when set
};

struct StepSettings {
  int64_t step = 0;           // 1-based number of this step (messages)
  uint64_t dropout_seed = 0;  // torch's generators are seeded with it first
  double margin = 1.0;        // DBL loss margin
};

struct StepResult {
  double loss = 0;         // mean DBL loss over the global batch
  double tokens = 0;       // real tokens of the global batch
  bool applied = false;    // false: loss or a gradient non-finite, the update was skipped
  double lr = 0;           // the schedule's rate at the optimizer's iteration count
  double allreduce_s = 0;  // host wall time spent waiting for the all-reduce
};

// Where a step's time goes. On CUDA each mark records an event on the current stream (the GPU
// time of each phase, no sync); on CPU it reads the wall clock. Read after the device is idle.
enum class Phase { kStart, kH2D, kForward, kBackward, kAllReduce, kOptimizer, kCount };
class PhaseTimer {
 public:
  explicit PhaseTimer(const torch::Device& device);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  void mark(Phase phase);
  // Per-phase milliseconds, averaged over the steps marked so far, plus "host_gap": the time
  // from one step's optimizer end to the next step's start (GPU idle waiting for the host).
  // Synchronizes the device first.
  std::vector<std::pair<std::string, double>> averages_ms();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

StepResult train_step(Trainee& t, const HostBatch& batch, const model::Triangular2& schedule,
                      const StepSettings& settings, PhaseTimer* timer = nullptr);

}  // namespace sx::train

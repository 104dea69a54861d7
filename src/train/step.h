// One training step of one replica: the function that run_training and `bench train` both
// call, so what the benchmark times is what training runs.
//
//   host micro-batches (made on the prefetch thread, pinned on a GPU)
//     -> H2D (asynchronous) -> per micro-batch: forward -> loss / A -> backward (gradients
//        accumulate in the flat buffer) -> all-reduce, once, during the last micro-batch's
//        backward (loss and token count ride on the gradient buffer) -> ONE small
//        device-to-host copy (loss, tokens, non-finite flag) -> Keras Adam (skipped when
//        non-finite)
//
// Gradient accumulation (train.accumulation_steps = A): an optimizer step takes A
// micro-batches of train.pairs_per_rank pairs per rank; each micro-batch's mean loss is
// scaled by 1/A, so the accumulated gradient, averaged over the W ranks, is the gradient of
// the mean loss over the global batch of W x A x pairs_per_rank pairs, as if W x A ranks had
// taken one micro-batch each. The ranks all-reduce once per optimizer step, not per
// micro-batch. With A = 1 the step is exactly the one without accumulation.
//
// The only host sync of a step is that copy; the optimizer's kernels are still running when
// train_step returns, so the caller's stop check and next batch hand-off overlap them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/text_batch.h"
#include "dist/communicator.h"
#include "model/keras_adam.h"
#include "model/xlmr.h"
#include "train/flat_params.h"
#include "train/reducer.h"
#include "train/rows_adam.h"
#include "train/step_graphs.h"
#include "train/touched_rows.h"

namespace sx::train {

// A step's batch on the host, ready to go to the device: the packed layout (the pairs' 2B
// texts back to back, no padding).
struct HostBatch {
  data::TextBatch text;      // the host ids (tokens, lengths, what rows the batch touches)
  torch::Tensor ids;         // [T] int32
  torch::Tensor cu_seqlens;  // [2B + 1] int32 (text.offsets)
  torch::Tensor labels;      // [B] float32
  uint64_t consumed = 0;     // position in the pair sequence of the pairs it is a rank's share of
  // The most real tokens any rank's share of the same global batch holds (data::DealSummary,
  // the same on every rank); CUDA graphs pick their token bucket from it so that every rank
  // replays the graph of the same bucket. 0: this batch's own count (one rank, no graphs).
  int64_t most_rank_tokens = 0;
  double imbalance = 1.0;  // of the global batch's split over ranks (data::token_imbalance)
  double prep_s = 0;       // how long making it took (on the prefetch thread)
};

// Wraps `text` into tensors for a replica on `device`: in pinned memory when it is a GPU, so
// that the copy to the device is asynchronous. Any thread.
HostBatch make_host_batch(data::TextBatch text, const torch::Device& device);

// One rank's replica: what a step reads and updates, and its owner (train/replica.h builds
// it for training and for `bench train`).
struct Trainee {
  model::SiameseEncoder model{nullptr};
  torch::Device device{torch::kCPU};
  int world = 1;                         // ranks
  std::unique_ptr<FlatParameters> flat;  // the parameters' and gradients' flat buffers
  std::unique_ptr<model::KerasAdam> adam;
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<GradientReducer> reducer;  // averages over the ranks; only with several
  std::unique_ptr<StepGraphs> graphs;        // forward and backward through CUDA graphs
  // train.touched_rows_only: zeroing and the finiteness check cover the dense gradients and
  // the word embeddings' rows the last step wrote (null: the whole buffer).
  std::unique_ptr<TouchedRows> touched_rows;
  // train.embedding_adam_overlap: the embeddings' rows of Adam the next step does not look up
  // are updated while it runs (null: KerasAdam::step updates everything).
  std::unique_ptr<RowsAdamOverlap> rows_adam;
};

struct StepSettings {
  int64_t step = 0;  // 1-based number of this step (messages)
  // torch's generators are seeded with it before the first micro-batch, with
  // mix_seed({dropout_seed, a}) before micro-batch a > 0.
  uint64_t dropout_seed = 0;
  double margin = 1.0;  // DBL loss margin
  double lr = 0;        // learning rate of this update (the caller's schedule)
  // With Trainee::rows_adam: the next step's micro-batches where they are already made (the
  // prefetcher's), else null; asked once, after this step's backward. Unset: null.
  std::function<const std::vector<HostBatch>*()> next_batches;
};

struct StepResult {
  double loss = 0;         // mean DBL loss over the global batch
  double tokens = 0;       // real tokens of the global batch
  bool applied = false;    // false: loss or a gradient non-finite, the update was skipped
  double lr = 0;           // settings.lr, the rate the update used
  double allreduce_s = 0;  // host wall time spent waiting for the all-reduce
};

// Where a step's time goes. On CUDA each mark records an event on the current stream (the GPU
// time of each phase, no sync); on CPU it reads the wall clock. Read after the device is idle.
// With several micro-batches, "forward" runs from the end of H2D to the end of the last
// micro-batch's forward (the earlier micro-batches' backward passes included) and "backward"
// is the last micro-batch's.
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

// What the first micro-batch of a step zeroes before its backward (eagerly, or in its CUDA
// graph): the whole gradient buffer, or with Trainee::touched_rows its dense part only (the
// rows the last step wrote are zeroed before, outside any graph).
void zero_first_gradients(Trainee& t);

// One optimizer step over this rank's micro-batches (in order; one without accumulation, all
// of the same number of pairs). Every rank passes the same number.
StepResult train_step(Trainee& t, const std::vector<HostBatch>& micro_batches,
                      const StepSettings& settings, PhaseTimer* timer = nullptr);

}  // namespace sx::train

// Averages the replicas' gradients over ranks while backward is still running, as PyTorch
// DDP's reducer does (issue #10, item 5).
//
// The flat gradient buffer (train/flat_params.h) is cut into buckets of whole parameters, in
// layout order, which is reverse registration order (each layer's q, k, v back to back, which
// one backward node finishes together): the order in which backward finishes them. A hook on each
// parameter's gradient accumulator fires once autograd has added the parameter's gradient into its
// slot; when every parameter of a bucket has fired, the bucket is all-reduced (averaged) at once,
// while backward computes the earlier layers' gradients. Buckets are launched strictly in index
// order, so every rank issues the same collectives in the same order. On CUDA the collectives run
// on the communicator's own stream; on CPU they are non-blocking MPI all-reduces issued from the
// hook (backward of a CPU graph runs on the calling thread).
//
// Row-sparse parameter (the word embeddings, 192M of XLM-R's 278M parameters): only the rows
// some rank's batch looked up carry gradient, every other row is zero on every rank. Each
// step the ranks OR together bitmaps of the rows they touched (begin_step, 31 KB for 250002
// rows, on the host), and only the union's rows cross the wire; the result equals the dense
// reduction.
//
// Inside a CUDA graph (train.graph_allreduce: inside, train/step_graphs.h): begin_capture and
// end_capture bracket the capture of a step's backward; the hooks then launch the dense
// buckets on the communicator's stream, forked from the capturing stream, and end_capture
// joins that stream back, so the all-reduces become nodes of the graph that overlap its
// backward. The sparse parameter's rows change every step: its bucket stays out of the graph.
// After a replay of such a graph, begin_step(..., dense_in_graph = true) makes finish_step
// launch only the sparse bucket and the slots.
//
// Thread rules: begin_step/finish_step on the thread that made the reducer (MPI's main
// thread); the hooks may run on autograd's device threads, where they launch only if the
// communicator allows it (NCCL) and otherwise leave the launch to finish_step.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "train/flat_params.h"
#include "train/touched_rows.h"

namespace sx::train {

struct ReducerOptions {
  double bucket_mb = 25;                           // train.bucket_mb
  dist::WireType wire = dist::WireType::kFloat32;  // dist.grad_dtype
  // The parameter reduced over touched rows only; "" (or a name the model lacks) = dense.
  std::string sparse_rows_param = "embeddings.word_embeddings.weight";
};

// What the last step did (tests, logs).
struct ReducerStats {
  int64_t buckets = 0;                  // dense buckets, plus 1 for the sparse parameter
  int64_t launched_in_backward = 0;     // of them, launched from hooks before finish_step
  int64_t pending_at_first_launch = 0;  // parameters still without gradient at that moment
  int64_t sparse_rows = -1;             // rows of the sparse parameter reduced (-1: dense)
  int64_t sparse_rows_total = 0;        // rows the sparse parameter has
  int64_t elements = 0;                 // float32 elements all-reduced (slots included)
};

// One line for the log: "12 buckets (12 launched during backward), 341 of 4002 embedding rows,
// 1.2M elements".
std::string describe(const ReducerStats& stats);

class GradientReducer {
 public:
  using TokenIds = std::reference_wrapper<const std::vector<int32_t>>;

  // Registers the hooks; `flat`, `comm` must outlive the reducer.
  GradientReducer(FlatParameters& flat, dist::Communicator& comm, const dist::MpiEnv& env,
                  ReducerOptions options);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before forward/backward of step `step` (1-based, for deadline messages): the token ids of this
  // rank's batch (the rows of the sparse parameter it touches; any order, duplicates and
  // padding fine), e.g. {batch.left_ids, batch.right_ids}. Exchanges the row sets with the
  // other ranks (blocking, a few KB). Every row the batch can put gradient on must be listed.
  // With gradient accumulation, call it before the LAST micro-batch's forward only, listing
  // every micro-batch's ids: the hooks stay idle outside begin_step..finish_step, so the
  // earlier micro-batches' backward passes just accumulate into the flat buffer.
  // It may also come after backward (a CUDA graph's replay runs no hooks): finish_step then
  // launches every bucket, with the same result.
  // `dense_in_graph`: the dense buckets were all-reduced already by the replay of a graph
  // captured between begin_capture and end_capture; finish_step leaves them alone.
  void begin_step(int64_t step, const std::vector<TokenIds>& token_ids,
                  bool dense_in_graph = false);
  // After loss.backward() and after writing this rank's StepSlot values: launches what is
  // left (unused parameters' buckets, the slots), waits for everything under
  // dist.collective_timeout (dist/deadline.h: naming the step on expiry). Leaves the
  // AVERAGED gradient in flat.grads() and the averaged slots in flat.slots().
  void finish_step();

  // Around the capture of a step's forward and backward into a CUDA graph, on the capturing
  // thread, outside begin_step..finish_step: begin_capture before it (the hooks launch the
  // dense buckets as backward finishes them), end_capture after backward and before the
  // capture ends (launches the dense buckets still due, unused parameters', and joins the
  // communication stream back into the capturing one). Nothing waits for them here: the
  // replay runs them; wait() in the next finish_step covers the replay.
  void begin_capture();
  void end_capture();

  const ReducerStats& stats() const { return stats_; }
  // The rows of the sparse parameter the last begin_step's step reduces (int64 on the device,
  // ascending): the union of the ranks' touched rows, the only ones that hold gradient after
  // finish_step. Undefined where the whole parameter is reduced (no sparse parameter, no rows).
  const torch::Tensor& reduced_rows() const { return sparse_rows_; }
  // Dense bucket boundaries in elements of the flat buffer ({offset, numel}), layout order.
  std::vector<std::pair<int64_t, int64_t>> bucket_ranges() const;

 private:
  struct Bucket {
    int64_t offset = 0, numel = 0;
    int64_t params = 0;  // parameters in it
    int64_t ready = 0;   // of them, final this step
    bool sparse = false;
    bool launched = false;
  };
  class ReadyHook;

  void cut_buckets(double bucket_mb);
  void register_hooks();
  void exchange_rows(const std::vector<TokenIds>& token_ids);
  void on_gradient_ready(size_t param);      // from the hooks
  void mark_ready_locked(size_t param);      // mutex_ held
  void launch_ready_locked(bool from_hook);  // mutex_ held
  void reset_ready_locked();                 // mutex_ held
  void launch_locked(Bucket& bucket);        // mutex_ held

  FlatParameters& flat_;
  dist::Communicator& comm_;
  dist::MpiEnv env_;
  ReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter index -> bucket
  std::vector<char> param_ready_;  // this step
  size_t next_ = 0;                // first bucket not launched yet
  int64_t sparse_param_ = -1;      // index into flat.parameters(), -1: none
  torch::Tensor sparse_rows_;      // this step's union of touched rows, int64 on the device
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::thread::id owner_;
  std::mutex mutex_;
  bool active_ = false;     // between begin_step and finish_step, or while capturing
  bool capturing_ = false;  // between begin_capture and end_capture: dense buckets only
  ReducerStats stats_;
};

}  // namespace sx::train

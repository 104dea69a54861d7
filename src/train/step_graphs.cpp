#include "train/step_graphs.h"

#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "model/siamese_loss.h"
#include "train/step.h"

#if defined(SX_WITH_CUDA) && TORCH_VERSION_MAJOR >= 2 && !defined(SX_NO_CUDA_GRAPHS)
#define SX_HAVE_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#else
#define SX_HAVE_CUDA_GRAPHS 0
#endif

namespace sx::train {

bool StepGraphs::compiled() {
  return SX_HAVE_CUDA_GRAPHS;
}

int64_t StepGraphs::bucket_for(int64_t tokens, int64_t bucket_tokens) {
  return std::max<int64_t>(1, (tokens + bucket_tokens - 1) / bucket_tokens) * bucket_tokens;
}

int64_t StepGraphs::bucket_for(const HostBatch& batch, int64_t bucket_tokens) {
  return bucket_for(std::max(batch.text.tokens(), batch.most_rank_tokens), bucket_tokens);
}

namespace {
// Dummy sequences that fill a batch up to `bucket` (each at most max_seqlen long): enough for
// any batch of the bucket, since another rank's larger share may have chosen it.
int64_t dummy_sequences(int64_t bucket, int64_t max_seqlen) {
  return std::max<int64_t>(1, (bucket + max_seqlen - 1) / max_seqlen);
}
}  // namespace

std::vector<int32_t> StepGraphs::filler_ends(int64_t tokens, int64_t bucket, int64_t max_seqlen) {
  std::vector<int32_t> ends;
  int64_t end = tokens;
  for (int64_t d = 0; d < dummy_sequences(bucket, max_seqlen); ++d) {
    end = std::min(bucket, end + max_seqlen);
    ends.push_back(static_cast<int32_t>(end));
  }
  return ends;
}

#if SX_HAVE_CUDA_GRAPHS

namespace {

// A captured step's fixed inputs and output.
struct Graph {
  at::cuda::CUDAGraph graph;
  torch::Tensor ids;                  // [bucket] int32: the real tokens, then pads
  torch::Tensor cu;                   // [2B + 1 + dummies] int32
  torch::Tensor labels;               // [B] float32
  torch::Tensor loss;                 // the captured loss (in the graphs' pool)
  StepGraphs::MicroBatch kind{0, 1};  // zeroes the gradients when first; scales when count > 1
  bool reduces = false;               // the dense gradient all-reduces are captured in it
  bool captured = false;
  int64_t seen = 0;
};

}  // namespace

struct StepGraphs::Impl {
  int64_t max_seqlen = 0;
  int32_t pad_id = 1;
  bool allreduce_inside = false;
  int64_t bucket_tokens = kDefaultBucketTokens;
  decltype(at::cuda::graph_pool_handle()) pool;
  // (pairs, bucket, micro-batches per step, first of them, with the all-reduce)
  std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, std::unique_ptr<Graph>> graphs;
  int64_t captured = 0;
  bool reduced = false;  // by the last replay

  // The step's body: the same kernels whether run eagerly or captured.
  torch::Tensor body(Trainee& t, Graph& g, double margin) const {
    if (g.kind.index == 0) zero_first_gradients(t);
    model::PackedIds packed;
    packed.ids = g.ids.to(torch::kLong);
    packed.cu_seqlens = g.cu;
    // Only the count and the last entry are read on the host (flash reads cu_seqlens).
    packed.offsets.assign(static_cast<size_t>(g.cu.size(0)), 0);
    packed.offsets.back() = g.ids.size(0);
    packed.max_seqlen = max_seqlen;
    torch::Tensor loss = model::pair_loss(*t.model, packed, g.labels, margin);
    if (g.kind.count > 1) loss = loss / static_cast<double>(g.kind.count);
    loss.backward();
    return loss.detach();
  }

  Graph& graph_for(int64_t pairs, int64_t bucket, StepGraphs::MicroBatch micro, bool reduces,
                   const torch::Device& device) {
    auto& slot = graphs[{pairs, bucket, micro.count, micro.index == 0, reduces}];
    if (!slot) {
      slot = std::make_unique<Graph>();
      const auto on = torch::TensorOptions().device(device);
      slot->ids = torch::empty({bucket}, on.dtype(torch::kInt));
      slot->cu = torch::empty({2 * pairs + 1 + dummy_sequences(bucket, max_seqlen)},
                              on.dtype(torch::kInt));
      slot->labels = torch::empty({pairs}, on.dtype(torch::kFloat));
      slot->kind = {micro.index == 0 ? 0 : 1, micro.count};
      slot->reduces = reduces;
    }
    return *slot;
  }

  // The batch into the graph's inputs, on the current stream.
  void fill_inputs(Graph& g, const HostBatch& batch) const {
    const int64_t tokens = batch.text.tokens(), bucket = g.ids.size(0);
    const int64_t sequences = batch.text.sequences();
    const int64_t dummies = dummy_sequences(bucket, max_seqlen);
    g.ids.narrow(0, 0, tokens).copy_(batch.ids, /*non_blocking=*/true);
    g.ids.narrow(0, tokens, bucket - tokens).fill_(pad_id);
    torch::Tensor cu = torch::empty({sequences + 1 + dummies},
                                    torch::TensorOptions().dtype(torch::kInt).pinned_memory(true));
    int32_t* c = cu.data_ptr<int32_t>();
    for (int64_t i = 0; i <= sequences; ++i) c[i] = static_cast<int32_t>(batch.text.offsets[i]);
    const std::vector<int32_t> ends = filler_ends(tokens, bucket, max_seqlen);
    std::copy(ends.begin(), ends.end(), c + sequences + 1);
    g.cu.copy_(cu, /*non_blocking=*/true);
    g.labels.copy_(batch.labels, /*non_blocking=*/true);
  }

  // Captures the body on the current stream. A failed capture leaves CUDA's and torch's
  // capture state behind, so it ends the run with a way out rather than training on.
  void capture(Trainee& t, Graph& g, double margin) {
    // Thread-local mode: the reducer's hooks launch NCCL from autograd's device thread.
    g.graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    try {
      if (g.reduces) t.reducer->begin_capture();  // the hooks launch the dense buckets
      g.loss = body(t, g, margin);
      if (g.reduces) t.reducer->end_capture();  // the comm stream joins the capture
      g.graph.capture_end();
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("capturing the step as a CUDA graph failed (set "
                                           "train.cuda_graphs: false to train without): ") +
                               e.what());
    }
    // A replay writes where the capture wrote: a gradient autograd replaced instead of
    // accumulating into its flat slot would leave the slot stale on every replay.
    if (const std::string stray = t.flat->stray_grad(); !stray.empty())
      throw std::runtime_error("capturing the step as a CUDA graph moved the gradient of " + stray +
                               " out of the flat buffer (set train.cuda_graphs: false to train "
                               "without)");
    g.captured = true;
    ++captured;
  }
};

void StepGraphs::use_own_stream(const torch::Device& device) {
  torch::cuda::synchronize(device.index());  // what the default stream did is visible to it
  c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, device.index()));
}

StepGraphs::StepGraphs(int64_t max_seqlen, int32_t pad_id, bool allreduce_inside,
                       int64_t bucket_tokens)
    : impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(bucket_tokens > 0, "graph token buckets must hold at least one token");
  impl_->max_seqlen = max_seqlen;
  impl_->pad_id = pad_id;
  impl_->allreduce_inside = allreduce_inside;
  impl_->bucket_tokens = bucket_tokens;
  impl_->pool = at::cuda::graph_pool_handle();
}

StepGraphs::~StepGraphs() = default;

int64_t StepGraphs::captured() const {
  return impl_->captured;
}

bool StepGraphs::reduced_in_graph() const {
  return impl_->reduced;
}

int64_t StepGraphs::idle_pool_bytes() const {
  int64_t idle = 0;
  for (const auto& segment : c10::cuda::CUDACachingAllocator::snapshot().segments)
    if (segment.owner_private_pool_id == impl_->pool)
      idle += static_cast<int64_t>(segment.total_size - segment.allocated_size);
  return idle;
}

torch::Tensor StepGraphs::forward_backward(Trainee& t, const HostBatch& batch, double margin,
                                           MicroBatch micro) {
  Impl& m = *impl_;
  const int64_t pairs = batch.text.pairs;
  TORCH_CHECK(batch.text.max_length() <= m.max_seqlen, "a graphed step needs texts of up to ",
              m.max_seqlen, " tokens");
  TORCH_CHECK(c10::cuda::getCurrentCUDAStream(t.device.index()) !=
                  c10::cuda::getDefaultCUDAStream(t.device.index()),
              "graphed steps run on a stream of their own: call StepGraphs::use_own_stream first");
  // The last micro-batch's backward all-reduces, as in the eager step.
  const bool reduces = m.allreduce_inside && t.reducer && micro.index + 1 == micro.count;
  Graph& g = m.graph_for(pairs, bucket_for(batch, m.bucket_tokens), micro, reduces, t.device);
  m.fill_inputs(g, batch);
  ++g.seen;
  m.reduced = false;
  if (!g.captured && g.seen == 1) return m.body(t, g, margin);  // the warm-up, eagerly
  if (!g.captured) m.capture(t, g, margin);
  g.graph.replay();
  m.reduced = g.reduces;
  return g.loss;
}

#else  // no CUDA graphs in this build

struct StepGraphs::Impl {};
void StepGraphs::use_own_stream(const torch::Device&) {}
StepGraphs::StepGraphs(int64_t, int32_t, bool, int64_t) : impl_(std::make_unique<Impl>()) {}
StepGraphs::~StepGraphs() = default;
int64_t StepGraphs::captured() const {
  return 0;
}
bool StepGraphs::reduced_in_graph() const {
  return false;
}
int64_t StepGraphs::idle_pool_bytes() const {
  return 0;
}
torch::Tensor StepGraphs::forward_backward(Trainee&, const HostBatch&, double, MicroBatch) {
  TORCH_CHECK(false, "this build has no CUDA graphs");
  return torch::Tensor();
}

#endif

}  // namespace sx::train

#include "train/step_graphs.h"

#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "model/siamese_loss.h"
#include "train/step.h"

#if defined(SX_WITH_CUDA) && TORCH_VERSION_MAJOR >= 2 && !defined(SX_NO_CUDA_GRAPHS)
#define SX_HAVE_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
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

#if SX_HAVE_CUDA_GRAPHS

namespace {

// Dummy sequences that fill a batch up to its bucket (each at most max_seqlen long).
int64_t dummy_sequences(int64_t max_seqlen) {
  return (StepGraphs::kBucketTokens + max_seqlen - 1) / max_seqlen;
}

// A captured step's fixed inputs and output.
struct Graph {
  at::cuda::CUDAGraph graph;
  torch::Tensor ids;     // [bucket] int32: the real tokens, then pads
  torch::Tensor cu;      // [2B + 1 + dummies] int32
  torch::Tensor labels;  // [B] float32
  torch::Tensor loss;    // the captured loss (in the graphs' pool)
  bool captured = false;
  int64_t seen = 0;
};

}  // namespace

struct StepGraphs::Impl {
  int64_t max_seqlen = 0;
  int32_t pad_id = 1;
  decltype(at::cuda::graph_pool_handle()) pool;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Graph>> graphs;  // (pairs, bucket)
  int64_t captured = 0;

  // The step's body: the same kernels whether run eagerly or captured.
  torch::Tensor body(Trainee& t, Graph& g, double margin) const {
    t.flat->zero_grads();
    model::PackedIds packed;
    packed.ids = g.ids.to(torch::kLong);
    packed.cu_seqlens = g.cu;
    // Only the count and the last entry are read on the host (flash reads cu_seqlens).
    packed.offsets.assign(static_cast<size_t>(g.cu.size(0)), 0);
    packed.offsets.back() = g.ids.size(0);
    packed.max_seqlen = max_seqlen;
    torch::Tensor loss = model::pair_loss(*t.model, packed, g.labels, margin);
    loss.backward();
    return loss.detach();
  }

  Graph& graph_for(int64_t pairs, int64_t bucket, const torch::Device& device) {
    auto& slot = graphs[{pairs, bucket}];
    if (!slot) {
      slot = std::make_unique<Graph>();
      const auto on = torch::TensorOptions().device(device);
      slot->ids = torch::empty({bucket}, on.dtype(torch::kInt));
      slot->cu = torch::empty({2 * pairs + 1 + dummy_sequences(max_seqlen)}, on.dtype(torch::kInt));
      slot->labels = torch::empty({pairs}, on.dtype(torch::kFloat));
    }
    return *slot;
  }

  // The batch into the graph's inputs, on the current stream.
  void fill_inputs(Graph& g, const HostBatch& batch) const {
    const int64_t tokens = batch.text.tokens(), bucket = g.ids.size(0);
    const int64_t sequences = batch.text.sequences(), dummies = dummy_sequences(max_seqlen);
    g.ids.narrow(0, 0, tokens).copy_(batch.ids, /*non_blocking=*/true);
    g.ids.narrow(0, tokens, bucket - tokens).fill_(pad_id);
    torch::Tensor cu = torch::empty({sequences + 1 + dummies},
                                    torch::TensorOptions().dtype(torch::kInt).pinned_memory(true));
    int32_t* c = cu.data_ptr<int32_t>();
    for (int64_t i = 0; i <= sequences; ++i) c[i] = static_cast<int32_t>(batch.text.offsets[i]);
    int64_t end = tokens;
    for (int64_t d = 1; d <= dummies; ++d) {
      end = std::min(bucket, end + max_seqlen);
      c[sequences + d] = static_cast<int32_t>(end);
    }
    g.cu.copy_(cu, /*non_blocking=*/true);
    g.labels.copy_(batch.labels, /*non_blocking=*/true);
  }

  // Captures the body on the current stream. A failed capture leaves CUDA's and torch's
  // capture state behind, so it ends the run with a way out rather than training on.
  void capture(Trainee& t, Graph& g, double margin) {
    g.graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    try {
      g.loss = body(t, g, margin);
      g.graph.capture_end();
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("capturing the step as a CUDA graph failed (set "
                                           "train.cuda_graphs: false to train without): ") +
                               e.what());
    }
    g.captured = true;
    ++captured;
  }
};

void StepGraphs::use_own_stream(const torch::Device& device) {
  torch::cuda::synchronize(device.index());  // what the default stream did is visible to it
  c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, device.index()));
}

StepGraphs::StepGraphs(int64_t max_seqlen, int32_t pad_id) : impl_(std::make_unique<Impl>()) {
  impl_->max_seqlen = max_seqlen;
  impl_->pad_id = pad_id;
  impl_->pool = at::cuda::graph_pool_handle();
}

StepGraphs::~StepGraphs() = default;

int64_t StepGraphs::captured() const {
  return impl_->captured;
}

torch::Tensor StepGraphs::forward_backward(Trainee& t, const HostBatch& batch, double margin) {
  Impl& m = *impl_;
  const int64_t pairs = batch.text.pairs, tokens = batch.text.tokens();
  TORCH_CHECK(batch.text.max_length() <= m.max_seqlen, "a graphed step needs texts of up to ",
              m.max_seqlen, " tokens");
  TORCH_CHECK(c10::cuda::getCurrentCUDAStream(t.device.index()) !=
                  c10::cuda::getDefaultCUDAStream(t.device.index()),
              "graphed steps run on a stream of their own: call StepGraphs::use_own_stream first");
  const int64_t bucket = (tokens / kBucketTokens + 1) * kBucketTokens;
  Graph& g = m.graph_for(pairs, bucket, t.device);
  m.fill_inputs(g, batch);
  ++g.seen;
  if (!g.captured && g.seen == 1) return m.body(t, g, margin);  // the warm-up, eagerly
  if (!g.captured) m.capture(t, g, margin);
  g.graph.replay();
  return g.loss;
}

#else  // no CUDA graphs in this build

struct StepGraphs::Impl {};
void StepGraphs::use_own_stream(const torch::Device&) {}
StepGraphs::StepGraphs(int64_t, int32_t) : impl_(std::make_unique<Impl>()) {}
StepGraphs::~StepGraphs() = default;
int64_t StepGraphs::captured() const {
  return 0;
}
torch::Tensor StepGraphs::forward_backward(Trainee&, const HostBatch&, double) {
  TORCH_CHECK(false, "this build has no CUDA graphs");
  return torch::Tensor();
}

#endif

}  // namespace sx::train

// CUDA graphs over a step's forward and backward (issue #10). At 32 pairs per step on an H100
// the step is bound by the host launching ~2,000 small kernels, not by the GPU's arithmetic;
// replaying a captured graph launches them all at once.
//
// A graph needs fixed shapes, so a packed batch is padded to a token bucket: its T real tokens
// plus dummy sequences of pad tokens up to the next multiple of the bucket size
// (train.graph_bucket_tokens, 256 by default; none, that is dummies of length 0, when T is a
// multiple). Smaller buckets waste fewer tokens per step and capture more graphs. With several
// ranks the bucket is global: the one that holds the largest rank's share of the global batch,
// which every rank computes alike from the deal (HostBatch::most_rank_tokens, data/rank_deal.h), so
// that every rank replays the graph of the same shape (NCCL requires it of graphs holding
// collectives). The dummy sequences attend only to themselves and are left out of pooling, so they
// change nothing but the random numbers dropout draws (the embeddings, loss and gradients are those
// of the real batch). One graph per (pairs, bucket, micro-batch kind), captured the second time
// that shape is seen (the first runs the same code eagerly, as the warm-up capture needs); all
// graphs share one memory pool, which is safe because what a graph leaves behind (its loss) is read
// before another graph replays.
//
// Gradient accumulation (train.accumulation_steps = A > 1): the first micro-batch's graph
// zeroes the gradients, the others' accumulate into them, and each scales its loss by 1/A, as
// the eager step does.
//
// For CUDA replicas with flash attention. With several ranks, by default
// (train.graph_allreduce: after) the gradient all-reduce stays outside the graph and runs after
// the replay: a replay runs no autograd hooks, so nothing overlaps backward. With
// train.graph_allreduce: inside, the graph of a step's last micro-batch is captured with the
// reducer's hooks armed (GradientReducer::begin_capture/end_capture): as backward finishes a
// dense bucket, its NCCL all-reduce is captured on the communication stream, forked from the
// capturing stream by an event and joined back before the capture ends, so the replay
// overlaps the all-reduces with backward as the eager step does. What the collectives touch
// keeps its address across replays: the flat gradient buffer (allocated once) and the bf16
// wire's scratch (allocated during the capture, in the graphs' pool). The word embeddings'
// touched rows change in number every step: their bucket (and the step's slots) are reduced
// after the replay, as with after, and finish_step's wait covers the replay's collectives
// under dist.collective_timeout. Every rank captures and replays the same graphs in the same
// order (global buckets, above), as NCCL requires. Not yet run on a GPU as of this change.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/xlmr.h"

namespace sx::train {

struct Trainee;
struct HostBatch;

class StepGraphs {
 public:
  static constexpr int64_t kDefaultBucketTokens = 256;  // train.graph_bucket_tokens

  // `max_seqlen`: the longest text a batch may hold (data.max_len); fixed in the graphs.
  // `allreduce_inside`: train.graph_allreduce: inside (used where the trainee has a reducer).
  // `bucket_tokens`: train.graph_bucket_tokens, the token buckets' size.
  StepGraphs(int64_t max_seqlen, int32_t pad_id, bool allreduce_inside = false,
             int64_t bucket_tokens = kDefaultBucketTokens);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Makes a stream of the device's pool the calling thread's current stream (after a device
  // sync). Graphs cannot be captured on the default stream, and autograd's gradient
  // accumulators keep the stream they were made on: call it before the first step and before
  // anything registers gradient hooks (the reducer).
  static void use_own_stream(const torch::Device& device);

  // Whether this build can capture CUDA graphs (CUDA and libtorch >= 2). Where else they can
  // run is a configuration rule (core/config_rules.h: train.cuda_graphs).
  static bool compiled();

  // The smallest multiple of `bucket_tokens` that holds `tokens` (at least one bucket).
  static int64_t bucket_for(int64_t tokens, int64_t bucket_tokens);
  // The bucket of a rank's micro-batch: the one that holds the largest share of its global
  // batch (HostBatch::most_rank_tokens), so that every rank replays the same graph.
  static int64_t bucket_for(const HostBatch& batch, int64_t bucket_tokens);
  // Where the dummy sequences that fill `tokens` up to `bucket` end, each at most `max_seqlen`
  // long: as many as filling the whole bucket would need (ceil(bucket / max_seqlen), at least
  // one; another rank's larger share may have chosen the bucket), trailing ones of length 0.
  static std::vector<int32_t> filler_ends(int64_t tokens, int64_t bucket, int64_t max_seqlen);

  // Which of a step's micro-batches a replay runs: the first zeroes the gradients, the others
  // accumulate; with count > 1 the loss is scaled by 1/count.
  struct MicroBatch {
    int64_t index;
    int64_t count;
  };

  // Forward, DBL loss and backward of `batch` on the current stream's behalf, through the
  // graph of the batch's shape and kind. Returns the (scaled) loss: a device scalar, valid
  // until the next call. Throws if a capture fails.
  torch::Tensor forward_backward(Trainee& t, const HostBatch& batch, double margin,
                                 MicroBatch micro = {0, 1});

  // Whether the last forward_backward's replay all-reduced the dense gradient buckets (a
  // graph captured with them inside): the reducer then reduces only the sparse rows.
  bool reduced_in_graph() const;

  int64_t captured() const;  // graphs captured so far
  // Bytes the graphs' pool holds beyond the tensors alive in it: the memory replays write,
  // which the allocator's allocated-bytes statistics do not count between replays.
  int64_t idle_pool_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sx::train

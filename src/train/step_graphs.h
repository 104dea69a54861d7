// CUDA graphs over a step's forward and backward (issue #10). At 32 pairs per step on an H100
// the step is bound by the host launching ~2,000 small kernels, not by the GPU's arithmetic;
// replaying a captured graph launches them all at once.
//
// A graph needs fixed shapes, so a packed batch is padded to a token bucket: its T real tokens
// plus dummy sequences of pad tokens up to the next multiple of kBucketTokens. The dummy
// sequences attend only to themselves and are left out of pooling, so they change nothing but
// the random numbers dropout draws (the embeddings, loss and gradients are those of the real
// batch). One graph per (pairs, bucket), captured the second time that shape is seen (the
// first runs the same code eagerly, as the warm-up capture needs); all graphs share one
// memory pool, which is safe because nothing a graph leaves behind is read after the step.
//
// For CUDA replicas with flash attention. With several ranks the
// gradient all-reduce stays outside the graph (its touched-row union changes shape every step)
// and runs after the replay: a replay runs no autograd hooks, so nothing overlaps backward.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "model/xlmr.h"

namespace sx::train {

struct Trainee;
struct HostBatch;

class StepGraphs {
 public:
  static constexpr int64_t kBucketTokens = 256;

  // `max_seqlen`: the longest text a batch may hold (data.max_len); fixed in the graphs.
  StepGraphs(int64_t max_seqlen, int32_t pad_id);
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

  // Zeroes the gradients, then forward, DBL loss and backward of `batch` on the current
  // stream's behalf, through the graph of the batch's shape. Returns the loss (a device
  // scalar, valid until the next call). Throws if a capture fails.
  torch::Tensor forward_backward(Trainee& t, const HostBatch& batch, double margin);

  int64_t captured() const;  // graphs captured so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sx::train

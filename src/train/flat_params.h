// Parameters and gradients laid out in flat contiguous buffers (llm.c style): every
// parameter and its gradient is a view into one buffer, so the all-reduce runs over a few
// large buckets and the optimizer steps over two tensors. The layout is in reverse
// registration order, the order in which backward produces gradients, so buckets complete
// front to back. `extra` float slots after the gradients ride along in the last bucket
// (the step's loss, so one collective carries both).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace sx::train {

class FlatParameters {
 public:
  struct Entry {
    std::string name;
    int64_t offset;
    int64_t numel;
    std::vector<int64_t> shape;
  };

  FlatParameters(torch::nn::Module& module, double bucket_mb, int64_t extra);

  torch::Tensor params() const { return params_; }                 // [N]
  torch::Tensor grads() const { return grads_.narrow(0, 0, n_); }  // [N]
  torch::Tensor extra() const { return grads_.narrow(0, n_, extra_); }
  const std::vector<torch::Tensor>& buckets() const { return buckets_; }  // cover grads + extra
  const std::vector<Entry>& entries() const { return entries_; }
  int64_t size() const { return n_; }

  void zero_grads();
  // Makes sure every parameter's gradient lives in the flat buffer (autograd accumulates
  // in place into the views; if it ever replaced one, copy it back).
  void collect_grads();

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<Entry> entries_;
  torch::Tensor params_, grads_;
  std::vector<torch::Tensor> buckets_;
  int64_t n_ = 0, extra_ = 0;
};

}  // namespace sx::train

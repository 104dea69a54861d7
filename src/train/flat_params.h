// Parameters and gradients laid out in flat contiguous buffers (llm.c style): every
// parameter and its gradient is a view into one buffer, so the all-reduce runs over a few
// large buckets and the optimizer steps over two tensors. The layout is in reverse
// registration order, the order in which backward produces gradients, so buckets complete
// front to back (train/reducer.h cuts the buckets); a group of parameters the model reads
// together (model: adjacent_parameters(), the fused q/k/v projection) is laid out back to back
// in its own order, at the place of its member that comes first.
//
// Anything stored over the flat layout (Adam's moments in a checkpoint) records the names in
// layout order (names()) and is read back by name (rearranged()), so a file stays usable when
// the layout changes.
//
// Behind the gradients ride a few named per-step scalars (StepSlot), so that the reduction
// that averages the gradients over ranks carries them too.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace sx::train {

// The scalars behind the gradients. Each rank writes its own value before the reduction;
// afterwards every rank holds the AVERAGE over ranks (like the gradients):
//   kLoss    the rank's mean loss over its batch -> the global mean loss (ranks hold equal
//            numbers of pairs);
//   kTokens  the rank's count of real (non-pad) tokens -> the mean per rank; the global
//            count is that times the world size (global_tokens()).
enum class StepSlot : int64_t { kLoss = 0, kTokens = 1 };
inline constexpr int64_t kStepSlots = 2;

class FlatParameters {
 public:
  struct Entry {
    std::string name;
    int64_t offset;
    int64_t numel;
    std::vector<int64_t> shape;
  };

  // `adjacent`: groups of parameter names laid out back to back in the given order.
  explicit FlatParameters(torch::nn::Module& module,
                          const std::vector<std::vector<std::string>>& adjacent = {});

  torch::Tensor params() const { return params_; }                 // [N]
  torch::Tensor grads() const { return grads_.narrow(0, 0, n_); }  // [N]
  // The StepSlot scalars, [kStepSlots] behind the gradients, float32 on the device.
  torch::Tensor slots() const { return grads_.narrow(0, n_, kStepSlots); }
  torch::Tensor slot(StepSlot s) const { return slots()[static_cast<int64_t>(s)]; }
  // In layout order: entries()[i] describes parameters()[i].
  const std::vector<Entry>& entries() const { return entries_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  int64_t size() const { return n_; }
  // The parameter names in layout order.
  std::vector<std::string> names() const;
  // The names in plain reverse registration order: the layout of checkpoints written before
  // they recorded theirs.
  const std::vector<std::string>& registration_order() const { return registration_order_; }
  // `values` [N], laid out parameter by parameter in `order` (names, each parameter's size as
  // here), rearranged into this layout. A UserError unless `order` names every parameter once.
  torch::Tensor rearranged(const torch::Tensor& values,
                           const std::vector<std::string>& order) const;

  // Zeroes the gradients and the slots.
  void zero_grads();
  // Makes sure every parameter's gradient lives in the flat buffer (autograd accumulates
  // in place into the views; if it ever replaced one, copy it back).
  void collect_grads();
  // The name of the first parameter whose gradient is defined but is not the view of its flat
  // slot ("" when every one is). A CUDA graph captured while autograd replaced a gradient would
  // write the replacement on every replay and leave the slot stale: checked after each capture.
  std::string stray_grad() const;

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<Entry> entries_;
  std::vector<std::string> registration_order_;
  torch::Tensor params_, grads_;
  int64_t n_ = 0;
};

// kTokens after the reduction, as the count over all ranks.
inline double global_tokens(double averaged_tokens, int64_t world) {
  return averaged_tokens * static_cast<double>(world);
}

}  // namespace sx::train

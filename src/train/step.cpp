#include "train/step.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

#ifdef SX_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

#include "core/rng.h"
#include "model/siamese_loss.h"

namespace sx::train {
namespace {

using Clock = std::chrono::steady_clock;

torch::Tensor host_tensor(const void* data, std::vector<int64_t> sizes, torch::ScalarType type,
                          bool pin) {
  torch::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(type).pinned_memory(pin));
  std::memcpy(t.data_ptr(), data, t.nbytes());
  return t;
}

// The batch's tensors on the device: int32 ids cross (asynchronously from pinned memory) and
// are widened there.
struct DeviceBatch {
  torch::Tensor ids, cu_seqlens, labels;
};

DeviceBatch to_device(const HostBatch& batch, const torch::Device& device) {
  DeviceBatch d;
  d.ids = batch.ids.to(device, /*non_blocking=*/true).to(torch::kLong);
  d.cu_seqlens = batch.cu_seqlens.to(device, true);
  d.labels = batch.labels.to(device, /*non_blocking=*/true);
  return d;
}

// A small device tensor copied to the host asynchronously (pinned memory on CUDA, an event
// after the copy), so that work queued after it runs while the host waits for the copy alone.
class HostCopy {
 public:
  HostCopy(const torch::Tensor& source, const torch::Device& device) {
    const bool cuda = device.is_cuda();
    host_ = torch::empty(source.sizes(),
                         torch::TensorOptions().dtype(source.scalar_type()).pinned_memory(cuda));
    host_.copy_(source, /*non_blocking=*/cuda);
#ifdef SX_WITH_CUDA
    if (cuda) {
      c10::cuda::CUDAGuard guard(device);  // an event belongs to the current device
      cudaEventCreateWithFlags(&done_, cudaEventDisableTiming);
      cudaEventRecord(done_, c10::cuda::getCurrentCUDAStream(device.index()).stream());
    }
#endif
  }
  ~HostCopy() {
#ifdef SX_WITH_CUDA
    if (done_) cudaEventDestroy(done_);
#endif
  }
  HostCopy(const HostCopy&) = delete;
  HostCopy& operator=(const HostCopy&) = delete;
  // Blocks until the copy is done; the values.
  const float* wait() {
#ifdef SX_WITH_CUDA
    if (done_) cudaEventSynchronize(done_);
#endif
    return host_.data_ptr<float>();
  }

 private:
  torch::Tensor host_;
#ifdef SX_WITH_CUDA
  cudaEvent_t done_ = nullptr;
#endif
};

// The loss of one micro-batch on the device, before scaling: forward and DBL loss.
torch::Tensor micro_loss(Trainee& t, const HostBatch& batch, const DeviceBatch& d, double margin) {
  model::PackedIds packed;
  packed.ids = d.ids;
  packed.cu_seqlens = d.cu_seqlens;
  packed.offsets = batch.text.offsets;
  packed.max_seqlen = batch.text.max_length();
  return model::pair_loss(*t.model, packed, d.labels, margin);
}

// [1] float on the device: whether the gradients hold a NaN or an infinity. With
// train.touched_rows_only, first records the word-embedding rows this step wrote (the reducer's
// union with several ranks, else this rank's `touched` ids): the only ones the check reads and
// the next step zeroes.
torch::Tensor grads_non_finite(Trainee& t, const std::vector<GradientReducer::TokenIds>& touched) {
  if (!t.touched_rows) return model::non_finite_flag(t.flat->grads());
  t.touched_rows->record(t.reducer ? t.reducer->reduced_rows() : t.touched_rows->rows_of(touched));
  return t.touched_rows->non_finite_flag();
}

}  // namespace

void zero_first_gradients(Trainee& t) {
  if (t.touched_rows)
    t.touched_rows->zero_dense();
  else
    t.flat->zero_grads();
}

HostBatch make_host_batch(data::TextBatch text, const torch::Device& device) {
  const bool pin = device.is_cuda();
#ifdef SX_WITH_CUDA
  // Pinning from this (prefetch) thread must use the replica's GPU, not create a context on
  // GPU 0 for every rank of the node.
  std::optional<c10::cuda::CUDAGuard> guard;
  if (pin) guard.emplace(device);
#endif
  HostBatch b;
  const int64_t pairs = text.pairs;
  b.ids = host_tensor(text.ids.data(), {text.tokens()}, torch::kInt, pin);
  std::vector<int32_t> cu(text.offsets.begin(), text.offsets.end());
  b.cu_seqlens = host_tensor(cu.data(), {text.sequences() + 1}, torch::kInt, pin);
  b.labels = host_tensor(text.labels.data(), {pairs}, torch::kFloat, pin);
  b.text = std::move(text);
  return b;
}

namespace {

void mark(PhaseTimer* timer, Phase p) {
  if (timer) timer->mark(p);
}

// train.touched_rows_only: the word-embedding rows the last step wrote are zeroed eagerly
// (their number changes every step, so a graph cannot hold them); the dense part is zeroed with
// the first micro-batch (zero_first_gradients).
void zero_last_rows(Trainee& t) {
  if (t.touched_rows) t.touched_rows->zero_rows();
}

// The sum over a step's micro-batches of loss / count (a device scalar) and of their real tokens.
struct Forward {
  torch::Tensor loss_sum;
  int64_t tokens = 0;
};

// CUDA graphs (train.cuda_graphs): one replay per micro-batch, the first from zeroed
// gradients; the graph fills its inputs. The split shows forward and backward as forward.
Forward replay_micro_batches(Trainee& t, const std::vector<HostBatch>& micro_batches,
                             const StepSettings& settings,
                             const std::vector<GradientReducer::TokenIds>& touched,
                             PhaseTimer* timer) {
  const size_t count = micro_batches.size();
  zero_last_rows(t);
  Forward f;
  for (size_t a = 0; a < count; ++a) {
    torch::manual_seed(a == 0 ? settings.dropout_seed : mix_seed({settings.dropout_seed, a}));
    const StepGraphs::MicroBatch micro{static_cast<int64_t>(a), static_cast<int64_t>(count)};
    // Read before the next replay: the graphs share one pool.
    torch::Tensor loss =
        t.graphs->forward_backward(t, micro_batches[a], settings.margin, micro).detach();
    f.loss_sum = a == 0 ? (count == 1 ? loss : loss.clone()) : f.loss_sum + loss;
    f.tokens += micro_batches[a].text.tokens();
  }
  // Several ranks: a replay runs no autograd hooks, so the reducer starts after it (the row
  // exchange on the host overlaps the replay on the device) and finish_step launches every
  // bucket, the all-reduce following backward; or, where the replay's graph holds the dense
  // buckets' all-reduces (train.graph_allreduce: inside), only the sparse rows and slots.
  if (t.reducer) t.reducer->begin_step(settings.step, touched, t.graphs->reduced_in_graph());
  mark(timer, Phase::kForward);
  return f;
}

// The eager step: each micro-batch's forward and backward accumulate into the flat gradients.
Forward run_micro_batches(Trainee& t, const std::vector<HostBatch>& micro_batches,
                          const StepSettings& settings,
                          const std::vector<GradientReducer::TokenIds>& touched,
                          PhaseTimer* timer) {
  const size_t count = micro_batches.size();
  std::vector<DeviceBatch> device_batches;
  for (const HostBatch& batch : micro_batches) device_batches.push_back(to_device(batch, t.device));
  mark(timer, Phase::kH2D);
  zero_last_rows(t);
  zero_first_gradients(t);
  Forward f;
  for (size_t a = 0; a < count; ++a) {
    const bool last = a + 1 == count;
    // Dropout randomness from (seed, rank, step, micro-batch) alone: a resumed run draws the
    // same.
    torch::manual_seed(a == 0 ? settings.dropout_seed : mix_seed({settings.dropout_seed, a}));
    // With several ranks the reducer's hooks launch the bucket all-reduces during the last
    // micro-batch's backward (the hooks are idle before begin_step).
    if (last && t.reducer) t.reducer->begin_step(settings.step, touched);
    torch::Tensor loss = micro_loss(t, micro_batches[a], device_batches[a], settings.margin);
    if (count > 1) loss = loss / static_cast<double>(count);  // the mean over the global batch
    if (last) mark(timer, Phase::kForward);
    loss.backward();  // accumulates into the flat gradient buffer
    f.loss_sum = a == 0 ? loss.detach() : f.loss_sum + loss.detach();
    f.tokens += micro_batches[a].text.tokens();
  }
  return f;
}

// The word-embedding rows `micro_batches` look up: their ids, and the pad row too where a graph
// pads with it.
std::vector<GradientReducer::TokenIds> lookups(const std::vector<HostBatch>& micro_batches,
                                               bool graphed) {
  static const std::vector<int32_t> pad_row{data::XlmrTokenizer::kPad};
  std::vector<GradientReducer::TokenIds> ids;
  for (const HostBatch& batch : micro_batches) {
    ids.emplace_back(batch.text.ids);
    if (graphed) ids.emplace_back(pad_row);
  }
  return ids;
}

// Keras Adam: in one pass, or with train.embedding_adam_overlap the rows the next step looks up
// first and the other embedding rows on a side stream.
void update_parameters(Trainee& t, const torch::Tensor& grads, const StepSettings& settings,
                       const torch::Tensor& non_finite) {
  if (!t.rows_adam) return t.adam->step(grads, settings.lr, non_finite);
  const std::vector<HostBatch>* next = settings.next_batches ? settings.next_batches() : nullptr;
  if (!next) return t.rows_adam->update(non_finite, settings.lr, nullptr);
  const std::vector<GradientReducer::TokenIds> ids = lookups(*next, t.graphs != nullptr);
  t.rows_adam->update(non_finite, settings.lr, &ids);
}

// The all-reduce (or, with one rank, gathering the gradients), the non-finite check and Keras
// Adam, with the step's one host sync.
StepResult reduce_and_update(Trainee& t, const Forward& f, const StepSettings& settings,
                             const std::vector<GradientReducer::TokenIds>& touched,
                             PhaseTimer* timer) {
  StepResult out;
  out.lr = settings.lr;
  torch::Tensor grads = t.flat->grads();
  {
    torch::NoGradGuard no_grad;
    t.flat->slot(StepSlot::kLoss).copy_(f.loss_sum);
    t.flat->slot(StepSlot::kTokens).fill_(static_cast<double>(f.tokens));
    const auto comm_start = Clock::now();  // from here on only the wait is exposed
    if (t.reducer)
      t.reducer->finish_step();  // averaged gradients and slots
    else
      t.flat->collect_grads();
    out.allreduce_s = std::chrono::duration<double>(Clock::now() - comm_start).count();
    mark(timer, Phase::kAllReduce);
    torch::Tensor slots = t.flat->slots();
    // A non-finite loss or gradient skips the update on the device: no host round trip first.
    torch::Tensor non_finite = grads_non_finite(t, touched).add_(model::non_finite_flag(slots));
    HostCopy stats(torch::cat({slots, non_finite}), t.device);  // loss, tokens, flag
    update_parameters(t, grads, settings, non_finite);
    // The step's one host sync: the 3 floats, while the optimizer's kernels run.
    const float* s = stats.wait();
    out.loss = s[static_cast<int>(StepSlot::kLoss)];
    out.tokens = global_tokens(s[static_cast<int>(StepSlot::kTokens)], t.world);
    out.applied = std::isfinite(out.loss) && s[kStepSlots] == 0.0f;
  }
  if (!out.applied) t.adam->note_skipped();  // iterations count applied updates only
  mark(timer, Phase::kOptimizer);
  return out;
}

}  // namespace

StepResult train_step(Trainee& t, const std::vector<HostBatch>& micro_batches,
                      const StepSettings& settings, PhaseTimer* timer) {
  TORCH_CHECK(!micro_batches.empty(), "train_step without a batch");
  mark(timer, Phase::kStart);
  const bool graphed = t.graphs != nullptr;
  if (graphed) mark(timer, Phase::kH2D);  // a graph copies its inputs itself
  // The word-embedding rows the micro-batches touch (the reducer reduces only their union).
  const std::vector<GradientReducer::TokenIds> touched = lookups(micro_batches, graphed);
  // The last step's deferred embedding rows: done before this step unless it may wait.
  if (t.rows_adam) t.rows_adam->before_step(touched);
  const Forward f = graphed ? replay_micro_batches(t, micro_batches, settings, touched, timer)
                            : run_micro_batches(t, micro_batches, settings, touched, timer);
  if (t.rows_adam) t.rows_adam->join();  // before the gradients are reduced and checked
  mark(timer, Phase::kBackward);
  return reduce_and_update(t, f, settings, touched, timer);
}

// ---- PhaseTimer

struct PhaseTimer::Impl {
  bool cuda = false;
  std::vector<Clock::time_point> wall;  // marks in order, kCount per step
#ifdef SX_WITH_CUDA
  std::vector<cudaEvent_t> events;
  c10::DeviceIndex device = 0;
#endif
};

PhaseTimer::PhaseTimer(const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  impl_->cuda = device.is_cuda();
#ifdef SX_WITH_CUDA
  impl_->device = device.index();
#endif
}

PhaseTimer::~PhaseTimer() {
#ifdef SX_WITH_CUDA
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);
#endif
}

void PhaseTimer::mark(Phase) {
#ifdef SX_WITH_CUDA
  if (impl_->cuda) {
    c10::cuda::CUDAGuard guard(impl_->device);  // an event belongs to the current device
    cudaEvent_t e;
    cudaEventCreate(&e);
    cudaEventRecord(e, c10::cuda::getCurrentCUDAStream(impl_->device).stream());
    impl_->events.push_back(e);
    return;
  }
#endif
  impl_->wall.push_back(Clock::now());
}

std::vector<std::pair<std::string, double>> PhaseTimer::averages_ms() {
  constexpr int kMarks = static_cast<int>(Phase::kCount);
  std::vector<double> at;  // milliseconds since the first mark
#ifdef SX_WITH_CUDA
  if (impl_->cuda) {
    for (cudaEvent_t e : impl_->events) {
      cudaEventSynchronize(e);
      float ms = 0;
      cudaEventElapsedTime(&ms, impl_->events.front(), e);
      at.push_back(ms);
    }
  }
#endif
  if (!impl_->cuda)
    for (const auto& w : impl_->wall)
      at.push_back(std::chrono::duration<double, std::milli>(w - impl_->wall.front()).count());
  static const char* names[] = {"h2d", "forward", "backward", "allreduce", "optimizer"};
  std::vector<double> sum(kMarks, 0.0);  // [0..4] phases, [5] host gap
  const size_t steps = at.size() / kMarks;
  for (size_t s = 0; s < steps; ++s) {
    const double* m = &at[s * kMarks];
    for (int p = 0; p + 1 < kMarks; ++p) sum[p] += m[p + 1] - m[p];
    if (s + 1 < steps) sum[kMarks - 1] += m[kMarks] - m[kMarks - 1];
  }
  std::vector<std::pair<std::string, double>> out;
  for (int p = 0; p + 1 < kMarks; ++p)
    out.emplace_back(names[p], steps ? sum[p] / static_cast<double>(steps) : 0.0);
  out.emplace_back("host_gap", steps > 1 ? sum[kMarks - 1] / static_cast<double>(steps - 1) : 0.0);
  return out;
}

}  // namespace sx::train

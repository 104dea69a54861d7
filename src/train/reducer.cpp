#include "train/reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>

#include "dist/deadline.h"
#include "dist/mpi_env.h"

namespace sx::train {

// Runs after autograd's gradient accumulator of one parameter has added this backward's
// gradient into the parameter's .grad (its slot in the flat buffer).
class GradientReducer::ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(GradientReducer* reducer, size_t param) : reducer_(reducer), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    reducer_->on_gradient_ready(param_);
    return outputs;
  }

 private:
  GradientReducer* reducer_;
  size_t param_;
};

GradientReducer::GradientReducer(FlatParameters& flat, dist::Communicator& comm,
                                 const dist::MpiEnv& env, ReducerOptions options)
    : flat_(flat),
      comm_(comm),
      env_(env),
      options_(std::move(options)),
      owner_(std::this_thread::get_id()) {
  const auto& entries = flat_.entries();
  for (size_t i = 0; i < entries.size(); ++i)
    if (!options_.sparse_rows_param.empty() && entries[i].name == options_.sparse_rows_param &&
        entries[i].shape.size() == 2)
      sparse_param_ = static_cast<int64_t>(i);
  cut_buckets(options_.bucket_mb);
  register_hooks();
}

GradientReducer::~GradientReducer() {
  for (auto& [node, key] : hooks_) node->del_post_hook(key);
}

// Whole parameters in layout order; a bucket closes once it reaches bucket_mb (a parameter
// larger than that gets one of its own). The sparse parameter is a bucket of its own.
void GradientReducer::cut_buckets(double bucket_mb) {
  const int64_t limit = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * (1 << 20) / 4));
  const auto& entries = flat_.entries();
  bucket_of_.resize(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const bool sparse = static_cast<int64_t>(i) == sparse_param_;
    if (buckets_.empty() || sparse || buckets_.back().sparse || buckets_.back().numel >= limit) {
      Bucket b;
      b.offset = entries[i].offset;
      b.sparse = sparse;
      buckets_.push_back(b);
    }
    buckets_.back().numel += entries[i].numel;
    ++buckets_.back().params;
    bucket_of_[i] = buckets_.size() - 1;
  }
  param_ready_.assign(entries.size(), 0);
}

void GradientReducer::register_hooks() {
  const auto& params = flat_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    // The variable holds its accumulator weakly: keep it alive with the hook on it.
    std::shared_ptr<torch::autograd::Node> accumulator =
        torch::autograd::impl::grad_accumulator(params[i]);
    TORCH_CHECK(accumulator, "parameter ", flat_.entries()[i].name, " has no gradient accumulator");
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<ReadyHook>(this, i));
    hooks_.emplace_back(std::move(accumulator), key);
  }
}

std::vector<std::pair<int64_t, int64_t>> GradientReducer::bucket_ranges() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& b : buckets_) out.emplace_back(b.offset, b.numel);
  return out;
}

void GradientReducer::reset_ready_locked() {
  std::fill(param_ready_.begin(), param_ready_.end(), 0);
  for (auto& b : buckets_) b.ready = 0, b.launched = false;
  next_ = 0;
}

void GradientReducer::begin_step(int64_t step, const std::vector<TokenIds>& token_ids,
                                 bool dense_in_graph) {
  std::lock_guard<std::mutex> lock(mutex_);
  TORCH_CHECK(!active_, "GradientReducer::begin_step twice without finish_step");
  dist::set_step(step);  // named by a collective that misses its deadline
  reset_ready_locked();
  stats_ = {};
  stats_.buckets = static_cast<int64_t>(buckets_.size());
  if (dense_in_graph) {  // the replay has run them, during its backward
    for (size_t i = 0; i < param_ready_.size(); ++i)
      if (!buckets_[bucket_of_[i]].sparse) param_ready_[i] = 1, ++buckets_[bucket_of_[i]].ready;
    for (auto& b : buckets_) {
      if (b.sparse) continue;
      b.launched = true;
      ++stats_.launched_in_backward;
      stats_.elements += b.numel;
    }
  }
  if (sparse_param_ >= 0) exchange_rows(token_ids);
  active_ = true;
}

void GradientReducer::begin_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  TORCH_CHECK(!active_, "GradientReducer::begin_capture during a step");
  reset_ready_locked();
  capturing_ = true;
  active_ = true;
}

void GradientReducer::end_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  TORCH_CHECK(capturing_, "GradientReducer::end_capture without begin_capture");
  for (size_t i = 0; i < param_ready_.size(); ++i) mark_ready_locked(i);
  launch_ready_locked(/*from_hook=*/false);
  TORCH_CHECK(next_ == buckets_.size(), "dense gradient buckets left unlaunched in the capture");
  const bool any_dense =
      std::any_of(buckets_.begin(), buckets_.end(), [](const Bucket& b) { return !b.sparse; });
  if (any_dense) comm_.join_stream();  // the comm stream forked only where a bucket launched
  capturing_ = false;
  active_ = false;
}

// The union over ranks of the rows touched, as a bitmap OR-ed over MPI on the host.
void GradientReducer::exchange_rows(const std::vector<TokenIds>& token_ids) {
  const int64_t rows = flat_.entries()[static_cast<size_t>(sparse_param_)].shape[0];
  std::vector<uint64_t> bits = row_bitmap(token_ids, rows, options_.sparse_rows_param);
  if (env_.world > 1) dist::allreduce_or(bits, "exchange of touched embedding rows");
  // No rows named anywhere: undefined, so the whole matrix is reduced rather than trust an
  // empty set.
  sparse_rows_ = row_indices(bits, flat_.grads().device());
}

std::string describe(const ReducerStats& stats) {
  std::string out = std::to_string(stats.buckets) + " buckets (" +
                    std::to_string(stats.launched_in_backward) + " launched during backward), ";
  if (stats.sparse_rows >= 0)
    out += std::to_string(stats.sparse_rows) + " of " + std::to_string(stats.sparse_rows_total) +
           " embedding rows, ";
  return out + std::to_string(stats.elements) + " elements";
}

void GradientReducer::on_gradient_ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!active_) return;  // a backward outside a training step (tests, diagnostics)
  mark_ready_locked(param);
  launch_ready_locked(/*from_hook=*/true);
}

void GradientReducer::mark_ready_locked(size_t param) {
  if (param_ready_[param]) return;
  param_ready_[param] = 1;
  // Autograd accumulates in place into the slot; had it replaced .grad, put it back first.
  torch::Tensor p = flat_.parameters()[param];
  const auto& e = flat_.entries()[param];
  torch::Tensor slot = flat_.grads().narrow(0, e.offset, e.numel);
  if (p.grad().defined() && p.grad().data_ptr() != slot.data_ptr()) {
    torch::NoGradGuard no_grad;
    slot.copy_(p.grad().reshape({-1}));
    p.mutable_grad() = slot.view(e.shape);
  }
  ++buckets_[bucket_of_[param]].ready;
}

void GradientReducer::launch_ready_locked(bool from_hook) {
  // MPI may be called only from its main thread; there the hook also lets MPI progress.
  const bool may_launch = comm_.any_thread() || std::this_thread::get_id() == owner_;
  if (!may_launch) return;
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params) {
    Bucket& bucket = buckets_[next_];
    const bool first = next_++ == 0;
    // Launched by a graph's replay (dense_in_graph), or the sparse one, left out of a capture.
    if (bucket.launched || (capturing_ && bucket.sparse)) continue;
    if (first)
      stats_.pending_at_first_launch = std::count(param_ready_.begin(), param_ready_.end(), 0);
    launch_locked(bucket);
    if (from_hook && !capturing_) ++stats_.launched_in_backward;
  }
  if (from_hook) comm_.progress();
}

void GradientReducer::launch_locked(Bucket& bucket) {
  torch::NoGradGuard no_grad;
  torch::Tensor region = flat_.grads().narrow(0, bucket.offset, bucket.numel);
  if (bucket.sparse && sparse_rows_.defined()) {
    const auto& shape = flat_.entries()[static_cast<size_t>(sparse_param_)].shape;
    comm_.all_reduce_average_rows(region.view(shape), sparse_rows_, options_.wire);
    stats_.sparse_rows = sparse_rows_.numel();
    stats_.sparse_rows_total = shape[0];
    stats_.elements += sparse_rows_.numel() * shape[1];
  } else {
    comm_.all_reduce_average(region, options_.wire);
    stats_.elements += bucket.numel;
  }
  bucket.launched = true;
}

void GradientReducer::finish_step() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TORCH_CHECK(active_, "GradientReducer::finish_step without begin_step");
    // Parameters that got no gradient this step (unused) hold zeros: they are final too.
    for (size_t i = 0; i < param_ready_.size(); ++i) mark_ready_locked(i);
    launch_ready_locked(/*from_hook=*/false);
    TORCH_CHECK(next_ == buckets_.size(), "gradient buckets left unlaunched");
    for (const Bucket& b : buckets_) TORCH_CHECK(b.launched, "a gradient bucket left unlaunched");
    // The step's scalars: always float32 (a bf16 token count would be off by tens).
    comm_.all_reduce_average(flat_.slots(), dist::WireType::kFloat32);
    stats_.elements += kStepSlots;
    active_ = false;
  }
  comm_.wait("gradient all-reduce");
}

}  // namespace sx::train

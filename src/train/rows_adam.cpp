#include "train/rows_adam.h"

#ifdef SX_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace sx::train {

struct RowsAdamOverlap::Side {
#ifdef SX_WITH_CUDA
  // A stream of its own (the pool's streams are shared round robin, so one could be the compute
  // stream itself, and the overlap silently serial).
  explicit Side(c10::DeviceIndex device) : stream(make_stream(device)) {}
  ~Side() {
    c10::cuda::CUDAGuard guard(stream.device_index());
    cudaStreamSynchronize(stream.stream());
    cudaStreamDestroy(stream.stream());
  }
  static c10::cuda::CUDAStream make_stream(c10::DeviceIndex device) {
    c10::cuda::CUDAGuard guard(device);
    cudaStream_t raw = nullptr;
    C10_CUDA_CHECK(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking));
    return c10::cuda::getStreamFromExternal(raw, device);
  }
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAEvent ready;  // the compute stream's part is queued before it
  at::cuda::CUDAEvent done;   // the side stream's part is done
#endif
};

RowsAdamOverlap::RowsAdamOverlap(FlatParameters& flat, TouchedRows& rows, model::KerasAdam& adam,
                                 bool late_join)
    : flat_(flat), rows_(rows), adam_(adam), late_join_(late_join) {
  block_.offset = rows.offset();
  block_.rows = rows.rows();
  block_.width = rows.width();
#ifdef SX_WITH_CUDA
  if (flat.grads().is_cuda()) side_ = std::make_unique<Side>(flat.grads().device().index());
#endif
}

RowsAdamOverlap::~RowsAdamOverlap() = default;

torch::Tensor RowsAdamOverlap::consumed_rows() const {
  const torch::Device device = flat_.grads().device();
  const torch::Tensor& recorded = rows_.recorded();
  if (!recorded.defined())
    return torch::ones({block_.rows}, torch::dtype(torch::kByte).device(device));
  torch::Tensor consume = torch::zeros({block_.rows}, torch::dtype(torch::kByte).device(device));
  if (recorded.numel() > 0) consume.index_fill_(0, recorded, 1);
  return consume;
}

torch::Tensor RowsAdamOverlap::first_rows(const TokenIdLists* next) {
  const torch::Device device = flat_.grads().device();
  first_bits_.clear();
  if (!next) return torch::ones({block_.rows}, torch::dtype(torch::kByte).device(device));
  first_bits_ = row_bitmap(*next, block_.rows, rows_.name());
  const bool cuda = device.is_cuda();
  torch::Tensor host =
      torch::zeros({block_.rows}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(cuda));
  uint8_t* first = host.data_ptr<uint8_t>();
  for_each_set_bit(first_bits_, [first](size_t row) { first[row] = 1; });
  // From pinned memory, asynchronously: a pageable copy would wait for the stream to drain.
  return cuda ? host.to(device, /*non_blocking=*/true) : host;
}

void RowsAdamOverlap::update(const torch::Tensor& found_inf, double lr, const TokenIdLists* next) {
  join();  // the last step's rows first (train_step has joined already)
  torch::NoGradGuard no_grad;
  torch::Tensor grads = flat_.grads();
  // The masks first: a bad id in `next` throws before anything is updated.
  const torch::Tensor first = first_rows(next);
  const torch::Tensor consume = consumed_rows();
  const double alpha = adam_.step_outside(grads, lr, found_inf, block_);
  adam_.update_rows(grads, alpha, found_inf, block_, first, /*selected=*/true, consume);
  if (next) defer(found_inf, alpha, first, consume);
  // Every row that held gradient is zero now (or will be once the deferred part has run, which
  // the next step's all-reduce and check wait for): nothing left to zero or check.
  rows_.record(torch::empty({0}, torch::dtype(torch::kLong).device(grads.device())));
}

void RowsAdamOverlap::defer(const torch::Tensor& found_inf, double alpha,
                            const torch::Tensor& first, const torch::Tensor& consume) {
#ifdef SX_WITH_CUDA
  if (side_) {
    const c10::cuda::CUDAStream compute =
        c10::cuda::getCurrentCUDAStream(side_->stream.device_index());
    side_->ready.record(compute);
    side_->ready.block(side_->stream);
    {
      c10::cuda::CUDAStreamGuard guard(side_->stream);
      torch::Tensor grads = flat_.grads();
      adam_.update_rows(grads, alpha, found_inf, block_, first, /*selected=*/false, consume);
    }
    // Made on the compute stream, read on the side one: not reused before the side is done.
    for (torch::Tensor t : {found_inf, first, consume})
      if (t.defined()) t.record_stream(side_->stream.unwrap());
    side_->done.record(side_->stream);
    deferred_ = [this] {
      side_->done.block(c10::cuda::getCurrentCUDAStream(side_->stream.device_index()));
    };
    return;
  }
#endif
  // The CPU: the update runs at join(), as late as a GPU's side stream could finish it.
  deferred_ = [this, found_inf, alpha, first, consume] {
    torch::NoGradGuard no_grad;
    torch::Tensor grads = flat_.grads();
    adam_.update_rows(grads, alpha, found_inf, block_, first, /*selected=*/false, consume);
  };
}

void RowsAdamOverlap::before_step(const TokenIdLists& ids) {
  if (!pending()) return;
  if (!late_join_) return join();
  for (const auto& list : ids)
    for (int32_t id : list.get()) {
      const bool first = id >= 0 && id < block_.rows &&
                         (first_bits_[static_cast<size_t>(id) / 64] >> (id % 64) & 1) != 0;
      if (!first) return join();
    }
}

void RowsAdamOverlap::join() {
  if (!deferred_) return;
  auto deferred = std::move(deferred_);
  deferred_ = nullptr;
  deferred();
}

}  // namespace sx::train

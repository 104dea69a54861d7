// NCCL for CUDA tensors (built only when libtorch has CUDA). The unique id travels over MPI;
// creating the communicator and every wait are under the collective deadline (deadline.h).
// Collectives run on a communication stream of their own, ordered after the caller's current
// stream by an event, so gradient buckets all-reduce while backward goes on; they may be
// issued from autograd's device thread, also while autograd's backward is being captured into
// a CUDA graph (train.graph_allreduce: inside): the event makes the comm stream a fork of the
// capture, join_stream() joins it back, and nothing in between syncs, queries events or
// polls NCCL's errors. wait() polls a CUDA event on that stream together
// with ncclCommGetAsyncError and the deadline, aborts the communicator and the job when
// either says a peer is gone, and then orders the caller's stream after the collectives.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/deadline.h"

// Averaging inside the collective (ncclAvg) needs NCCL 2.10; older ones sum and divide.
#if defined(NCCL_VERSION_CODE) && defined(NCCL_VERSION)
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
#define SX_NCCL_HAS_AVG 1
#endif
#endif
#ifndef SX_NCCL_HAS_AVG
#define SX_NCCL_HAS_AVG 0
#endif
// nccl.h declares ncclBfloat16 when cuda_bf16.h is there (CUDA 11+).
#if defined(__CUDA_BF16_TYPES_EXIST__)
#define SX_NCCL_HAS_BF16 1
#else
#define SX_NCCL_HAS_BF16 0
#endif

namespace sx::dist {
namespace {

void check_nccl(ncclResult_t result, const char* what, int rank) {
  if (result != ncclSuccess && result != ncclInProgress) {
    spdlog::critical("rank {}: NCCL {} failed: {}", rank, what, ncclGetErrorString(result));
    abort_job(kExitInternal);
  }
}

void check_cuda(cudaError_t result, const char* what, int rank) {
  if (result != cudaSuccess) {
    spdlog::critical("rank {}: CUDA {} failed: {}", rank, what, cudaGetErrorString(result));
    abort_job(kExitInternal);
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const torch::Device& device, const MpiEnv& env)
      : device_(device),
        env_(env),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
    c10::cuda::CUDAGuard guard(device_);
    ncclUniqueId id;
    if (env_.rank == 0) check_nccl(ncclGetUniqueId(&id), "get unique id", env_.rank);
    broadcast_bytes(&id, sizeof id, 0, "broadcast of the NCCL unique id");
    create_comm(id);
    check_cuda(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming), "event create",
               env_.rank);
    check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "event create", env_.rank);
    check_cuda(cudaEventCreateWithFlags(&joined_, cudaEventDisableTiming), "event create",
               env_.rank);
    int version = 0;
    ncclGetVersion(&version);
    spdlog::info("NCCL {} communicator on {} (rank {}/{}), average {}", version, device_.str(),
                 env_.rank, env_.world, SX_NCCL_HAS_AVG ? "in the collective" : "by division");
  }

  ~NcclCommunicator() override {
    cudaEventDestroy(queued_);
    cudaEventDestroy(done_);
    cudaEventDestroy(joined_);
    ncclCommDestroy(comm_);
  }

  std::string name() const override { return "nccl"; }
  bool any_thread() const override { return true; }

  void all_reduce_average(const torch::Tensor& tensor, WireType wire) override {
    check_float(tensor);
    on_comm_stream({tensor}, [&] { average(tensor, wire); });
  }

  void all_reduce_average_rows(const torch::Tensor& matrix, const torch::Tensor& rows,
                               WireType wire) override {
    check_float(matrix);
    TORCH_CHECK(matrix.dim() == 2 && rows.scalar_type() == torch::kLong && rows.is_cuda(),
                "row all-reduce needs a 2-D matrix and int64 CUDA rows");
    if (rows.numel() == 0) return;
    on_comm_stream({matrix, rows}, [&] {
      torch::NoGradGuard no_grad;
      torch::Tensor compact = matrix.index_select(0, rows);  // allocated on the comm stream
      average(compact, wire);
      matrix.index_copy_(0, rows, compact);
    });
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    TORCH_CHECK(tensor.is_cuda() && tensor.is_contiguous(),
                "NCCL broadcast needs a contiguous CUDA tensor");
    on_comm_stream({tensor}, [&] {
      check_nccl(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.nbytes(), ncclUint8,
                               root, comm_, stream_.stream()),
                 "broadcast", env_.rank);
    });
    wait("broadcast of a " + std::to_string(tensor.numel()) + "-element tensor");
  }

  void join_stream() override {
    std::lock_guard<std::mutex> lock(mutex_);
    c10::cuda::CUDAGuard guard(device_);
    check_cuda(cudaEventRecord(joined_, stream_.stream()), "event record", env_.rank);
    check_cuda(
        cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(device_.index()).stream(), joined_, 0),
        "stream wait", env_.rank);
  }

  void wait(const std::string& what) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_) return;
    c10::cuda::CUDAGuard guard(device_);
    check_cuda(cudaEventRecord(done_, stream_.stream()), "event record", env_.rank);
    auto done = [&] {
      const cudaError_t state = cudaEventQuery(done_);
      if (state == cudaSuccess) return true;
      if (state != cudaErrorNotReady) check_cuda(state, "event query", env_.rank);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) {
        spdlog::critical(
            "rank {}: the {} {} failed: {}; aborting the NCCL communicator and the job", env_.rank,
            what, where(), ncclGetErrorString(async));
        ncclCommAbort(comm_);
        abort_job(kExitInternal);
      }
      return false;
    };
    await(what, done, [this] { ncclCommAbort(comm_); });
    // The event has completed, so this costs nothing; it keeps the order explicit should the
    // host-side poll ever be moved to a watchdog thread.
    check_cuda(
        cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(device_.index()).stream(), done_, 0),
        "stream wait", env_.rank);
    pending_ = false;
  }

 private:
  // ncclCommInitRank blocks until every rank has called it and has no timeout: it runs on a
  // thread of its own while this one waits for it under the deadline (on expiry the job ends;
  // the stuck thread goes with the process).
  void create_comm(const ncclUniqueId& id) {
    std::atomic<bool> created{false};
    ncclResult_t result = ncclSuccess;
    std::thread init([&] {
      c10::cuda::CUDAGuard guard(device_);
      result = ncclCommInitRank(&comm_, env_.world, id, env_.rank);
      created = true;
    });
    await("creation of the NCCL communicator", [&] { return created.load(); });
    init.join();
    check_nccl(result, "communicator init", env_.rank);
  }

  static void check_float(const torch::Tensor& tensor) {
    TORCH_CHECK(tensor.is_cuda() && tensor.is_contiguous() && tensor.scalar_type() == torch::kFloat,
                "NCCL all-reduce needs a contiguous float32 CUDA tensor");
  }

  // Runs `body` with the comm stream current, after the work queued so far on the calling
  // thread's current stream. `used` were made on other streams: the caching allocator must
  // not hand their memory out again before the comm stream is done with them.
  template <class Body>
  void on_comm_stream(std::initializer_list<torch::Tensor> used, Body body) {
    std::lock_guard<std::mutex> lock(mutex_);
    c10::cuda::CUDAGuard guard(device_);
    auto caller = c10::cuda::getCurrentCUDAStream(device_.index());
    check_cuda(cudaEventRecord(queued_, caller.stream()), "event record", env_.rank);
    check_cuda(cudaStreamWaitEvent(stream_.stream(), queued_, 0), "stream wait", env_.rank);
    for (const auto& t : used)
      c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    c10::cuda::CUDAStreamGuard on_comm(stream_);
    body();
    pending_ = true;
  }

  void all_reduce(void* data, int64_t count, ncclDataType_t type, ncclRedOp_t op) {
    check_nccl(
        ncclAllReduce(data, data, static_cast<size_t>(count), type, op, comm_, stream_.stream()),
        "all-reduce", env_.rank);
  }

  // In place on the comm stream (current inside on_comm_stream).
  void average(const torch::Tensor& tensor, WireType wire) {
    torch::NoGradGuard no_grad;
#if SX_NCCL_HAS_AVG
    const ncclRedOp_t op = ncclAvg;
#else
    const ncclRedOp_t op = ncclSum;
#endif
    torch::Tensor reduced = tensor;
    if (wire == WireType::kBFloat16) {
#if SX_NCCL_HAS_BF16
      reduced = tensor.to(torch::kBFloat16);  // scratch, allocated on the comm stream
      all_reduce(reduced.data_ptr(), reduced.numel(), ncclBfloat16, op);
#else
      throw UserError("dist.grad_dtype: bf16 needs NCCL built with CUDA 11 or later; use fp32");
#endif
    } else {
      all_reduce(tensor.data_ptr(), tensor.numel(), ncclFloat, op);
    }
    if (!SX_NCCL_HAS_AVG) reduced.div_(static_cast<double>(env_.world));
    if (reduced.data_ptr() != tensor.data_ptr()) tensor.copy_(reduced);
  }

  torch::Device device_;
  MpiEnv env_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t queued_ = nullptr, done_ = nullptr, joined_ = nullptr;
  bool pending_ = false;
  std::mutex mutex_;  // the engine's device thread issues, the main thread waits
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device& device,
                                                     const MpiEnv& env) {
  return std::make_unique<NcclCommunicator>(device, env);
}

}  // namespace sx::dist

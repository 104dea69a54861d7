// NCCL for CUDA tensors (built only when libtorch has CUDA). The unique id travels over MPI;
// collectives run on the replica's current CUDA stream; wait() polls a CUDA event together
// with ncclCommGetAsyncError and the deadline, and aborts the communicator and the job when
// either says a peer is gone.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"

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
  NcclCommunicator(const torch::Device& device, const MpiEnv& env, double timeout)
      : device_(device), env_(env), timeout_(timeout) {
    c10::cuda::CUDAGuard guard(device_);
    ncclUniqueId id;
    if (env_.rank == 0) check_nccl(ncclGetUniqueId(&id), "get unique id", env_.rank);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    check_nccl(ncclCommInitRank(&comm_, env_.world, id, env_.rank), "communicator init", env_.rank);
    check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "event create", env_.rank);
    int version = 0;
    ncclGetVersion(&version);
    spdlog::info("NCCL {} communicator on {} (rank {}/{})", version, device_.str(), env_.rank,
                 env_.world);
  }

  ~NcclCommunicator() override {
    cudaEventDestroy(done_);
    ncclCommDestroy(comm_);
  }

  std::string name() const override { return "nccl"; }

  void all_reduce_sum(torch::Tensor& tensor) override {
    TORCH_CHECK(tensor.is_cuda() && tensor.is_contiguous() && tensor.scalar_type() == torch::kFloat,
                "NCCL all-reduce needs a contiguous float32 CUDA tensor");
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_nccl(
        ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                      ncclFloat, ncclSum, comm_, stream),
        "all-reduce", env_.rank);
    pending_ = true;
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    TORCH_CHECK(tensor.is_cuda() && tensor.is_contiguous(),
                "NCCL broadcast needs a contiguous CUDA tensor");
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_nccl(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.nbytes(), ncclUint8, root,
                             comm_, stream),
               "broadcast", env_.rank);
    pending_ = true;
    wait("broadcast");
  }

  void wait(const std::string& what) override {
    if (!pending_) return;
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_cuda(cudaEventRecord(done_, stream), "event record", env_.rank);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    while (true) {
      cudaError_t state = cudaEventQuery(done_);
      if (state == cudaSuccess) break;
      if (state != cudaErrorNotReady) check_cuda(state, "event query", env_.rank);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      const bool late = std::chrono::steady_clock::now() > deadline;
      if (async != ncclSuccess || late) {
        spdlog::critical("rank {}: {} {}; aborting the NCCL communicator and the job", env_.rank,
                         what,
                         late ? "did not complete within dist.collective_timeout"
                              : std::string("failed: ") + ncclGetErrorString(async));
        ncclCommAbort(comm_);
        abort_job(kExitInternal);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    pending_ = false;
  }

 private:
  torch::Device device_;
  MpiEnv env_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t done_ = nullptr;
  bool pending_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device& device, const MpiEnv& env,
                                                     double timeout_seconds) {
  return std::make_unique<NcclCommunicator>(device, env, timeout_seconds);
}

}  // namespace sx::dist

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"

namespace sx::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device& device, const MpiEnv& env,
                                                     double timeout_seconds);

namespace {

// CPU tensors over MPI: non-blocking all-reduces, completed by polling in wait() so a
// deadline can be enforced.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const MpiEnv& env, double timeout) : env_(env), timeout_(timeout) {}

  std::string name() const override { return "mpi"; }

  void all_reduce_sum(torch::Tensor& tensor) override {
    TORCH_CHECK(
        tensor.device().is_cpu() && tensor.is_contiguous() && tensor.scalar_type() == torch::kFloat,
        "MPI all-reduce needs a contiguous float32 CPU tensor");
    if (env_.world == 1) return;
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, tensor.data_ptr<float>(), static_cast<int>(tensor.numel()),
                   MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request);
    pending_.push_back(request);
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    TORCH_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(),
                "MPI broadcast needs a contiguous CPU tensor");
    if (env_.world == 1) return;
    MPI_Bcast(tensor.data_ptr(), static_cast<int>(tensor.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD);
  }

  void wait(const std::string& what) override {
    if (pending_.empty()) return;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    int done = 0;
    while (true) {
      MPI_Testall(static_cast<int>(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE);
      if (done) break;
      if (std::chrono::steady_clock::now() > deadline) {
        spdlog::critical(
            "rank {}: {} did not complete within dist.collective_timeout ({:.0f} s); "
            "a peer is gone or stuck. Aborting the job.",
            env_.rank, what, timeout_);
        abort_job(kExitInternal);
      }
      std::this_thread::yield();
    }
    pending_.clear();
  }

 private:
  MpiEnv env_;
  double timeout_;
  std::vector<MPI_Request> pending_;
};

}  // namespace

std::unique_ptr<Communicator> make_communicator(const std::string& backend,
                                                const torch::Device& device, const MpiEnv& env,
                                                double timeout_seconds) {
  const bool gpu = device.is_cuda();
  std::string chosen = backend == "auto" ? (gpu ? "nccl" : "mpi") : backend;
  if (chosen == "nccl") {
    if (!gpu)
      throw UserError(
          "dist.backend: nccl needs the replica on a GPU (model.device); use mpi on CPU");
    return make_nccl_communicator(device, env, timeout_seconds);
  }
  if (gpu)
    throw UserError("dist.backend: mpi all-reduces CPU tensors, but the replica is on " +
                    device.str() + "; use nccl or auto");
  return std::make_unique<MpiCommunicator>(env, timeout_seconds);
}

#ifndef SX_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device&, const MpiEnv&, double) {
  throw UserError("dist.backend: this build has no NCCL (libtorch without CUDA); use mpi");
}
#endif

}  // namespace sx::dist

// Gradient collectives over a replica's tensors: NCCL for CUDA tensors, MPI for CPU ones.
// Collectives may run asynchronously; wait() blocks until all issued ones are done and
// enforces the per-collective deadline (dist.collective_timeout): NCCL and MPI have no
// timeout of their own, so a stuck peer would otherwise hang the job forever.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "dist/mpi_env.h"

namespace sx::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  // Sums a contiguous float tensor over all ranks, in place (may return before it is done).
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
  // Copies rank `root`'s tensor to every rank, in place (blocking).
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Waits for every collective issued so far. On a deadline overrun or a backend error,
  // logs which rank and `what` (e.g. "all-reduce of step 42") and aborts the job.
  virtual void wait(const std::string& what) = 0;
};

// dist.backend (auto|nccl|mpi) for a replica on `device`; throws UserError for impossible
// combinations (nccl on CPU, nccl without NCCL support in this build).
std::unique_ptr<Communicator> make_communicator(const std::string& backend,
                                                const torch::Device& device, const MpiEnv& env,
                                                double timeout_seconds);

}  // namespace sx::dist

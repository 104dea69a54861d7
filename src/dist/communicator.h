// Gradient collectives over a replica's tensors: NCCL for CUDA tensors, MPI for CPU ones.
// Collectives may run asynchronously; wait() blocks until all issued ones are done and
// enforces the per-collective deadline (dist.collective_timeout, deadline.h): NCCL and MPI
// have no timeout of their own, so a stuck peer would otherwise hang the job forever.
//
// Ordering: every rank must issue the same collectives in the same order. On CUDA a
// collective runs on the communicator's own stream, after the work queued so far on the
// calling thread's current stream (an event orders them), so it overlaps later compute;
// wait() makes the caller's current stream wait for it again.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/config.h"
#include "dist/mpi_env.h"

namespace sx::dist {

// What a gradient all-reduce puts on the wire (dist.grad_dtype). kBFloat16 halves the bytes:
// the float32 values are rounded to bf16 (8 significant bits), summed in bf16 by the
// collective, and the bf16 average is widened back into the float32 tensor.
using sx::WireType;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  // Averages a contiguous float32 tensor over all ranks, in place (may return before it is
  // done; NCCL averages inside the collective, MPI divides after it).
  virtual void all_reduce_average(const torch::Tensor& tensor, WireType wire) = 0;
  // Averages the rows `rows` (int64, on the matrix's device) of a contiguous 2-D float32
  // `matrix`; only those rows cross the wire. The caller guarantees that every other row is
  // zero on every rank (so its average is zero too and it is left as it is), and keeps
  // `rows` alive until wait().
  virtual void all_reduce_average_rows(const torch::Tensor& matrix, const torch::Tensor& rows,
                                       WireType wire) = 0;
  // Whether the collectives above may be issued from a thread other than the one that
  // created the communicator (autograd's device threads). MPI may not (MPI_THREAD_FUNNELED).
  virtual bool any_thread() const = 0;
  // Lets issued collectives progress without blocking (MPI moves non-blocking collectives
  // only inside MPI calls); a no-op where the network progresses on its own.
  virtual void progress() {}
  // Makes the caller's current stream wait for the collectives issued so far, without
  // blocking the host and without the checks of wait(): what a CUDA graph's capture ends with
  // when collectives were captured on the communication stream (joining that stream's branch
  // back into the graph). No host sync, event query or error poll: all are illegal during a
  // capture; the next wait() still owes them. A no-op where collectives run on the host (MPI).
  virtual void join_stream() {}
  // Copies rank `root`'s tensor to every rank, in place (blocking, under the deadline).
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Waits for every collective issued so far. On a deadline overrun or a backend error,
  // logs which rank, `what` (e.g. "gradient all-reduce") and the step, and aborts the job.
  virtual void wait(const std::string& what) = 0;
};

// Whether this build has the NCCL communicator (libtorch with CUDA).
bool nccl_compiled();

// dist.backend (auto|nccl|mpi) for a replica on `device`; throws UserError for impossible
// combinations (nccl on CPU, nccl without NCCL support in this build). Creating a NCCL
// communicator is a collective too, under the same deadline.
std::unique_ptr<Communicator> make_communicator(Backend backend, const torch::Device& device,
                                                const MpiEnv& env);

}  // namespace sx::dist

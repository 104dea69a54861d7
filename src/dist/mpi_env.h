// MPI bootstrap and the small control-plane collectives (CPU, MPI) that keep ranks in step:
// agreeing on stop decisions, broadcasting rank 0's choices, agreeing on start-up.
// Rank, world size and local rank always come from MPI (Slurm's SLURM_PROCID is stale
// under mpirun); the local rank is the rank within MPI_Comm_split_type(SHARED). The session
// also learns every rank's host (peers.h).
//
// Every collective here is made by all ranks in the same order. Each waits at most
// dist.collective_timeout for its peers (deadline.h): past it the rank names the collective
// (`what`, e.g. "stop-flag reduction") and the step, and ends the job. Buffers of any size
// travel, in pieces where MPI's int counts would overflow (chunks.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sx::dist {

struct MpiEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  int local_world = 1;
};

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  const MpiEnv& env() const { return env_; }

 private:
  MpiEnv env_;
};

// Ends every rank of the job now (MPI_Abort); use when a rank cannot go on and the others
// may be waiting for it in a collective. This rank exits with `exit_code` within 3 s even when
// MPI_Abort does not return (its runtime cut off from the others).
[[noreturn]] void abort_job(int exit_code);
// abort_job for a rank whose work threw `e`: says "siamese-xlmr: error: [rank R] ..." on stderr
// (failure_of: one line) and ends the job with its exit code.
[[noreturn]] void abort_job_for(const std::exception& e, int rank);

// Element-wise max over ranks (stop flags, counters).
std::vector<int64_t> allreduce_max(std::vector<int64_t> values, const std::string& what);
// Sum over ranks.
std::vector<double> allreduce_sum(std::vector<double> values, const std::string& what);
// Bitwise OR over ranks, in place (sets of row ids as bitmaps).
void allreduce_or(std::vector<uint64_t>& words, const std::string& what);
// Rank `root`'s values on every rank (the others' are resized to fit).
void broadcast(std::vector<double>& values, int root, const std::string& what);
void broadcast(std::vector<int64_t>& values, int root, const std::string& what);
void broadcast(std::string& text, int root, const std::string& what);
// Rank `root`'s `bytes` bytes at `data` on every rank (each rank passes a buffer that large).
void broadcast_bytes(void* data, int64_t bytes, int root, const std::string& what);
void barrier(const std::string& what);
// Every rank's floats, concatenated in rank order on `root` (others get {}).
std::vector<float> gather(const std::vector<float>& local, int root, const std::string& what);
// Every rank's text, in rank order, on `root` (others get {}).
std::vector<std::string> gather(const std::string& local, int root, const std::string& what);
// Every rank's rows of `cols` floats, concatenated in rank order on `root` (others get {}).
// Counts travel in rows (one MPI datatype per row), so the total may pass 2^31 floats; a
// rank's share must stay under 2^31 rows.
std::vector<float> gather_rows(const std::vector<float>& local, int64_t cols, int root,
                               const std::string& what);

// How a start-up phase that every rank runs (configuration, run directory, data, model)
// ended on one rank: code 0, or a failure's exit code and its one-line message.
struct Outcome {
  int code = kExitOk;
  std::string message;
};
// Runs `phase`; an exception becomes the outcome (UserError: kExitUserError with its
// message; anything else kExitInternal, "internal error: ...").
Outcome attempt(const std::function<void()>& phase);
// The job's outcome of a phase, the same on every rank, so that no rank goes on into a
// collective that a failed rank will never join: 0 when all ranks succeeded, else the exit
// code of the lowest failing rank. Rank 0 prints each distinct message once, on stderr,
// naming the ranks that had it ("siamese-xlmr: error: rank 1: ...", "ranks 0, 2: ..."); a
// message every rank had is printed once without ranks, as a one-rank job prints it.
int agree(const Outcome& mine, const std::string& what);

// (name, value) pairs that must be the same on every rank: the program version, the
// configuration's keys, fingerprints of the input files.
using Items = std::vector<std::pair<std::string, std::string>>;
// Compares every rank's items with rank 0's (a hash first; the lists only on a mismatch).
// Returns 0 when they agree, else kExitUserError on every rank, rank 0 having printed for
// each differing rank its first difference ("rank 1: config key train.lr_max differs from
// rank 0's (0.002 vs 0.001)").
int agree_on_items(const Items& items, const std::string& what);
// The first difference of `mine` from `root`'s, as agree_on_items prints it ("" if none).
std::string describe_difference(const Items& mine, const Items& root);

}  // namespace sx::dist

// MPI bootstrap and the small control-plane collectives (CPU, MPI) that keep ranks in step:
// agreeing on stop decisions, broadcasting rank 0's choices, reporting setup failures.
// Rank, world size and local rank always come from MPI (Slurm's SLURM_PROCID is stale
// under mpirun); the local rank is the rank within MPI_Comm_split_type(SHARED).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
// may be waiting for it in a collective.
[[noreturn]] void abort_job(int exit_code);

// Element-wise max over ranks (stop flags, counters).
std::vector<int64_t> allreduce_max(std::vector<int64_t> values);
// Sum over ranks.
std::vector<double> allreduce_sum(std::vector<double> values);
// Rank `root`'s values on every rank.
void broadcast(std::vector<double>& values, int root);
void broadcast(std::vector<int64_t>& values, int root);
void broadcast(std::string& text, int root);
void barrier();
// Bitwise OR over ranks, in place (sets of row ids as bitmaps). Waits at most
// `timeout_seconds`; past it logs `what` and aborts the job, like a stuck gradient collective.
void allreduce_or(std::vector<uint64_t>& words, double timeout_seconds, const std::string& what);
// Every rank's floats, concatenated in rank order on `root` (others get {}).
std::vector<float> gather(const std::vector<float>& local, int root);
// Every rank's rows of `cols` floats, concatenated in rank order on `root` (others get {}).
// Counts travel in rows (one MPI datatype per row), so the total may pass 2^31 floats; a
// rank's share must stay under 2^31 rows.
std::vector<float> gather_rows(const std::vector<float>& local, int64_t cols, int root);

// After a phase every rank runs (setup): true when all ranks succeeded. Otherwise the
// lowest failing rank's message is returned in `message` on every rank.
bool all_succeeded(bool ok, std::string& message);

}  // namespace sx::dist

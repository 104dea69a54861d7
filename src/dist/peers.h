// The job's ranks as hosts: which host each rank runs on (learned when the MPI session
// starts), and, when a collective is past its deadline, which ranks still answer, so that the
// rank ending the job can say whom it lost ("ranks 2, 3 on host n2").
#pragma once

#include <string>
#include <vector>

namespace sx::dist {

// Collective, once, right after MPI_Init (MpiSession): every rank's host name, and a
// communicator of its own for silent_ranks(). Without it the functions below know no hosts
// and silent_ranks() finds nobody silent.
void learn_peers();
// Before MPI_Finalize.
void forget_peers();

// This process's host name (gethostname).
std::string host_name();
// Every rank's host name, in rank order ({} before learn_peers).
const std::vector<std::string>& rank_hosts();

// "rank 2 on host n2", "ranks 2, 3 on host n2, ranks 5-7 on host n3": ranks grouped by host,
// in rank order (without hosts when they are unknown).
std::string describe_ranks(const std::vector<int>& ranks);
// "4 ranks on 2 hosts: n1 ranks 0, 1; n2 ranks 2, 3" (the first 64 hosts; launch/run.sh reads
// it to name the ranks of a host Open MPI lost).
std::string describe_layout();

// Tells every other rank that this one is alive and listens up to `seconds` for theirs;
// returns the ranks not heard from, in order. Every rank that reaches a collective's deadline
// calls it, so the peers stuck in the same collective answer within moments of each other; a
// rank that is gone (host down, cut off) or busy elsewhere stays silent. Each call is a round
// of its own (every rank counts its calls): a late answer to an earlier round is not taken
// for this one, as long as the ranks call it equally often (once, before they end the job).
std::vector<int> silent_ranks(double seconds);

}  // namespace sx::dist

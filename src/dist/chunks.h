// MPI counts and displacements are int: a buffer of 2^31 elements or more (a large model's
// optimizer state, the embeddings of a large test set) travels in pieces. The planning is
// here, apart from MPI, so that tests can check it with a tiny piece limit.
#pragma once

#include <cstdint>
#include <vector>

namespace sx::dist {

// The most elements one MPI call carries (INT_MAX); tests lower it to exercise the pieces.
int64_t max_mpi_count();
void set_max_mpi_count_for_tests(int64_t count);

// [offset, offset + count) pieces of at most `limit` elements covering [0, total); none for 0.
struct Piece {
  int64_t offset = 0;
  int count = 0;
};
std::vector<Piece> split_into_pieces(int64_t total, int64_t limit);

// A gather of counts[r] elements from each rank r, in rounds: in round k every rank sends the
// k-th piece of at most `per_rank` elements of its buffer; the root receives the round's
// pieces one after the other (counts/displs, which fit in int) and moves piece r to
// out_offsets[r] of the concatenated result.
struct GatherRound {
  std::vector<int> counts, displs;
  std::vector<int64_t> send_offsets;  // where each rank's piece starts in its own buffer
  std::vector<int64_t> out_offsets;   // where it lands in the result
  int64_t size = 0;                   // elements of the round (sum of counts)
};
// `limit`: the most elements one MPI call carries (at least one per rank); a round holds at
// most that many in all.
std::vector<GatherRound> plan_gather(const std::vector<int64_t>& counts, int64_t limit);

}  // namespace sx::dist

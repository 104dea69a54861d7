#include "dist/chunks.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <stdexcept>

namespace sx::dist {
namespace {
std::atomic<int64_t> g_max_count{INT_MAX};
}  // namespace

int64_t max_mpi_count() {
  return g_max_count;
}

void set_max_mpi_count_for_tests(int64_t count) {
  g_max_count = std::clamp<int64_t>(count, 1, INT_MAX);
}

std::vector<Piece> split_into_pieces(int64_t total, int64_t limit) {
  limit = std::clamp<int64_t>(limit, 1, INT_MAX);
  std::vector<Piece> pieces;
  for (int64_t offset = 0; offset < total; offset += limit)
    pieces.push_back({offset, static_cast<int>(std::min(limit, total - offset))});
  return pieces;
}

std::vector<GatherRound> plan_gather(const std::vector<int64_t>& counts, int64_t limit) {
  const int64_t world = static_cast<int64_t>(counts.size());
  if (world == 0) return {};
  limit = std::clamp<int64_t>(limit, world, INT_MAX);
  // Every rank's piece of a round must fit, and their sum too: per rank limit / world.
  const int64_t per_rank = std::max<int64_t>(1, limit / world);
  std::vector<int64_t> base(counts.size(), 0);
  int64_t rounds = 0, total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    if (counts[r] < 0) throw std::invalid_argument("plan_gather: negative count");
    base[r] = total;
    total += counts[r];
    rounds = std::max(rounds, (counts[r] + per_rank - 1) / per_rank);
  }
  if (total <= limit) rounds = std::min<int64_t>(rounds, 1);  // all in one call
  const int64_t piece = total <= limit ? limit : per_rank;
  std::vector<GatherRound> plan(static_cast<size_t>(rounds));
  for (int64_t k = 0; k < rounds; ++k) {
    GatherRound& round = plan[static_cast<size_t>(k)];
    for (size_t r = 0; r < counts.size(); ++r) {
      const int64_t start = std::min(counts[r], k * piece);
      const int64_t n = std::min(piece, counts[r] - start);
      round.counts.push_back(static_cast<int>(n));
      round.displs.push_back(static_cast<int>(round.size));
      round.send_offsets.push_back(start);
      round.out_offsets.push_back(base[r] + start);
      round.size += n;
    }
  }
  return plan;
}

}  // namespace sx::dist

#include "dist/peers.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "dist/wait.h"

namespace sx::dist {
namespace {

constexpr int kHostChars = 256;  // a host name's bytes in the exchange (POSIX allows 255)
constexpr int kProbeTag = 7000;  // + the round: answers of an earlier round never match
constexpr int kProbeRounds = 10000;

std::vector<std::string> g_hosts;
MPI_Comm g_probe = MPI_COMM_NULL;
int g_round = 0;

// "2", "2-3", "0, 2, 4-6"
std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

// `ranks` grouped by host, hosts in the order of their first rank ("" when hosts are unknown).
std::vector<std::pair<std::string, std::vector<int>>> by_host(const std::vector<int>& ranks) {
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int r : ranks) {
    const std::string host =
        r >= 0 && static_cast<size_t>(r) < g_hosts.size() ? g_hosts[static_cast<size_t>(r)] : "";
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == host; });
    if (it == groups.end()) it = groups.insert(groups.end(), {host, {}});
    it->second.push_back(r);
  }
  return groups;
}

}  // namespace

std::string host_name() {
  char host[kHostChars] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "?";
  return host;
}

void learn_peers() {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  // Like MPI_Comm_split_type before it: a start-up collective without a non-blocking form.
  MPI_Comm_dup(MPI_COMM_WORLD, &g_probe);
  std::vector<char> mine(kHostChars, '\0'), all(static_cast<size_t>(kHostChars) * world);
  const std::string host = host_name();
  std::copy_n(host.begin(), std::min<size_t>(host.size(), kHostChars - 1), mine.begin());
  MPI_Request request;
  MPI_Iallgather(mine.data(), kHostChars, MPI_CHAR, all.data(), kHostChars, MPI_CHAR,
                 MPI_COMM_WORLD, &request);
  wait_or_abort(request, "exchange of host names");
  g_hosts.clear();
  for (int r = 0; r < world; ++r)
    g_hosts.emplace_back(all.data() + static_cast<size_t>(r) * kHostChars);
}

void forget_peers() {
  if (g_probe != MPI_COMM_NULL) MPI_Comm_free(&g_probe);
  g_hosts.clear();
}

const std::vector<std::string>& rank_hosts() {
  return g_hosts;
}

std::string describe_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (const auto& [host, members] : by_host(ranks)) {
    if (!out.empty()) out += ", ";
    out += (members.size() == 1 ? "rank " : "ranks ") + rank_list(members);
    if (!host.empty()) out += " on host " + host;
  }
  return out;
}

std::string describe_layout() {
  std::vector<int> all(g_hosts.size());
  for (size_t r = 0; r < all.size(); ++r) all[r] = static_cast<int>(r);
  const auto groups = by_host(all);
  std::string out = std::to_string(all.size()) + " ranks on " + std::to_string(groups.size()) +
                    (groups.size() == 1 ? " host: " : " hosts: ");
  constexpr size_t kMostHosts = 64;
  for (size_t i = 0; i < groups.size() && i < kMostHosts; ++i)
    out += (i ? "; " : "") + groups[i].first + " " +
           (groups[i].second.size() == 1 ? "rank " : "ranks ") + rank_list(groups[i].second);
  if (groups.size() > kMostHosts)
    out += "; " + std::to_string(groups.size() - kMostHosts) + " more hosts";
  return out;
}

std::vector<int> silent_ranks(double seconds) {
  if (g_probe == MPI_COMM_NULL) return {};
  int rank = 0, world = 1;
  MPI_Comm_rank(g_probe, &rank);
  MPI_Comm_size(g_probe, &world);
  const int tag = kProbeTag + g_round++ % kProbeRounds;
  static const int kAlive = 1;
  std::vector<int> answers(static_cast<size_t>(world));
  std::vector<MPI_Request> listening(static_cast<size_t>(world), MPI_REQUEST_NULL);
  for (int r = 0; r < world; ++r) {
    if (r == rank) continue;
    MPI_Request send;
    MPI_Isend(&kAlive, 1, MPI_INT, r, tag, g_probe, &send);
    MPI_Request_free(&send);  // a gone peer never takes it; the process ends soon anyway
    MPI_Irecv(&answers[static_cast<size_t>(r)], 1, MPI_INT, r, tag, g_probe,
              &listening[static_cast<size_t>(r)]);
  }
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  int waiting = world - 1;
  while (waiting > 0 && Clock::now() < end) {
    for (MPI_Request& request : listening) {
      int done = 0;
      if (request == MPI_REQUEST_NULL) continue;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      waiting -= done;
    }
    if (waiting > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<int> silent;
  for (int r = 0; r < world; ++r) {
    MPI_Request& request = listening[static_cast<size_t>(r)];
    if (request == MPI_REQUEST_NULL) continue;
    silent.push_back(r);
    MPI_Cancel(&request);
    MPI_Wait(&request, MPI_STATUS_IGNORE);
  }
  return silent;
}

}  // namespace sx::dist

#include "dist/mpi_env.h"

#include "dist/wait.h"

#include <mpi.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <thread>

#include "core/checksum.h"
#include "core/files.h"
#include "core/log.h"
#include "dist/chunks.h"
#include "dist/deadline.h"
#include "dist/peers.h"

namespace sx::dist {
namespace {
// How long a rank that called MPI_Abort waits for it before ending itself.
constexpr std::chrono::seconds kAbortGrace{3};
}  // namespace

namespace {

// Open MPI keeps its session files under $TMPDIR: one that is not a writable directory failed
// MPI_Init with some fifty lines of its internals and exit 1.
void check_tmpdir() {
  const char* dir = std::getenv("TMPDIR");
  if (dir == nullptr || *dir == '\0') return;
  const std::string why = !files::exists(dir)         ? "does not exist"
                          : !files::is_directory(dir) ? "is not a directory"
                          : ::access(dir, W_OK | X_OK) != 0
                              ? std::string("is not writable (") + std::strerror(errno) + ")"
                              : "";
  if (!why.empty())
    throw UserError(std::string("TMPDIR=") + dir + " " + why +
                    ": Open MPI keeps its session files there; point TMPDIR at a writable "
                    "directory or unset it");
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    check_tmpdir();
    int provided = 0;
    // Only the main thread calls MPI (NCCL's watchdog polls NCCL, not MPI).
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &env_.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &env_.world);
  // Like MPI_Init_thread, this is a collective without a non-blocking form; both run before
  // any work, so a rank that stops here has not started either.
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env_.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &env_.local_rank);
  MPI_Comm_size(local, &env_.local_world);
  MPI_Comm_free(&local);
  learn_peers();
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  forget_peers();
  MPI_Finalize();
}

void abort_job(int exit_code) {
  // MPI_Abort asks the runtime to end every rank, which needs the runtime's network: on a host
  // cut off from the others it may never return. This rank ends within seconds regardless.
  std::thread([exit_code] {
    std::this_thread::sleep_for(kAbortGrace);
    spdlog::warn(
        "MPI_Abort has not ended this rank within {} s (its runtime cannot reach the "
        "others?); exiting with {}",
        kAbortGrace.count(), exit_code);
    flush_logs();
    std::_Exit(exit_code);
  }).detach();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

void abort_job_for(const std::exception& e, int rank) {
  log_error_to_files("rank " + std::to_string(rank) + ": " + e.what());  // the whole text
  const Failure failure = failure_of(e);
  std::fprintf(stderr, "siamese-xlmr: error: [rank %d] %s\n", rank, failure.text.c_str());
  abort_job(failure.code);
}

namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  return world;
}

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<int64_t>() {
  return MPI_INT64_T;
}
template <>
MPI_Datatype mpi_type<uint64_t>() {
  return MPI_UINT64_T;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<char>() {
  return MPI_CHAR;
}

template <class T>
void allreduce(std::vector<T>& values, MPI_Op op, const std::string& what) {
  for (const Piece& p : split_into_pieces(static_cast<int64_t>(values.size()), max_mpi_count())) {
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values.data() + p.offset, p.count, mpi_type<T>(), op,
                   MPI_COMM_WORLD, &request);
    wait_or_abort(request, what);
  }
}

template <class T>
void broadcast_vector(std::vector<T>& values, int root, const std::string& what) {
  std::vector<int64_t> size{static_cast<int64_t>(values.size())};
  broadcast_bytes(size.data(), sizeof(int64_t), root, what);
  values.resize(static_cast<size_t>(size[0]));
  broadcast_bytes(values.data(), size[0] * static_cast<int64_t>(sizeof(T)), root, what);
}

// Every rank's `count` elements at `local`, concatenated in rank order on `root`; `counts`
// gets each rank's count (on every rank).
template <class T>
std::vector<T> gather_elements(const T* local, int64_t count, int root, const std::string& what,
                               std::vector<int64_t>& counts) {
  const int rank = world_rank();
  counts.assign(static_cast<size_t>(world_size()), 0);
  MPI_Request request;
  MPI_Iallgather(&count, 1, MPI_INT64_T, counts.data(), 1, MPI_INT64_T, MPI_COMM_WORLD, &request);
  wait_or_abort(request, what);
  const std::vector<GatherRound> plan = plan_gather(counts, max_mpi_count());
  std::vector<T> out, scratch;
  if (rank == root) {
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    out.resize(static_cast<size_t>(total));
  }
  const bool in_place = plan.size() == 1;  // one round: displacements are the final offsets
  for (const GatherRound& round : plan) {
    T* receive = nullptr;
    if (rank == root) {
      scratch.resize(in_place ? 0 : static_cast<size_t>(round.size));
      receive = in_place ? out.data() : scratch.data();
    }
    MPI_Igatherv(local + round.send_offsets[rank], round.counts[rank], mpi_type<T>(), receive,
                 round.counts.data(), round.displs.data(), mpi_type<T>(), root, MPI_COMM_WORLD,
                 &request);
    wait_or_abort(request, what);
    if (rank != root || in_place) continue;
    for (size_t r = 0; r < counts.size(); ++r)
      std::copy_n(scratch.data() + round.displs[r], round.counts[r],
                  out.data() + round.out_offsets[r]);
  }
  return out;
}

void print_failure(int rank, int world, const std::string& message) {
  if (world == 1)
    std::fprintf(stderr, "siamese-xlmr: error: %s\n", message.c_str());
  else
    std::fprintf(stderr, "siamese-xlmr: error: rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
}

// Rank 0's report of a failed phase: each distinct message once, in the order of the first
// rank that had it, naming the ranks ("rank 1: ...", "ranks 0, 2: ..."); a message every rank
// had (a configuration they share) is printed once, as a one-rank job prints it.
void print_failures(const std::vector<int>& codes, const std::vector<std::string>& messages) {
  const int world = static_cast<int>(codes.size());
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int r = 0; r < world; ++r) {
    if (codes[static_cast<size_t>(r)] == kExitOk) continue;
    const std::string& message = messages[static_cast<size_t>(r)];
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == message; });
    if (it == groups.end()) it = groups.insert(groups.end(), {message, {}});
    it->second.push_back(r);
  }
  for (const auto& [message, ranks] : groups) {
    if (static_cast<int>(ranks.size()) == world) {
      print_failure(0, 1, message);
      continue;
    }
    std::string who = ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size() && i < 8; ++i)
      who += (i ? ", " : "") + std::to_string(ranks[i]);
    if (ranks.size() > 8) who += " and " + std::to_string(ranks.size() - 8) + " more";
    std::fprintf(stderr, "siamese-xlmr: error: %s: %s\n", who.c_str(), message.c_str());
    std::fflush(stderr);
  }
}

// Items as one string: name and value, each ended by '\0'.
std::string serialize(const Items& items) {
  std::string out;
  for (const auto& [name, value] : items) {
    out += name;
    out += '\0';
    out += value;
    out += '\0';
  }
  return out;
}

Items deserialize(const std::string& text) {
  Items items;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t name_end = text.find('\0', pos);
    const size_t value_end = text.find('\0', name_end + 1);
    if (name_end == std::string::npos || value_end == std::string::npos) break;
    items.emplace_back(text.substr(pos, name_end - pos),
                       text.substr(name_end + 1, value_end - name_end - 1));
    pos = value_end + 1;
  }
  return items;
}

}  // namespace

void wait_or_abort(MPI_Request& request, const std::string& what) {
  await(what, [&] {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
}

std::vector<int64_t> allreduce_max(std::vector<int64_t> values, const std::string& what) {
  allreduce(values, MPI_MAX, what);
  return values;
}

std::vector<double> allreduce_sum(std::vector<double> values, const std::string& what) {
  allreduce(values, MPI_SUM, what);
  return values;
}

void allreduce_or(std::vector<uint64_t>& words, const std::string& what) {
  allreduce(words, MPI_BOR, what);
}

void broadcast_bytes(void* data, int64_t bytes, int root, const std::string& what) {
  for (const Piece& p : split_into_pieces(bytes, max_mpi_count())) {
    MPI_Request request;
    MPI_Ibcast(static_cast<char*>(data) + p.offset, p.count, MPI_BYTE, root, MPI_COMM_WORLD,
               &request);
    wait_or_abort(request, what);
  }
}

void broadcast(std::vector<double>& values, int root, const std::string& what) {
  broadcast_vector(values, root, what);
}

void broadcast(std::vector<int64_t>& values, int root, const std::string& what) {
  broadcast_vector(values, root, what);
}

void broadcast(std::string& text, int root, const std::string& what) {
  std::vector<char> chars(text.begin(), text.end());
  broadcast_vector(chars, root, what);
  text.assign(chars.begin(), chars.end());
}

void barrier(const std::string& what) {
  MPI_Request request;
  MPI_Ibarrier(MPI_COMM_WORLD, &request);
  wait_or_abort(request, what);
}

std::vector<float> gather(const std::vector<float>& local, int root, const std::string& what) {
  std::vector<int64_t> counts;
  return gather_elements(local.data(), static_cast<int64_t>(local.size()), root, what, counts);
}

std::vector<float> gather_rows(const std::vector<float>& local, int64_t cols, int root,
                               const std::string& what) {
  if (cols <= 0 || local.size() % static_cast<size_t>(cols) != 0)
    throw std::invalid_argument("gather_rows: " + std::to_string(local.size()) +
                                " floats are not rows of " + std::to_string(cols));
  return gather(local, root, what);  // in pieces past MPI's int counts (chunks.h)
}

std::vector<std::string> gather(const std::string& local, int root, const std::string& what) {
  std::vector<int64_t> counts;
  std::vector<char> all =
      gather_elements(local.data(), static_cast<int64_t>(local.size()), root, what, counts);
  if (world_rank() != root) return {};
  std::vector<std::string> out;
  size_t offset = 0;
  for (int64_t c : counts) {
    out.emplace_back(all.data() + offset, static_cast<size_t>(c));
    offset += static_cast<size_t>(c);
  }
  return out;
}

Outcome attempt(const std::function<void()>& phase) {
  try {
    phase();
    return {};
  } catch (const std::exception& e) {
    log_error_to_files(e.what());  // the whole text, a stack trace included
    const Failure failure = failure_of(e);
    return {failure.code,
            failure.code == kExitInternal ? "internal error: " + failure.text : failure.text};
  }
}

int agree(const Outcome& mine, const std::string& what) {
  const int world = world_size();
  std::vector<int> codes(static_cast<size_t>(world), 0);
  int code = mine.code;
  MPI_Request request;
  MPI_Iallgather(&code, 1, MPI_INT, codes.data(), 1, MPI_INT, MPI_COMM_WORLD, &request);
  wait_or_abort(request, "agreement on " + what);
  auto failing = std::find_if(codes.begin(), codes.end(), [](int c) { return c != kExitOk; });
  if (failing == codes.end()) return kExitOk;
  const std::vector<std::string> messages =
      gather(mine.code == kExitOk ? std::string() : mine.message, 0, "agreement on " + what);
  if (!messages.empty()) print_failures(codes, messages);  // rank 0
  return *failing;
}

std::string describe_difference(const Items& mine, const Items& root) {
  std::map<std::string, const std::string*> at_root;
  for (const auto& [name, value] : root) at_root.emplace(name, &value);
  std::string first;
  int differences = 0;
  auto note = [&](const std::string& text) {
    if (differences++ == 0) first = text;
  };
  for (const auto& [name, value] : mine) {
    auto it = at_root.find(name);
    if (it == at_root.end())
      note(name + " (" + value + ") is not on rank 0");
    else if (*it->second != value)
      note(name + " differs from rank 0's (" + value + " vs " + *it->second + ")");
    if (it != at_root.end()) at_root.erase(it);
  }
  for (const auto& [name, value] : root)
    if (at_root.count(name)) note(name + " is missing (rank 0's: " + value + ")");
  if (differences > 1) first += "; " + std::to_string(differences - 1) + " more differ";
  return first;
}

int agree_on_items(const Items& items, const std::string& what) {
  const int rank = world_rank(), world = world_size();
  if (world == 1) return kExitOk;
  const std::string mine = serialize(items);
  Xxh3 hash;
  hash.update(mine);
  std::string root_hash = hash.hex();
  broadcast(root_hash, 0, what);
  const int64_t differs = root_hash != hash.hex();
  if (!allreduce_max({differs}, what)[0]) return kExitOk;
  const std::vector<std::string> lists = gather(mine, 0, what);
  if (rank == 0) {
    for (int r = 1; r < world; ++r)
      if (lists[static_cast<size_t>(r)] != mine)
        print_failure(r, world,
                      describe_difference(deserialize(lists[static_cast<size_t>(r)]), items));
  }
  return kExitUserError;
}

}  // namespace sx::dist

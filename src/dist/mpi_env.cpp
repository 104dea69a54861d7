#include "dist/mpi_env.h"

#include "dist/wait.h"

#include <mpi.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "core/error.h"

namespace sx::dist {

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI (NCCL's watchdog polls NCCL, not MPI).
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &env_.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &env_.world);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env_.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &env_.local_rank);
  MPI_Comm_size(local, &env_.local_world);
  MPI_Comm_free(&local);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_job(int exit_code) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

std::vector<int64_t> allreduce_max(std::vector<int64_t> values) {
  MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T, MPI_MAX,
                MPI_COMM_WORLD);
  return values;
}

std::vector<double> allreduce_sum(std::vector<double> values) {
  MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                MPI_COMM_WORLD);
  return values;
}

void wait_or_abort(MPI_Request& request, double timeout_seconds, const std::string& what) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  int done = 0;
  for (int tries = 0; MPI_Test(&request, &done, MPI_STATUS_IGNORE), !done; ++tries) {
    if (std::chrono::steady_clock::now() > deadline) {
      int rank = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      spdlog::critical(
          "rank {}: {} did not complete within dist.collective_timeout ({:.0f} s); "
          "a peer is gone or stuck. Aborting the job.",
          rank, what, timeout_seconds);
      abort_job(kExitInternal);
    }
    if (tries < 1000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void allreduce_or(std::vector<uint64_t>& words, double timeout_seconds, const std::string& what) {
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, words.data(), static_cast<int>(words.size()), MPI_UINT64_T, MPI_BOR,
                 MPI_COMM_WORLD, &request);
  wait_or_abort(request, timeout_seconds, what);
}

void broadcast(std::vector<double>& values, int root) {
  MPI_Bcast(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, root, MPI_COMM_WORLD);
}

void broadcast(std::vector<int64_t>& values, int root) {
  MPI_Bcast(values.data(), static_cast<int>(values.size()), MPI_INT64_T, root, MPI_COMM_WORLD);
}

void broadcast(std::string& text, int root) {
  int64_t size = static_cast<int64_t>(text.size());
  MPI_Bcast(&size, 1, MPI_INT64_T, root, MPI_COMM_WORLD);
  text.resize(static_cast<size_t>(size));
  if (size) MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, root, MPI_COMM_WORLD);
}

void barrier() {
  MPI_Barrier(MPI_COMM_WORLD);
}

namespace {
template <class T>
std::vector<T> gather_impl(const std::vector<T>& local, MPI_Datatype type, int root) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int count = static_cast<int>(local.size());
  std::vector<int> counts(world), offsets(world);
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
  std::vector<T> out;
  if (rank == root) {
    int total = 0;
    for (int r = 0; r < world; ++r) offsets[r] = total, total += counts[r];
    out.resize(static_cast<size_t>(total));
  }
  MPI_Gatherv(local.data(), count, type, out.data(), counts.data(), offsets.data(), type, root,
              MPI_COMM_WORLD);
  return out;
}
}  // namespace

std::vector<float> gather(const std::vector<float>& local, int root) {
  return gather_impl(local, MPI_FLOAT, root);
}

std::vector<float> gather_rows(const std::vector<float>& local, int64_t cols, int root) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (cols <= 0 || cols > INT_MAX || local.size() % static_cast<size_t>(cols) != 0)
    throw std::invalid_argument("gather_rows: " + std::to_string(local.size()) +
                                " floats are not rows of " + std::to_string(cols));
  const size_t local_rows = local.size() / static_cast<size_t>(cols);
  if (local_rows > static_cast<size_t>(INT_MAX))
    throw std::invalid_argument("gather_rows: a rank's share passes 2^31 rows");
  MPI_Datatype row;
  MPI_Type_contiguous(static_cast<int>(cols), MPI_FLOAT, &row);
  MPI_Type_commit(&row);
  int count = static_cast<int>(local_rows);
  std::vector<int> counts(world), offsets(world);
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
  std::vector<float> out;
  if (rank == root) {
    int64_t total = 0;
    for (int r = 0; r < world; ++r) {
      if (total > INT_MAX) throw std::invalid_argument("gather_rows: more than 2^31 rows");
      offsets[r] = static_cast<int>(total);
      total += counts[r];
    }
    out.resize(static_cast<size_t>(total) * static_cast<size_t>(cols));
  }
  MPI_Gatherv(local.data(), count, row, out.data(), counts.data(), offsets.data(), row, root,
              MPI_COMM_WORLD);
  MPI_Type_free(&row);
  return out;
}

bool all_succeeded(bool ok, std::string& message) {
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int failing = ok ? world : rank;
  MPI_Allreduce(MPI_IN_PLACE, &failing, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (failing == world) return true;
  broadcast(message, failing);
  if (failing != 0) message = "[rank " + std::to_string(failing) + "] " + message;
  return false;
}

}  // namespace sx::dist

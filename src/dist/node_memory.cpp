#include "dist/node_memory.h"

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/error.h"
#include "dist/mpi_env.h"
#include "dist/peers.h"
#include "dist/wait.h"

namespace sx::dist {
namespace {

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string(call) + " failed");
}

class MpiNodeMemory : public data::NodeMemory {
 public:
  MpiNodeMemory() {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_);
    MPI_Comm_rank(node_, &node_rank_);
    if (builder()) {
      int ranks = 1;
      MPI_Comm_size(node_, &ranks);
      spdlog::info("host {}: rank {} builds the node-shared data for the {} ranks on this host",
                   host_name(), rank, ranks);
    }
  }

  bool builder() const override { return node_rank_ == 0; }

  std::shared_ptr<const void> publish(size_t bytes,
                                      const std::function<void(void* out)>& fill) override {
    uint64_t size = bytes;
    MPI_Request request;
    MPI_Ibcast(&size, 1, MPI_UINT64_T, 0, node_, &request);
    wait_or_abort(request, "the size of a node-shared array");
    void* base = nullptr;
    MPI_Win window;
    check(MPI_Win_allocate_shared(builder() ? static_cast<MPI_Aint>(size + 1) : 0, 1, MPI_INFO_NULL,
                                  node_, &base, &window),
          "MPI_Win_allocate_shared");
    if (builder()) fill(base);
    // The others wait here while the builder fills (it may tokenize a whole corpus).
    MPI_Ibarrier(node_, &request);
    wait_or_abort(request, "building a node-shared array");
    if (!builder()) {
      MPI_Aint got = 0;
      int unit = 0;
      check(MPI_Win_shared_query(window, 0, &got, &unit, &base), "MPI_Win_shared_query");
      if (static_cast<uint64_t>(got) < size)
        throw std::runtime_error("node-shared window smaller than announced");
    }
    windows_.push_back(window);
    return std::shared_ptr<const void>(base, [](const void*) {});
  }

 private:
  MPI_Comm node_ = MPI_COMM_NULL;
  int node_rank_ = 0;
  std::vector<MPI_Win> windows_;  // freed by MPI_Finalize
};

}  // namespace

std::unique_ptr<data::NodeMemory> make_node_memory() {
  return std::make_unique<MpiNodeMemory>();
}

}  // namespace sx::dist

#include <c10/util/BFloat16.h>
#include <mpi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/deadline.h"

namespace sx::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device& device,
                                                     const MpiEnv& env);

namespace {

// MPI has no bf16 type: bf16 values travel as 16-bit words and this op sums them, rounding
// each partial sum to bf16 (to nearest even), as a bf16 collective on the GPU does.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + float(b[i]));
}

// CPU tensors over MPI: non-blocking all-reduces, completed by polling in wait() so a
// deadline can be enforced. A collective may leave work for after its completion (divide
// a sum into an average, widen bf16, scatter reduced rows back): `then` runs on the calling
// thread as soon as a poll sees the request done.
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const MpiEnv& env) : env_(env) {
    MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_);
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Op_free(&bf16_sum_);
  }

  std::string name() const override { return "mpi"; }
  bool any_thread() const override { return false; }

  void all_reduce_average(const torch::Tensor& tensor, WireType wire) override {
    check_float(tensor);
    average(tensor, wire, {});
  }

  void all_reduce_average_rows(const torch::Tensor& matrix, const torch::Tensor& rows,
                               WireType wire) override {
    check_float(matrix);
    TORCH_CHECK(matrix.dim() == 2 && rows.scalar_type() == torch::kLong,
                "row all-reduce needs a 2-D matrix and int64 rows");
    if (rows.numel() == 0) return;
    torch::Tensor compact = matrix.index_select(0, rows);
    average(compact, wire, [matrix, rows, compact]() mutable {
      torch::NoGradGuard no_grad;
      matrix.index_copy_(0, rows, compact);
    });
  }

  void progress() override {
    for (auto& p : pending_) test(p);
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    TORCH_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(),
                "MPI broadcast needs a contiguous CPU tensor");
    if (env_.world == 1) return;
    dist::broadcast_bytes(tensor.data_ptr(), static_cast<int64_t>(tensor.nbytes()), root,
                          "broadcast of a " + std::to_string(tensor.numel()) + "-element tensor");
  }

  void wait(const std::string& what) override {
    await(what, [this] {
      return std::all_of(pending_.begin(), pending_.end(), [](Pending& p) { return test(p); });
    });
    pending_.clear();
  }

 private:
  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    std::function<void()> then;
    bool done = false;
  };

  static void check_float(const torch::Tensor& tensor) {
    TORCH_CHECK(
        tensor.device().is_cpu() && tensor.is_contiguous() && tensor.scalar_type() == torch::kFloat,
        "MPI all-reduce needs a contiguous float32 CPU tensor");
  }

  void start(void* data, int64_t count, MPI_Datatype type, MPI_Op op, std::function<void()> then) {
    TORCH_CHECK(count <= std::numeric_limits<int>::max(), "all-reduce of ", count,
                " elements is over MPI's int count; lower train.bucket_mb");
    Pending p;
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), type, op, MPI_COMM_WORLD,
                   &p.request);
    p.then = std::move(then);
    pending_.push_back(std::move(p));
  }

  // Sum over the wire, then divide (MPI has no average); bf16 travels in a scratch copy.
  void average(const torch::Tensor& tensor, WireType wire, std::function<void()> then) {
    const double world = env_.world;
    if (wire == WireType::kFloat32) {
      if (env_.world == 1) {
        if (then) then();
        return;
      }
      start(tensor.data_ptr(), tensor.numel(), MPI_FLOAT, MPI_SUM, [tensor, world, then]() mutable {
        tensor.div_(world);
        if (then) then();
      });
      return;
    }
    torch::Tensor wire_copy = tensor.to(torch::kBFloat16);
    auto widen = [tensor, wire_copy, world, then]() mutable {
      tensor.copy_(wire_copy).div_(world);
      if (then) then();
    };
    if (env_.world == 1) {  // still rounded to bf16, as on more ranks
      widen();
      return;
    }
    start(wire_copy.data_ptr(), wire_copy.numel(), MPI_UINT16_T, bf16_sum_, std::move(widen));
  }

  // True once `p` completed (its follow-up then ran).
  static bool test(Pending& p) {
    if (p.done) return true;
    int flag = 0;
    MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE);
    if (!flag) return false;
    p.done = true;
    if (p.then) p.then();
    p.then = nullptr;
    return true;
  }

  MpiEnv env_;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  std::vector<Pending> pending_;
};

}  // namespace

std::unique_ptr<Communicator> make_communicator(Backend backend, const torch::Device& device,
                                                const MpiEnv& env) {
  const bool gpu = device.is_cuda();
  const Backend chosen =
      backend == Backend::kAuto ? (gpu ? Backend::kNccl : Backend::kMpi) : backend;
  if (chosen == Backend::kNccl) {
    if (!gpu)
      throw UserError(
          "dist.backend: nccl needs the replica on a GPU (model.device); use mpi on CPU");
    return make_nccl_communicator(device, env);
  }
  if (gpu)
    throw UserError("dist.backend: mpi all-reduces CPU tensors, but the replica is on " +
                    device.str() + "; use nccl or auto");
  return std::make_unique<MpiCommunicator>(env);
}

bool nccl_compiled() {
#ifdef SX_WITH_NCCL
  return true;
#else
  return false;
#endif
}

#ifndef SX_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const torch::Device&, const MpiEnv&) {
  throw UserError("dist.backend: this build has no NCCL (libtorch without CUDA); use mpi");
}
#endif

}  // namespace sx::dist

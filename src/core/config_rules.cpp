#include "core/config_rules.h"

#include <sstream>

#include "core/error.h"

namespace sx {
namespace {

std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Why train.cuda_graphs cannot run here ("" = it can).
std::string cuda_graphs_obstacle(const Platform& p) {
  if (!p.cuda_graphs) return "this build has no CUDA graphs (CUDA and libtorch >= 2 needed)";
  if (!p.cuda) return "the replica runs on the CPU";
  if (!p.flash_attention)
    return "attention is not the variable-length flash kernel (needs model.attention: sdpa "
           "and model.autocast_bf16: true)";
  return "";
}

// Why train.graph_allreduce: inside cannot run here ("" = it can).
std::string graph_allreduce_obstacle(const Config& c, const Platform& p) {
  if (!c.train.cuda_graphs) return "it needs train.cuda_graphs: true";
  if (const std::string why = cuda_graphs_obstacle(p); !why.empty())
    return "CUDA graphs are not used (" + why + ")";
  if (p.world < 2) return "one rank has no gradient all-reduce";
  if (!p.nccl) return "it needs the NCCL wire";
  return "";
}

// Why model.fused_kernels cannot run here ("" = it can).
std::string fused_kernels_obstacle(const Config& c, const Platform& p) {
  if (!p.fused_kernels)
    return "this build has no fused CUDA kernels (build against a libtorch with CUDA: "
           "launch/build-cuda.sh)";
  if (!p.cuda) return "the replica runs on the CPU";
  if (!c.model.autocast_bf16) return "it needs model.autocast_bf16: true";
  if (c.model.residual_dtype != ResidualDtype::kFp32)
    return "it keeps the fp32 residual stream (model.residual_dtype is bf16)";
  return "";
}

void check_backend(const Config& c, const Platform& p) {
  const Backend backend = c.dist.backend;
  if (backend == Backend::kNccl && !p.cuda)
    throw UserError("dist.backend: nccl needs the replica on a GPU (model.device); use mpi on CPU");
  if (backend == Backend::kMpi && p.cuda)
    throw UserError("dist.backend: mpi all-reduces CPU tensors, but the replica is on " + p.device +
                    "; use nccl or auto");
  if (p.cuda && !p.nccl)
    throw UserError("dist.backend: the replica is on " + p.device +
                    " but this build has no NCCL (libtorch without CUDA)");
}

}  // namespace

void check_key_rules(const Config& c, const std::string& where) {
  if (c.train.lr_min > c.train.lr_max)
    throw UserError(where + ": train.lr_min (" + number(c.train.lr_min) +
                    ") must not exceed train.lr_max (" + number(c.train.lr_max) + ")");
  if (c.run.dir.empty()) throw UserError(where + ": run.dir must not be empty");
  if (c.model.residual_dtype == ResidualDtype::kBf16 && !c.model.autocast_bf16)
    throw UserError(where +
                    ": model.residual_dtype: bf16 needs model.autocast_bf16: true (it is false)");
}

bool cuda_graphs_usable(const Config& c, const Platform& p) {
  return c.train.cuda_graphs && cuda_graphs_obstacle(p).empty();
}

bool graph_allreduce_inside(const Config& c, const Platform& p) {
  return c.train.graph_allreduce == GraphAllReduce::kInside &&
         graph_allreduce_obstacle(c, p).empty();
}

bool fused_kernels_usable(const Config& c, const Platform& p) {
  return c.model.fused_kernels && fused_kernels_obstacle(c, p).empty();
}

bool embedding_adam_overlap_usable(const Config& c, const Platform& p) {
  return c.train.embedding_adam_overlap && (!p.cuda || p.fused_kernels);
}

std::vector<std::string> check_platform_rules(const Config& c, const Platform& p, bool training) {
  if (c.model.attention == Attention::kSdpa && !p.sdpa)
    throw UserError("model.attention: sdpa needs libtorch 2.x; this build has libtorch " +
                    p.torch_version + " (use math)");
  if (c.model.autocast_bf16 && !p.cuda)
    throw UserError("model.autocast_bf16: true needs a CUDA device; this replica runs on " +
                    p.device);
  std::vector<std::string> warnings;
  if (!training) return warnings;
  check_backend(c, p);
  if (c.train.cuda_graphs)
    if (const std::string why = cuda_graphs_obstacle(p); !why.empty())
      warnings.push_back("train.cuda_graphs: not used, " + why);
  if (c.train.graph_allreduce == GraphAllReduce::kInside)
    if (const std::string why = graph_allreduce_obstacle(c, p); !why.empty())
      warnings.push_back("train.graph_allreduce: inside not used, " + why +
                         "; the gradients are all-reduced as with after");
  if (c.model.fused_kernels)
    if (const std::string why = fused_kernels_obstacle(c, p); !why.empty())
      warnings.push_back("model.fused_kernels: not used, " + why);
  if (c.train.embedding_adam_overlap && !embedding_adam_overlap_usable(c, p))
    warnings.push_back(
        "train.embedding_adam_overlap: not used, this build has no fused CUDA kernels (the rows' "
        "Adam kernel; build against a libtorch with CUDA: launch/build-cuda.sh)");
  return warnings;
}

}  // namespace sx

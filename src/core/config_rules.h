// The rules between configuration keys, in one place, applied alike by every command:
//   check_key_rules       what the keys alone decide; load_config applies it to every command;
//   check_platform_rules  what needs the replica's platform (device, libtorch, this build); the
//                         commands that place an encoder apply it (model::place_encoder), with
//                         the training rules for train and `bench train` (train/replica).
// A broken rule is a UserError naming the keys; a training speed-up that cannot run here
// (train.cuda_graphs, model.fused_kernels) is a warning and the step runs without it.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace sx {

// What the platform of one replica offers, as the layers that know it report it.
struct Platform {
  std::string device = "cpu";    // the replica's device ("cpu", "cuda:0")
  bool cuda = false;             // the replica is on a GPU
  std::string torch_version;     // libtorch's ("2.11.0")
  bool sdpa = false;             // fused attention (libtorch 2.x)
  bool nccl = false;             // this build has NCCL
  bool flash_attention = false;  // the configured packed attention is the flash kernel here
  bool cuda_graphs = false;      // this build can capture CUDA graphs
  int world = 1;                 // ranks training together
  bool fused_kernels = false;    // this build has the fused CUDA kernels (model.fused_kernels)
};

// Throws a UserError prefixed by `where` (the configuration file, or "config").
void check_key_rules(const Config& config, const std::string& where);

// Throws a UserError for a combination this platform cannot run. With `training`, also the
// rules of the training keys (dist.backend, train.cuda_graphs, model.fused_kernels); returns
// the warnings.
std::vector<std::string> check_platform_rules(const Config& config, const Platform& platform,
                                              bool training);

// Whether train.cuda_graphs asks for CUDA graphs and they can run on `platform`.
bool cuda_graphs_usable(const Config& config, const Platform& platform);

// Whether train.graph_allreduce: inside asks for the dense all-reduce inside the graphs and it
// can run: CUDA graphs usable, several ranks (over NCCL, as a replica on a GPU always is).
bool graph_allreduce_inside(const Config& config, const Platform& platform);

// Whether model.fused_kernels asks for the fused kernels and they can run on `platform` (a CUDA
// replica, a build with the kernels, model.autocast_bf16 with the fp32 residual stream).
bool fused_kernels_usable(const Config& config, const Platform& platform);

// Whether train.embedding_adam_overlap asks for the split update and it can run: on the CPU, or
// on a GPU with this build's rows kernel (without it the rows' fallback computes every row
// twice, slower and larger than the plain update).
bool embedding_adam_overlap_usable(const Config& config, const Platform& platform);

}  // namespace sx

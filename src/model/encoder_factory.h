// Builds the Siamese encoder the configuration asks for: an HF model directory
// (model.pretrained) or a config.json with HF's random initialisation (model.config).
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/config.h"
#include "model/xlmr.h"

namespace sx::model {

struct BuiltEncoder {
  SiameseEncoder encoder{nullptr};
  std::string description;  // for the log: where the weights came from
};

BuiltEncoder build_encoder(const Config& config);

// The texts the configuration tokenizes fit `model`: tokenizer.max_len within its positions and
// the tokenizer's `tokenizer_vocab` ids within its vocabulary; else a UserError naming the key
// (past either table, torch fails deep in the forward: "index out of range" on CPU, a
// device-side assert on CUDA).
void check_tokenizer_fits(const Config& config, const XlmrConfig& model, int64_t tokenizer_vocab);

// model.device: auto = CUDA device `local_rank % device_count` when CUDA is available.
torch::Device resolve_device(const std::string& device, int local_rank);

// model.attention / model.autocast_bf16 / model.layout for `device`; throws UserError when the
// combination needs what this libtorch or device lacks (sdpa on libtorch 1.x, bf16 on CPU).
ComputeOptions compute_options(const Config& config, const torch::Device& device);

}  // namespace sx::model

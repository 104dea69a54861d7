// Builds the Siamese encoder the configuration asks for: an HF model directory
// (model.pretrained) or a config.json with HF's random initialisation (model.config).
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/config.h"
#include "core/config_rules.h"
#include "model/xlmr.h"

namespace sx::model {

struct BuiltEncoder {
  SiameseEncoder encoder{nullptr};
  std::string description;  // for the log: where the weights came from
};

BuiltEncoder build_encoder(const Config& config);

// The model's shape alone, as build_encoder reads it: model.pretrained's config.json, else
// model.config (a UserError when neither is set or the file is not an XLM-R config).
XlmrConfig read_model_config(const Config& config);

// The texts the configuration tokenizes fit `model`: tokenizer.max_len within its positions and
// the tokenizer's `tokenizer_vocab` ids within its vocabulary; else a UserError naming the key
// (past either table, torch fails deep in the forward: "index out of range" on CPU, a
// device-side assert on CUDA).
void check_tokenizer_fits(const Config& config, const XlmrConfig& model, int64_t tokenizer_vocab);

// model.device: auto = CUDA device `local_rank % device_count` when CUDA is available.
torch::Device resolve_device(DeviceChoice device, int local_rank);

// model.attention / model.autocast_bf16 / model.residual_dtype as the encoder's options
// (model.fused_kernels needs the platform: place_encoder sets it where it can run).
ComputeOptions compute_options(const Config& config);

// What `device` offers an encoder of `model` computing with `compute` (core/config_rules.h), as
// far as the model layer knows it (nccl and cuda_graphs are left to the layers that know them).
Platform platform_of(const XlmrConfig& model, const ComputeOptions& compute,
                     const torch::Device& device);

// The encoder on this rank's device (model.device) with the configuration's compute options,
// once the platform rules hold (core/config_rules.h: a UserError for what this libtorch or
// device cannot do). Returns the device. Every command that runs an encoder places it here.
torch::Device place_encoder(SiameseEncoder& encoder, const Config& config, int local_rank);

}  // namespace sx::model

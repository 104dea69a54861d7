// Model weights in and out: HF model directories (config.json + model.safetensors or a
// sharded model.safetensors.index.json) and plain name -> tensor maps.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "model/xlmr.h"

namespace sx::model {

// Every entry of a safetensors file as a tensor of `dtype` (F32, F16, BF16, F64 convert).
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path,
                                                      torch::Dtype dtype = torch::kFloat);
// Writes `path` in place (safetensors.h); a failure names it and the system's reason.
void write_safetensors(const std::string& path,
                       const std::map<std::string, torch::Tensor>& tensors);

struct LoadReport {
  bool pool_ln_from_file = false;  // else it starts at weight 1, bias 0
  size_t tensors_loaded = 0;
  size_t tensors_ignored = 0;  // lm_head.*, pooler.*, buffers
};

// Copies an HF checkpoint's tensors into `model`. Names may carry the `roberta.` prefix;
// lm_head.* and pooler.* are ignored. Missing, unexpected and mis-shaped tensors are
// reported together in one UserError naming `what` (the config key).
LoadReport load_state(SiameseEncoderImpl& model,
                      const std::map<std::string, torch::Tensor>& tensors, const std::string& what);

// Reads an HF model directory's weights (single or sharded safetensors).
std::map<std::string, torch::Tensor> read_hf_weights(const std::string& model_dir);

// The model's parameters by HF name.
std::map<std::string, torch::Tensor> named_parameters(SiameseEncoderImpl& model);

}  // namespace sx::model

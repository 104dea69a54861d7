#include "model/encoder_factory.h"

#include "core/error.h"
#include "core/files.h"
#include "model/weights.h"

namespace sx::model {

BuiltEncoder build_encoder(const Config& config) {
  BuiltEncoder out;
  if (!config.model.pretrained.empty()) {
    const std::string& dir = config.model.pretrained;
    XlmrConfig xc = read_xlmr_config(files::join(dir, "config.json"));
    out.encoder = SiameseEncoder(xc, config.model.pool_ln_eps);
    LoadReport report = load_state(*out.encoder, read_hf_weights(dir), "model.pretrained: " + dir);
    out.description = dir + " (" + std::to_string(report.tensors_loaded) + " tensors" +
                      (report.pool_ln_from_file ? "" : "; pooling LayerNorm starts at 1/0") + ")";
  } else {
    if (config.model.config.empty())
      throw UserError(
          "model.pretrained and model.config are both empty: name an HF model "
          "directory, or a config.json to initialise from");
    XlmrConfig xc = read_xlmr_config(config.model.config);
    out.encoder = SiameseEncoder(xc, config.model.pool_ln_eps);
    init_weights(*out.encoder, static_cast<uint64_t>(config.run.seed));
    out.description = "random initialisation from " + config.model.config;
  }
  return out;
}

void check_tokenizer_fits(const Config& config, const XlmrConfig& model, int64_t tokenizer_vocab) {
  // Positions start after pad_token_id (HF's create_position_ids_from_input_ids).
  if (config.tokenizer.max_len + model.pad_token_id + 1 > model.max_position_embeddings)
    throw UserError("tokenizer.max_len " + std::to_string(config.tokenizer.max_len) +
                    " needs more positions than the model has (max_position_embeddings " +
                    std::to_string(model.max_position_embeddings) + ")");
  if (tokenizer_vocab > model.vocab_size)
    throw UserError("tokenizer.model has " + std::to_string(tokenizer_vocab) +
                    " ids but the model's vocabulary has " + std::to_string(model.vocab_size));
}

torch::Device resolve_device(const std::string& device, int local_rank) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  const bool cuda = torch::cuda::is_available();
  if (device == "cuda" && !cuda)
    throw UserError(
        "model.device: cuda was asked for, but no CUDA device is visible (or this "
        "libtorch has no CUDA)");
  if (!cuda) return torch::Device(torch::kCPU);
  const int count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

ComputeOptions compute_options(const Config& config, const torch::Device& device) {
  ComputeOptions compute;
  compute.sdpa = config.model.attention == "sdpa";
  compute.bf16 = config.model.autocast_bf16;
  compute.packed = config.model.layout == "packed";
  compute.bf16_residual = config.model.residual_dtype == "bf16";
  if (compute.sdpa && !sdpa_available())
    throw UserError("model.attention: sdpa needs libtorch 2.x; this build has libtorch " +
                    std::string(TORCH_VERSION) + " (use math)");
  if (compute.bf16 && !device.is_cuda())
    throw UserError("model.autocast_bf16: true needs a CUDA device; this replica runs on CPU");
  if (compute.bf16_residual && !compute.bf16)
    throw UserError("model.residual_dtype: bf16 needs model.autocast_bf16: true (it is false)");
  return compute;
}

}  // namespace sx::model

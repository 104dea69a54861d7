#include "model/encoder_factory.h"

#include <torch/version.h>

#include "core/error.h"
#include "core/files.h"
#include "model/dropout_add_norm.h"
#include "model/weights.h"

namespace sx::model {

namespace {

// The encoder of `xc` (from `source`); a model too large for the memory is the configuration's
// mistake, one line, not an allocator's stack trace.
SiameseEncoder make_encoder(const XlmrConfig& xc, double pool_ln_eps, const std::string& source) {
  try {
    return SiameseEncoder(xc, pool_ln_eps);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("alloc") == std::string::npos) throw;
    throw UserError(source + ": the model it describes (hidden_size " +
                    std::to_string(xc.hidden_size) + ", " + std::to_string(xc.num_hidden_layers) +
                    " layers, intermediate_size " + std::to_string(xc.intermediate_size) +
                    ", vocab_size " + std::to_string(xc.vocab_size) +
                    ") does not fit in this machine's memory: " + what.substr(0, what.find('\n')));
  } catch (const std::bad_alloc&) {
    throw UserError(source + ": the model it describes does not fit in this machine's memory");
  }
}

}  // namespace

XlmrConfig read_model_config(const Config& config) {
  if (!config.model.pretrained.empty())
    return read_xlmr_config(files::join(config.model.pretrained, "config.json"));
  if (config.model.config.empty())
    throw UserError(
        "model.pretrained and model.config are both empty: name an HF model "
        "directory, or a config.json to initialise from");
  return read_xlmr_config(config.model.config);
}

BuiltEncoder build_encoder(const Config& config) {
  BuiltEncoder out;
  const XlmrConfig xc = read_model_config(config);
  if (!config.model.pretrained.empty()) {
    const std::string& dir = config.model.pretrained;
    out.encoder = make_encoder(xc, config.model.pool_ln_eps,
                               "model.pretrained " + files::join(dir, "config.json"));
    LoadReport report = load_state(*out.encoder, read_hf_weights(dir), "model.pretrained: " + dir);
    out.description = dir + " (" + std::to_string(report.tensors_loaded) + " tensors" +
                      (report.pool_ln_from_file ? "" : "; pooling LayerNorm starts at 1/0") + ")";
  } else {
    out.encoder = make_encoder(xc, config.model.pool_ln_eps, "model.config " + config.model.config);
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

torch::Device resolve_device(DeviceChoice device, int local_rank) {
  if (device == DeviceChoice::kCpu) return torch::Device(torch::kCPU);
  const bool cuda = torch::cuda::is_available();
  if (device == DeviceChoice::kCuda && !cuda)
    throw UserError(
        "model.device: cuda was asked for, but no CUDA device is visible (or this "
        "libtorch has no CUDA)");
  if (!cuda) return torch::Device(torch::kCPU);
  const int count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

ComputeOptions compute_options(const Config& config) {
  ComputeOptions compute;
  compute.sdpa = config.model.attention == Attention::kSdpa;
  compute.bf16 = config.model.autocast_bf16;
  compute.bf16_residual = config.model.residual_dtype == ResidualDtype::kBf16;
  return compute;
}

Platform platform_of(const XlmrConfig& model, const ComputeOptions& compute,
                     const torch::Device& device) {
  Platform p;
  p.device = device.str();
  p.cuda = device.is_cuda();
  p.torch_version = TORCH_VERSION;
  p.sdpa = sdpa_available();
  p.flash_attention = packed_attention(compute, model, device) == PackedAttention::kFlash;
  p.fused_kernels = fused_kernels_compiled();
  return p;
}

torch::Device place_encoder(SiameseEncoder& encoder, const Config& config, int local_rank) {
  const torch::Device device = resolve_device(config.model.device, local_rank);
  ComputeOptions compute = compute_options(config);
  const Platform platform = platform_of(encoder->config(), compute, device);
  check_platform_rules(config, platform, false);
  compute.fused_kernels = fused_kernels_usable(config, platform);
  encoder->to(device);
  encoder->set_compute(compute);
  return device;
}

}  // namespace sx::model

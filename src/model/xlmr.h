// XLM-RoBERTa encoder and the notebook's Siamese feature extractor in libtorch.
//
// Parameter names follow HF's checkpoints (as written by XLMRobertaModel.save_pretrained):
//   embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.*,
//   encoder.layer.N.attention.self.{query,key,value}.*, encoder.layer.N.attention.output.*,
//   encoder.layer.N.intermediate.dense.*, encoder.layer.N.output.{dense,LayerNorm}.*,
// plus pool_ln.{weight,bias}, the feature extractor's LayerNorm (eps 1e-3, Keras' default).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/xlmr_config.h"

namespace sx::model {

struct ComputeOptions {
  bool bf16 = false;  // matmuls in bf16 with fp32 master weights, LayerNorm/softmax in fp32
  bool sdpa = false;  // at::scaled_dot_product_attention (libtorch 2.x)
};

// Whether this libtorch offers the fused attention kernel.
bool sdpa_available();

class XlmrLayerImpl : public torch::nn::Module {
 public:
  explicit XlmrLayerImpl(const XlmrConfig& config);
  // hidden [B,L,H] fp32; key_mask [B,L] bool (true = token). Returns [B,L,H] fp32.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& key_mask,
                        const ComputeOptions& compute);

 private:
  XlmrConfig config_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
  torch::nn::Linear attention_dense_{nullptr}, intermediate_dense_{nullptr}, output_dense_{nullptr};
  torch::nn::LayerNorm attention_norm_{nullptr}, output_norm_{nullptr};
};
TORCH_MODULE(XlmrLayer);

// One shared encoder for both texts of a pair: XLM-R, masked mean pooling, LayerNorm.
class SiameseEncoderImpl : public torch::nn::Module {
 public:
  SiameseEncoderImpl(const XlmrConfig& config, double pool_ln_eps = 1e-3);

  // ids [B,L] int64 -> last_hidden_state [B,L,H] fp32 (HF's XLMRobertaModel output).
  torch::Tensor hidden_states(const torch::Tensor& ids);
  // ids [B,L] -> text embeddings [B,H]: LayerNorm(mean of hidden states over non-pad tokens).
  torch::Tensor forward(const torch::Tensor& ids);

  const XlmrConfig& config() const { return config_; }
  void set_compute(const ComputeOptions& compute) { compute_ = compute; }
  torch::nn::LayerNorm pool_ln() const { return pool_ln_; }

 private:
  XlmrConfig config_;
  ComputeOptions compute_;
  torch::nn::Embedding word_embeddings_{nullptr}, position_embeddings_{nullptr},
      token_type_embeddings_{nullptr};
  torch::nn::LayerNorm embedding_norm_{nullptr};
  std::vector<XlmrLayer> layers_;
  torch::nn::LayerNorm pool_ln_{nullptr};
};
TORCH_MODULE(SiameseEncoder);

// RoBERTa position ids: padding_idx + 1 + running count of non-pad tokens; pads get padding_idx.
torch::Tensor roberta_position_ids(const torch::Tensor& ids, int64_t padding_idx);

// HF's initialisation: normal(0, initializer_range) for embeddings and Linear weights, zero
// biases, LayerNorm 1/0, zero padding rows; deterministic from `seed` on any device.
void init_weights(SiameseEncoderImpl& model, uint64_t seed);

}  // namespace sx::model

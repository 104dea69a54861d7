// XLM-RoBERTa encoder and the notebook's Siamese feature extractor in libtorch.
//
// Parameter names follow HF's checkpoints (as written by XLMRobertaModel.save_pretrained):
//   embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.*,
//   encoder.layer.N.attention.self.{query,key,value}.*, encoder.layer.N.attention.output.*,
//   encoder.layer.N.intermediate.dense.*, encoder.layer.N.output.{dense,LayerNorm}.*,
// plus pool_ln.{weight,bias}, the feature extractor's LayerNorm (eps 1e-3, Keras' default).
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/xlmr_config.h"

namespace sx::model {

struct ComputeOptions {
  bool bf16 = false;  // matmuls in bf16 with fp32 master weights, LayerNorm/softmax in fp32
  // Fused attention (libtorch 2.x): at::scaled_dot_product_attention in the padded layout; in
  // the packed layout variable-length flash attention where it applies, else SDPA inside the
  // packed path packed_attention() names.
  bool sdpa = false;
  // Packed layout off flash: pad inside attention on the CPU too (which otherwise attends per
  // sequence); the path other devices take, here so that CPU tests cover it.
  bool pad_inside_attention = false;
  // bf16 linears add their weight and bias gradients straight into the fp32 master weights'
  // .grad (which must exist) instead of returning them through autograd's cast and
  // accumulator nodes. Set by a trainer whose gradients nobody hooks (one replica).
  bool direct_weight_grads = false;
  // model.residual_dtype: bf16 (with bf16): the hidden states between the layers (dropout, the
  // residual adds and the LayerNorms' outputs) in bf16 instead of fp32, so no activation is
  // cast back and forth around each linear. LayerNorm statistics are still accumulated in
  // fp32; the last hidden state is returned in fp32 for pooling.
  bool bf16_residual = false;
  // model.fused_kernels (CUDA, bf16, fp32 residual; core/config_rules.h decides): each
  // dropout + residual add + LayerNorm of a layer is one CUDA kernel forward and one backward
  // (model/dropout_add_norm.h), which also writes the bf16 input of the next matmul; and
  // pooling sums each sequence by segment (segment_sums) rather than through a padded copy.
  bool fused_kernels = false;
};

// y = x W^T + b in bf16 from fp32 master weights, as autocast computes it, for one or more
// linears that share the input `x` (their outputs side by side: one GEMM for a fused
// query/key/value projection). `params` = {W0, b0, W1, b1, ...}. Its backward computes the
// bias gradient as a matrix-vector product (ATen's column sum over [T, H] runs on a handful of
// blocks) and, with `direct`, adds the weight gradients into their .grad itself. One or
// three linears.
torch::Tensor bf16_linear(const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                          bool direct);

// Whether this libtorch offers the fused attention kernel.
bool sdpa_available();
// Whether this libtorch offers variable-length flash attention (at::_flash_attention_forward,
// libtorch >= 2.4). It runs only on CUDA, in fp16/bf16, with head_dim a multiple of 8 and at
// most 256 (and, as flash needs, an sm80+ GPU); see packed_attention() for the other paths.
bool flash_varlen_available();

// A batch in the packed layout: B sequences' real tokens back to back, no padding.
//   ids         [T] int64 on the model's device; each sequence as tokenized (<s> ... </s>)
//   cu_seqlens  [B+1] int32 on the same device: 0, len0, len0+len1, ..., T
//   offsets     the same B+1 cumulative lengths on the host (so nothing reads the device)
//   max_seqlen  the longest sequence's length
// Positions restart per sequence as RoBERTa numbers them (padding_idx + 1 + index within the
// sequence), attention stays within each sequence, and pooling averages each sequence's tokens.
// A sequence may be empty (its embedding is then pool_ln of zeros, as an all-pad row's is).
struct PackedIds {
  torch::Tensor ids;
  torch::Tensor cu_seqlens;
  std::vector<int64_t> offsets;
  int64_t max_seqlen = 0;

  int64_t batch() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t tokens() const { return offsets.empty() ? 0 : offsets.back(); }
};

// Packs `ids` [T] int64 (any device) with host cumulative lengths `offsets` (B+1 entries,
// starting at 0, non-decreasing, ending at T) onto `device`. The only transfers are host to
// device; nothing waits for the device.
PackedIds make_packed(const torch::Tensor& ids, std::vector<int64_t> offsets,
                      const torch::Device& device);
// Packs padded rows `ids` [B,L] (pad = `pad_id` anywhere in a row is dropped) where they are,
// then moves the result to `device` (default: ids' device). Reads the row lengths on the host:
// free for CPU ids (pack host rows, then move them), one device sync for ids on a GPU.
PackedIds pack_padded(const torch::Tensor& ids, int64_t pad_id);
PackedIds pack_padded(const torch::Tensor& ids, int64_t pad_id, const torch::Device& device);

// How the packed layout's attention runs:
//   kFlash         at::_flash_attention_forward over cu_seqlens (see flash_varlen_available)
//   kPerSequence   CPU: one unmasked attention per sequence, from the host offsets
//   kPaddedInside  other devices: q, k, v padded to [B, heads, Lmax, d] inside attention only,
//                  with a key mask (math or SDPA), and gathered back
enum class PackedAttention { kFlash, kPerSequence, kPaddedInside };
PackedAttention packed_attention(const ComputeOptions& compute, const XlmrConfig& config,
                                 const torch::Device& device);

// Device-side bookkeeping of a packed batch, derived once per forward from PackedIds.
struct PackedLayout {
  const PackedIds* packed = nullptr;
  PackedAttention attention = PackedAttention::kPaddedInside;
  torch::Tensor position;  // [T] int64: index of each token within its sequence
  torch::Tensor slot;      // [T] int64: sequence * max_seqlen + position (row in a [B*Lmax] pad)
  torch::Tensor key_mask;  // [B, max_seqlen] bool, true = token (kPaddedInside only)
};

class XlmrLayerImpl : public torch::nn::Module {
 public:
  explicit XlmrLayerImpl(const XlmrConfig& config);
  // hidden [B,L,H] fp32; key_mask [B,L] bool (true = token). Returns [B,L,H] fp32.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& key_mask,
                        const ComputeOptions& compute);
  // Packed layout: hidden [T,H] fp32 -> [T,H] fp32; attention within each sequence of `layout`.
  torch::Tensor forward(const torch::Tensor& hidden, const PackedLayout& layout,
                        const ComputeOptions& compute);

 private:
  // q, k, v [..., heads, head_dim] in the compute dtype from hidden [..., H].
  std::array<torch::Tensor, 3> project(const torch::Tensor& hidden, const ComputeOptions& c);
  // Everything after attention: output projection, residual + LayerNorm, feed-forward.
  // context and hidden [..., H].
  torch::Tensor finish(const torch::Tensor& context, const torch::Tensor& hidden,
                       const ComputeOptions& compute);
  // finish() with compute.fused_kernels: each dropout + add + LayerNorm one CUDA kernel.
  torch::Tensor finish_fused(const torch::Tensor& context, const torch::Tensor& hidden,
                             const ComputeOptions& compute);

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

  // ids [B,L] int64 -> last_hidden_state [B,L,H] fp32, pad positions included: HF's
  // XLMRobertaModel output in HF's own layout (a reference for tests; nothing trains on it).
  torch::Tensor hidden_states(const torch::Tensor& ids);
  // The one encode path: packed sequences -> text embeddings [B,H], LayerNorm(mean of each
  // sequence's hidden states). Training, validation and embedding all come through here.
  torch::Tensor forward(const PackedIds& packed);
  // Padded rows [B,L] (pad = pad_token_id) -> text embeddings [B,H]: the rows packed
  // (pack_padded: one host read of the lengths), then forward(packed).
  torch::Tensor forward(const torch::Tensor& ids);
  // Packed sequences -> last_hidden_state [T,H] fp32 of every real token (HF's values there).
  torch::Tensor hidden_states(const PackedIds& packed);

  const XlmrConfig& config() const { return config_; }
  void set_compute(const ComputeOptions& compute) { compute_ = compute; }
  const ComputeOptions& compute() const { return compute_; }
  torch::nn::LayerNorm pool_ln() const { return pool_ln_; }
  // Parameters the bf16 path reads together, by their named_parameters() names: each layer's
  // query, key and value weights, and their biases, which it projects with one GEMM. Laid out
  // back to back in this order (train/flat_params.h does), the GEMM reads them as one [3H, H]
  // view instead of concatenating them every step, and adds their gradient in one pass.
  std::vector<std::vector<std::string>> adjacent_parameters() const;

 private:
  XlmrConfig config_;
  ComputeOptions compute_;
  torch::nn::Embedding word_embeddings_{nullptr}, position_embeddings_{nullptr},
      token_type_embeddings_{nullptr};
  torch::nn::LayerNorm embedding_norm_{nullptr};
  std::vector<XlmrLayer> layers_;
  torch::nn::LayerNorm pool_ln_{nullptr};

  // Embedding sum + LayerNorm + dropout of token ids with their position ids (any shape).
  torch::Tensor embed(const torch::Tensor& ids, const torch::Tensor& positions);
  PackedLayout layout_of(const PackedIds& packed) const;
  torch::Tensor encode(const PackedIds& packed, const PackedLayout& layout);
};
TORCH_MODULE(SiameseEncoder);

// `parts` stacked along dim 0: a view of their memory when they lie back to back in one storage
// (contiguous, of one dtype, device and trailing sizes, each starting where the one before
// ends) and autograd is not recording them, else a concatenated copy. How the fused q/k/v
// projection reads its weights.
torch::Tensor stacked(const std::vector<torch::Tensor>& parts);

// Each sequence's sum of its tokens' rows: tokens [T, H] packed as `cu_seqlens` [B + 1]
// (cumulative lengths from 0 to T, on tokens' device) -> [B, H], an empty sequence's row zero.
// One pass over the tokens (no [B, Lmax, H] padded copy), deterministic (no atomics); its
// summation order differs from the padded layout's, so results agree to float rounding. The
// pooling of model.fused_kernels; `unsafe`: the offsets are trusted (make_packed checked them).
torch::Tensor segment_sums(const torch::Tensor& tokens, const torch::Tensor& cu_seqlens);

// RoBERTa position ids: padding_idx + 1 + running count of non-pad tokens; pads get padding_idx.
torch::Tensor roberta_position_ids(const torch::Tensor& ids, int64_t padding_idx);

// HF's initialisation: normal(0, initializer_range) for embeddings and Linear weights, zero
// biases, LayerNorm 1/0, zero padding rows; deterministic from `seed` on any device.
void init_weights(SiameseEncoderImpl& model, uint64_t seed);

}  // namespace sx::model

#include "model/xlmr.h"

#include <torch/version.h>

#include "model/dropout_add_norm.h"
#include "model/embedding_grad.h"

#include <cmath>
#include <limits>

namespace sx::model {
namespace {

namespace F = torch::nn::functional;

// A named container, so parameter paths read as HF's ("attention.self.query.weight").
std::shared_ptr<torch::nn::Module> group(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::LayerNorm layer_norm(int64_t size, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({size}).eps(eps));
}

// Linear in the compute dtype; the fp32 master weights are cast on the fly (autocast's rule
// for matmuls), so gradients flow back to them in fp32.
torch::Tensor linear(torch::nn::Linear& layer, const torch::Tensor& x, const ComputeOptions& c) {
  if (!c.bf16) return layer->forward(x);
  return bf16_linear(x, {layer->weight, layer->bias}, c.direct_weight_grads);
}

// LayerNorm in x's dtype: a bf16 residual stream is normalised in bf16 (ATen accumulates the
// statistics in fp32) with the fp32 parameters cast on the fly, as the linears do.
torch::Tensor norm(torch::nn::LayerNorm& ln, const torch::Tensor& x) {
  if (x.scalar_type() == ln->weight.scalar_type()) return ln->forward(x);
  return F::layer_norm(x, F::LayerNormFuncOptions(ln->options.normalized_shape())
                              .weight(ln->weight.to(x.scalar_type()))
                              .bias(ln->bias.to(x.scalar_type()))
                              .eps(ln->options.eps()));
}

// The residual stream's dtype under `compute`.
torch::ScalarType residual_dtype(const ComputeOptions& compute) {
  return compute.bf16 && compute.bf16_residual ? torch::kBFloat16 : torch::kFloat;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Whether `parts` lie back to back in one storage in their order: contiguous, of one dtype,
// device and trailing sizes (the flat buffer lays the fused projection's parameters out so).
// Tensors of separate storages never are, even where an allocator put them next to each other:
// a view over both would reach past the first one's storage.
bool back_to_back(const std::vector<torch::Tensor>& parts) {
  const torch::Tensor& first = parts.front();
  if (!first.defined()) return false;
  const c10::StorageImpl* storage = first.storage().unsafeGetStorageImpl();
  const char* next = static_cast<const char*>(first.data_ptr());
  for (const torch::Tensor& t : parts) {
    if (!t.defined() || !t.is_contiguous() || t.dim() == 0 ||
        t.storage().unsafeGetStorageImpl() != storage || t.scalar_type() != first.scalar_type() ||
        t.dim() != first.dim() || t.sizes().slice(1) != first.sizes().slice(1) ||
        static_cast<const char*>(t.data_ptr()) != next)
      return false;
    next += t.nbytes();
  }
  return true;
}

}  // namespace

torch::Tensor stacked(const std::vector<torch::Tensor>& parts) {
  const torch::Tensor& first = parts.front();
  if (parts.size() == 1) return first;
  // With autograd recording, a view of several parameters through the first one's geometry
  // would send the others' gradients nowhere: concatenate (the fused linear's forward and the
  // direct gradient add run with it off).
  bool recorded = false;
  for (const torch::Tensor& t : parts) recorded = recorded || t.requires_grad();
  if ((recorded && torch::GradMode::is_enabled()) || !back_to_back(parts)) return torch::cat(parts);
  std::vector<int64_t> sizes = first.sizes().vec(), strides(sizes.size(), 1);
  sizes[0] = 0;
  for (const torch::Tensor& t : parts) sizes[0] += t.size(0);
  for (size_t d = sizes.size() - 1; d > 0; --d) strides[d - 1] = strides[d] * sizes[d];
  return first.as_strided(sizes, strides, first.storage_offset());
}

namespace {

// Backward with `direct` gradients: when the weights' .grads lie back to back, and the biases'
// too, grad_w and grad_b are added into them in one pass each. False (nothing added) otherwise.
bool add_into_adjacent_grads(const std::vector<torch::Tensor>& params, const torch::Tensor& grad_w,
                             const torch::Tensor& grad_b) {
  std::vector<torch::Tensor> weight_grads, bias_grads;
  for (size_t i = 0; i + 1 < params.size(); i += 2) {
    weight_grads.push_back(params[i].grad());
    bias_grads.push_back(params[i + 1].grad());
  }
  if (weight_grads.size() < 2 || !back_to_back(weight_grads) || !back_to_back(bias_grads))
    return false;
  torch::NoGradGuard no_grad;
  stacked(weight_grads).add_(grad_w);
  stacked(bias_grads).add_(grad_b);
  return true;
}

// Autograd's C++ functions differentiate Tensor arguments only (a TensorList is one
// non-differentiable argument), so the (weight, bias) pairs are passed one by one, as many as
// there are linears: every argument is a defined tensor (torch 2.x refuses undefined ones).
struct Bf16Linear : torch::autograd::Function<Bf16Linear> {
  template <class... Params>
  static torch::Tensor forward(AutogradContext* ctx, bool direct, const torch::Tensor& x,
                               const Params&... params) {
    static_assert(sizeof...(Params) % 2 == 0, "(weight, bias) pairs");
    const std::vector<torch::Tensor> list{params...};
    std::vector<torch::Tensor> weights, biases;
    for (size_t i = 0; i < list.size(); i += 2) {
      weights.push_back(list[i]);
      biases.push_back(list[i + 1]);
    }
    torch::Tensor w = stacked(weights).to(torch::kBFloat16);
    torch::Tensor b = stacked(biases).to(torch::kBFloat16);
    torch::Tensor x2 = x.to(torch::kBFloat16).reshape({-1, x.size(-1)});
    ctx->save_for_backward({x2, w});
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["direct"] = direct;
    ctx->saved_data["params"] = list;
    std::vector<int64_t> out_sizes = x.sizes().vec();
    out_sizes.back() = w.size(0);
    return torch::addmm(b, x2, w.t()).view(out_sizes);
  }

  // One gradient per forward argument: none for the flag, x's, then each weight's and bias's
  // (none where `direct` added it into .grad already).
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x2 = saved[0], &w = saved[1];
    const auto params = ctx->saved_data["params"].toTensorVector();
    torch::Tensor g = grad_out[0].to(torch::kBFloat16).reshape({-1, w.size(0)});
    variable_list grads(2 + params.size());
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    grads[1] = g.mm(w).view(ctx->saved_data["x_sizes"].toIntVector()).to(x_dtype);
    torch::Tensor grad_w = g.t().mm(x2);
    torch::Tensor grad_b = torch::mv(g.t(), torch::ones({g.size(0)}, g.options()));
    const bool direct = ctx->saved_data["direct"].toBool();
    if (direct && add_into_adjacent_grads(params, grad_w, grad_b)) return grads;
    int64_t row = 0;
    for (size_t i = 0; i + 1 < params.size(); i += 2) {
      const int64_t rows = params[i].size(0);
      torch::Tensor gw = grad_w.narrow(0, row, rows), gb = grad_b.narrow(0, row, rows);
      row += rows;
      if (direct && params[i].grad().defined() && params[i + 1].grad().defined()) {
        torch::NoGradGuard no_grad;
        params[i].mutable_grad().add_(gw);
        params[i + 1].mutable_grad().add_(gb);
      } else {
        grads[2 + i] = gw.to(params[i].scalar_type());
        grads[3 + i] = gb.to(params[i + 1].scalar_type());
      }
    }
    return grads;
  }
};

// Whether the variable-length flash kernel is there to call: at::_flash_attention_forward with
// optional cumulative lengths, window sizes, seqused_k and alibi_slopes after return_debug_mask
// (native_functions.yaml since 2.4; 2.11 adds block_table and num_splits, all defaulted).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SX_HAVE_FLASH_VARLEN 1
#else
#define SX_HAVE_FLASH_VARLEN 0
#endif

// Scaled dot-product attention over padded sequences: q, k, v [B,heads,L,d] in the compute
// dtype, key_mask [B,L] bool (true = token). Returns the context [B,heads,L,d].
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& key_mask, double dropout, bool training, bool sdpa) {
  const int64_t batch = q.size(0), len = k.size(2), head_dim = q.size(3);
  const bool masked = key_mask.defined();  // undefined: every key is a token
#if TORCH_VERSION_MAJOR >= 2
  if (sdpa) {
    // Boolean mask: true = may attend. [B,1,1,L] broadcasts over heads and queries.
    if (!masked) return at::scaled_dot_product_attention(q, k, v, {}, dropout, false);
    return at::scaled_dot_product_attention(q, k, v, key_mask.view({batch, 1, 1, len}), dropout,
                                            false);
  }
#else
  (void)sdpa;
#endif
  torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat) /
                         std::sqrt(static_cast<double>(head_dim));
  // As HF's eager attention: padding keys get the most negative float added.
  if (masked)
    scores = scores + (~key_mask).to(torch::kFloat).view({batch, 1, 1, len}) *
                          std::numeric_limits<float>::lowest();
  torch::Tensor probs = torch::softmax(scores, -1);
  probs = F::dropout(probs, F::DropoutFuncOptions().p(dropout).training(training));
  return torch::matmul(probs.to(v.scalar_type()), v);
}

// Packed attention off the flash kernel's domain: the sequences are padded inside attention
// only. q, k, v [T,heads,d] -> context [T,heads,d].
torch::Tensor attend_padded_inside(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const PackedLayout& layout,
                                   double dropout, bool training, bool sdpa) {
  const int64_t batch = layout.packed->batch(), len = layout.packed->max_seqlen;
  const int64_t heads = q.size(1), head_dim = q.size(2);
  auto pad = [&](const torch::Tensor& x) {  // [T,heads,d] -> [B,heads,L,d], zeros at pads
    return torch::zeros({batch * len, heads, head_dim}, x.options())
        .index_copy(0, layout.slot, x)
        .view({batch, len, heads, head_dim})
        .transpose(1, 2);
  };
  torch::Tensor context = attend(pad(q), pad(k), pad(v), layout.key_mask, dropout, training, sdpa);
  return context.transpose(1, 2)
      .reshape({batch * len, heads, head_dim})
      .index_select(0, layout.slot);
}

// Packed attention on the CPU: one unmasked attention per sequence (work in the sum of the
// squared lengths, not B x Lmax^2). q, k, v [T,heads,d] -> context [T,heads,d].
torch::Tensor attend_per_sequence(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const PackedIds& packed, double dropout,
                                  bool training, bool sdpa) {
  std::vector<torch::Tensor> parts;
  parts.reserve(static_cast<size_t>(packed.batch()));
  for (int64_t b = 0; b < packed.batch(); ++b) {
    const int64_t begin = packed.offsets[b], n = packed.offsets[b + 1] - begin;
    if (n == 0) continue;
    auto one = [&](const torch::Tensor& x) {  // [n,heads,d] -> [1,heads,n,d]
      return x.narrow(0, begin, n).transpose(0, 1).unsqueeze(0);
    };
    parts.push_back(
        attend(one(q), one(k), one(v), torch::Tensor(), dropout, training, sdpa)[0].transpose(0,
                                                                                              1));
  }
  return parts.empty() ? torch::zeros_like(q) : torch::cat(parts, 0);
}

// Variable-length flash attention (fp16/bf16 on CUDA): q, k, v [T,heads,d] -> [T,heads,d].
// Differentiable (derivatives.yaml: _flash_attention_backward), dropout included.
torch::Tensor attend_flash(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const PackedIds& packed, double dropout) {
#if SX_HAVE_FLASH_VARLEN
  // (query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal,
  //  return_debug_mask); the scale defaults to 1/sqrt(head_dim). Returns (output, logsumexp,
  //  rng_state, unused, debug_attn_mask).
  auto result = at::_flash_attention_forward(q, k, v, packed.cu_seqlens, packed.cu_seqlens,
                                             packed.max_seqlen, packed.max_seqlen, dropout,
                                             /*is_causal=*/false, /*return_debug_mask=*/false);
  return std::get<0>(result);
#else
  (void)q, (void)k, (void)v, (void)packed, (void)dropout;
  TORCH_CHECK(false, "variable-length flash attention needs libtorch >= 2.4");
  return torch::Tensor();
#endif
}

}  // namespace

torch::Tensor bf16_linear(const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                          bool direct) {
  const std::vector<torch::Tensor>& p = params;
  for (const auto& t : p) TORCH_CHECK(t.defined(), "bf16_linear: an undefined parameter");
  if (p.size() == 2) return Bf16Linear::apply(direct, x, p[0], p[1]);
  if (p.size() == 6) return Bf16Linear::apply(direct, x, p[0], p[1], p[2], p[3], p[4], p[5]);
  TORCH_CHECK(false, "bf16_linear: one or three (weight, bias) pairs, not ", p.size(), " tensors");
}

bool sdpa_available() {
#if TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

bool flash_varlen_available() {
  return SX_HAVE_FLASH_VARLEN != 0;
}

PackedAttention packed_attention(const ComputeOptions& compute, const XlmrConfig& config,
                                 const torch::Device& device) {
  const int64_t head_dim = config.hidden_size / config.num_attention_heads;
  if (flash_varlen_available() && compute.sdpa && compute.bf16 && device.is_cuda() &&
      head_dim % 8 == 0 && head_dim <= 256)
    return PackedAttention::kFlash;
  return device.is_cpu() && !compute.pad_inside_attention ? PackedAttention::kPerSequence
                                                          : PackedAttention::kPaddedInside;
}

torch::Tensor roberta_position_ids(const torch::Tensor& ids, int64_t padding_idx) {
  torch::Tensor mask = ids.ne(padding_idx).to(torch::kLong);
  return torch::cumsum(mask, 1) * mask + padding_idx;
}

PackedIds make_packed(const torch::Tensor& ids, std::vector<int64_t> offsets,
                      const torch::Device& device) {
  TORCH_CHECK(ids.dim() == 1 && ids.scalar_type() == torch::kLong,
              "packed token ids must be a [T] int64 tensor");
  TORCH_CHECK(!offsets.empty() && offsets.front() == 0 && offsets.back() == ids.size(0),
              "packed offsets must run from 0 to the number of tokens (", ids.size(0), ")");
  TORCH_CHECK(offsets.back() <= std::numeric_limits<int32_t>::max(), "too many packed tokens");
  PackedIds out;
  std::vector<int32_t> cu(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (i > 0) {
      TORCH_CHECK(offsets[i] >= offsets[i - 1], "packed offsets must not decrease");
      out.max_seqlen = std::max(out.max_seqlen, offsets[i] - offsets[i - 1]);
    }
    cu[i] = static_cast<int32_t>(offsets[i]);
  }
  out.ids = ids.to(device);
  out.cu_seqlens = torch::tensor(cu, torch::kInt).to(device);
  out.offsets = std::move(offsets);
  return out;
}

PackedIds pack_padded(const torch::Tensor& ids, int64_t pad_id) {
  return pack_padded(ids, pad_id, ids.device());
}

PackedIds pack_padded(const torch::Tensor& ids, int64_t pad_id, const torch::Device& device) {
  TORCH_CHECK(ids.dim() == 2, "token ids must be [batch, length]");
  torch::Tensor mask = ids.ne(pad_id);
  torch::Tensor lengths = mask.sum(1).to(torch::kCPU).to(torch::kLong).contiguous();
  std::vector<int64_t> offsets(static_cast<size_t>(ids.size(0)) + 1, 0);
  const int64_t* n = lengths.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids.size(0); ++i) offsets[i + 1] = offsets[i] + n[i];
  return make_packed(ids.masked_select(mask).to(torch::kLong), std::move(offsets), device);
}

XlmrLayerImpl::XlmrLayerImpl(const XlmrConfig& config) : config_(config) {
  const int64_t h = config.hidden_size, inner = config.intermediate_size;
  auto attention = group(*this, "attention");
  auto self = group(*attention, "self");
  query_ = self->register_module("query", torch::nn::Linear(h, h));
  key_ = self->register_module("key", torch::nn::Linear(h, h));
  value_ = self->register_module("value", torch::nn::Linear(h, h));
  auto attention_output = group(*attention, "output");
  attention_dense_ = attention_output->register_module("dense", torch::nn::Linear(h, h));
  attention_norm_ =
      attention_output->register_module("LayerNorm", layer_norm(h, config.layer_norm_eps));
  auto intermediate = group(*this, "intermediate");
  intermediate_dense_ = intermediate->register_module("dense", torch::nn::Linear(h, inner));
  auto output = group(*this, "output");
  output_dense_ = output->register_module("dense", torch::nn::Linear(inner, h));
  output_norm_ = output->register_module("LayerNorm", layer_norm(h, config.layer_norm_eps));
}

std::array<torch::Tensor, 3> XlmrLayerImpl::project(const torch::Tensor& hidden,
                                                    const ComputeOptions& c) {
  const int64_t heads = config_.num_attention_heads, h = config_.hidden_size;
  std::vector<int64_t> shape(hidden.sizes().begin(), hidden.sizes().end() - 1);
  shape.push_back(heads);
  shape.push_back(h / heads);
  if (!c.bf16)
    return {linear(query_, hidden, c).view(shape), linear(key_, hidden, c).view(shape),
            linear(value_, hidden, c).view(shape)};
  // bf16: one GEMM for the three projections (one cast of the input, one GEMM backward).
  torch::Tensor qkv = bf16_linear(
      hidden,
      {query_->weight, query_->bias, key_->weight, key_->bias, value_->weight, value_->bias},
      c.direct_weight_grads);
  return {qkv.narrow(-1, 0, h).view(shape), qkv.narrow(-1, h, h).view(shape),
          qkv.narrow(-1, 2 * h, h).view(shape)};
}

torch::Tensor XlmrLayerImpl::finish(const torch::Tensor& context, const torch::Tensor& hidden,
                                    const ComputeOptions& compute) {
  if (compute.fused_kernels) return finish_fused(context, hidden, compute);
  const double hidden_dropout = is_training() ? config_.hidden_dropout_prob : 0.0;
  const torch::ScalarType residual = residual_dtype(compute);
  torch::Tensor attended = linear(attention_dense_, context, compute).to(residual);
  attended =
      F::dropout(attended, F::DropoutFuncOptions().p(hidden_dropout).training(is_training()));
  attended = norm(attention_norm_, attended + hidden);

  torch::Tensor inner = torch::gelu(linear(intermediate_dense_, attended, compute));  // erf GELU
  torch::Tensor out = linear(output_dense_, inner, compute).to(residual);
  out = F::dropout(out, F::DropoutFuncOptions().p(hidden_dropout).training(is_training()));
  return norm(output_norm_, out + attended);
}

torch::Tensor XlmrLayerImpl::finish_fused(const torch::Tensor& context, const torch::Tensor& hidden,
                                          const ComputeOptions& compute) {
  const double p = is_training() ? config_.hidden_dropout_prob : 0.0;
  auto add_norm = [p](const torch::Tensor& x, const torch::Tensor& residual,
                      torch::nn::LayerNorm& ln) {
    return fused_dropout_add_norm(x, residual, ln->weight, ln->bias, p, ln->options.eps());
  };
  FusedNorm attended =
      add_norm(linear(attention_dense_, context, compute), hidden, attention_norm_);
  torch::Tensor inner = torch::gelu(linear(intermediate_dense_, attended.y_bf16, compute));
  return add_norm(linear(output_dense_, inner, compute), attended.y, output_norm_).y;
}

torch::Tensor XlmrLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& key_mask,
                                     const ComputeOptions& compute) {
  const int64_t batch = hidden.size(0), len = hidden.size(1);
  const double attention_dropout = is_training() ? config_.attention_probs_dropout_prob : 0.0;
  auto [q, k, v] = project(hidden, compute);  // [B,L,heads,d]
  torch::Tensor context = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), key_mask,
                                 attention_dropout, is_training(), compute.sdpa);
  context = context.transpose(1, 2).reshape({batch, len, config_.hidden_size});
  return finish(context, hidden, compute);
}

torch::Tensor XlmrLayerImpl::forward(const torch::Tensor& hidden, const PackedLayout& layout,
                                     const ComputeOptions& compute) {
  const double attention_dropout = is_training() ? config_.attention_probs_dropout_prob : 0.0;
  auto [q, k, v] = project(hidden, compute);  // [T,heads,d]
  torch::Tensor context;
  switch (layout.attention) {
    case PackedAttention::kFlash:
      context = attend_flash(q, k, v, *layout.packed, attention_dropout);
      break;
    case PackedAttention::kPerSequence:
      context = attend_per_sequence(q, k, v, *layout.packed, attention_dropout, is_training(),
                                    compute.sdpa);
      break;
    case PackedAttention::kPaddedInside:
      context =
          attend_padded_inside(q, k, v, layout, attention_dropout, is_training(), compute.sdpa);
      break;
  }
  return finish(context.reshape({hidden.size(0), config_.hidden_size}), hidden, compute);
}

SiameseEncoderImpl::SiameseEncoderImpl(const XlmrConfig& config, double pool_ln_eps)
    : config_(config) {
  const int64_t h = config.hidden_size;
  auto embeddings = group(*this, "embeddings");
  word_embeddings_ = embeddings->register_module(
      "word_embeddings", torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, h)));
  position_embeddings_ = embeddings->register_module(
      "position_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.max_position_embeddings, h)));
  token_type_embeddings_ = embeddings->register_module(
      "token_type_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.type_vocab_size, h)));
  embedding_norm_ = embeddings->register_module("LayerNorm", layer_norm(h, config.layer_norm_eps));
  auto encoder = group(*this, "encoder");
  auto list = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layers_.emplace_back(config);
    list->push_back(layers_.back());
  }
  pool_ln_ = register_module("pool_ln", layer_norm(h, pool_ln_eps));
}

std::vector<std::vector<std::string>> SiameseEncoderImpl::adjacent_parameters() const {
  std::vector<std::vector<std::string>> groups;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string self = "encoder.layer." + std::to_string(i) + ".attention.self.";
    for (const char* kind : {"weight", "bias"})
      groups.push_back({self + "query." + kind, self + "key." + kind, self + "value." + kind});
  }
  return groups;
}

torch::Tensor SiameseEncoderImpl::embed(const torch::Tensor& ids, const torch::Tensor& positions) {
  // With the fused kernels and one replica, the word embeddings' gradient is added into its slot.
  const bool direct = compute_.fused_kernels && compute_.direct_weight_grads;
  torch::Tensor words = direct ? embedding_direct_grad(word_embeddings_->weight, ids)
                               : word_embeddings_->forward(ids);
  torch::Tensor x =
      words + position_embeddings_->forward(positions) + token_type_embeddings_->weight[0];
  x = embedding_norm_->forward(x).to(residual_dtype(compute_));
  return F::dropout(x,
                    F::DropoutFuncOptions().p(config_.hidden_dropout_prob).training(is_training()));
}

torch::Tensor SiameseEncoderImpl::hidden_states(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "token ids must be [batch, length]");
  TORCH_CHECK(ids.size(1) + config_.pad_token_id < config_.max_position_embeddings,
              "sequence length ", ids.size(1), " exceeds the model's positions");
  torch::Tensor key_mask = ids.ne(config_.pad_token_id);
  torch::Tensor x = embed(ids, roberta_position_ids(ids, config_.pad_token_id));
  for (auto& layer : layers_) x = layer->forward(x, key_mask, compute_);
  return x.to(torch::kFloat);
}

torch::Tensor SiameseEncoderImpl::forward(const torch::Tensor& ids) {
  return forward(pack_padded(ids, config_.pad_token_id));
}

PackedLayout SiameseEncoderImpl::layout_of(const PackedIds& packed) const {
  TORCH_CHECK(packed.ids.dim() == 1 && packed.cu_seqlens.numel() == packed.batch() + 1 &&
                  packed.ids.size(0) == packed.tokens(),
              "packed ids: ids, cu_seqlens and offsets disagree");
  TORCH_CHECK(packed.max_seqlen + config_.pad_token_id < config_.max_position_embeddings,
              "sequence length ", packed.max_seqlen, " exceeds the model's positions");
  PackedLayout layout;
  layout.packed = &packed;
  const int64_t batch = packed.batch(), len = packed.max_seqlen;
  const auto device = packed.ids.device();
  // Sequence of each token from the device's cumulative lengths: no host round trip.
  torch::Tensor index = torch::arange(packed.tokens(), torch::dtype(torch::kLong).device(device));
  torch::Tensor cu = packed.cu_seqlens.to(torch::kLong);
  torch::Tensor sequence = torch::searchsorted(cu.narrow(0, 1, batch), index, false, true);
  layout.position = index - cu.index_select(0, sequence);
  layout.slot = sequence * len + layout.position;
  layout.attention = packed_attention(compute_, config_, device);
  if (layout.attention == PackedAttention::kPaddedInside)
    layout.key_mask = torch::zeros({batch * len}, torch::dtype(torch::kBool).device(device))
                          .index_fill_(0, layout.slot, true)
                          .view({batch, len});
  return layout;
}

torch::Tensor SiameseEncoderImpl::hidden_states(const PackedIds& packed) {
  return encode(packed, layout_of(packed));
}

torch::Tensor SiameseEncoderImpl::encode(const PackedIds& packed, const PackedLayout& layout) {
  torch::Tensor x = embed(packed.ids, layout.position + (config_.pad_token_id + 1));
  for (auto& layer : layers_) x = layer->forward(x, layout, compute_);
  return x.to(torch::kFloat);
}

torch::Tensor SiameseEncoderImpl::forward(const PackedIds& packed) {
  PackedLayout layout = layout_of(packed);
  torch::Tensor hidden = encode(packed, layout);
  const int64_t batch = packed.batch(), len = packed.max_seqlen, h = config_.hidden_size;
  torch::Tensor sums;
  if (compute_.fused_kernels) {
    sums = segment_sums(hidden, packed.cu_seqlens);
  } else {
    // Per-sequence sums in the order the padded layout sums in (deterministic, unlike
    // atomics): each token to its slot of a zero [B, Lmax, H], then a sum over the positions.
    sums = torch::zeros({batch * len, h}, hidden.options())
               .index_copy(0, layout.slot, hidden)
               .view({batch, len, h})
               .sum(1);
  }
  torch::Tensor cu = packed.cu_seqlens.to(hidden.scalar_type());
  torch::Tensor counts = (cu.narrow(0, 1, batch) - cu.narrow(0, 0, batch)).clamp_min(1.0);
  return pool_ln_->forward(sums / counts.unsqueeze(1));
}

torch::Tensor segment_sums(const torch::Tensor& tokens, const torch::Tensor& cu_seqlens) {
  TORCH_CHECK(tokens.dim() == 2 && cu_seqlens.dim() == 1 && cu_seqlens.numel() >= 1,
              "segment sums need tokens [T, H] and cu_seqlens [B + 1]");
  return torch::segment_reduce(tokens, "sum", /*lengths=*/{}, /*indices=*/{},
                               cu_seqlens.to(torch::kLong), /*axis=*/0, /*unsafe=*/true,
                               /*initial=*/0);
}

void init_weights(SiameseEncoderImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = model.config().initializer_range;
  const int64_t pad = model.config().pad_token_id;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    auto ends_with = [&](const char* s) {
      std::string suffix(s);
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    torch::Tensor values;
    if (name.find("LayerNorm") != std::string::npos || name.find("pool_ln") != std::string::npos) {
      values = ends_with(".weight") ? torch::ones(p.sizes()) : torch::zeros(p.sizes());
    } else if (ends_with(".bias")) {
      values = torch::zeros(p.sizes());
    } else {
      values = torch::empty(p.sizes()).normal_(0.0, std, generator);
      // HF zeroes the padding row of the word and position embeddings.
      if (name == "embeddings.word_embeddings.weight" ||
          name == "embeddings.position_embeddings.weight")
        values[pad].zero_();
    }
    p.copy_(values);
  }
}

}  // namespace sx::model

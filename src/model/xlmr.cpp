#include "model/xlmr.h"

#include <torch/version.h>

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
torch::Tensor linear(torch::nn::Linear& layer, const torch::Tensor& x, bool bf16) {
  if (!bf16) return layer->forward(x);
  return F::linear(x.to(torch::kBFloat16), layer->weight.to(torch::kBFloat16),
                   layer->bias.to(torch::kBFloat16));
}

}  // namespace

bool sdpa_available() {
#if TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

torch::Tensor roberta_position_ids(const torch::Tensor& ids, int64_t padding_idx) {
  torch::Tensor mask = ids.ne(padding_idx).to(torch::kLong);
  return torch::cumsum(mask, 1) * mask + padding_idx;
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

torch::Tensor XlmrLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& key_mask,
                                     const ComputeOptions& compute) {
  const int64_t batch = hidden.size(0), len = hidden.size(1);
  const int64_t heads = config_.num_attention_heads;
  const int64_t head_dim = config_.hidden_size / heads;
  const bool bf16 = compute.bf16;
  const double attention_dropout = is_training() ? config_.attention_probs_dropout_prob : 0.0;
  const double hidden_dropout = is_training() ? config_.hidden_dropout_prob : 0.0;

  auto split_heads = [&](const torch::Tensor& x) {  // [B,L,H] -> [B,heads,L,head_dim]
    return x.view({batch, len, heads, head_dim}).transpose(1, 2);
  };
  torch::Tensor q = split_heads(linear(query_, hidden, bf16));
  torch::Tensor k = split_heads(linear(key_, hidden, bf16));
  torch::Tensor v = split_heads(linear(value_, hidden, bf16));

  torch::Tensor context;
#if TORCH_VERSION_MAJOR >= 2
  if (compute.sdpa) {
    // Boolean mask: true = may attend. [B,1,1,L] broadcasts over heads and queries.
    torch::Tensor mask = key_mask.view({batch, 1, 1, len});
    context = at::scaled_dot_product_attention(q, k, v, mask, attention_dropout, false);
  }
#endif
  if (!context.defined()) {
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat) /
                           std::sqrt(static_cast<double>(head_dim));
    // As HF's eager attention: padding keys get the most negative float added.
    torch::Tensor bias = (~key_mask).to(torch::kFloat).view({batch, 1, 1, len}) *
                         std::numeric_limits<float>::lowest();
    torch::Tensor probs = torch::softmax(scores + bias, -1);
    probs = F::dropout(probs, F::DropoutFuncOptions().p(attention_dropout).training(is_training()));
    context = torch::matmul(probs.to(v.scalar_type()), v);
  }
  context = context.transpose(1, 2).reshape({batch, len, config_.hidden_size});

  torch::Tensor attended = linear(attention_dense_, context, bf16).to(torch::kFloat);
  attended =
      F::dropout(attended, F::DropoutFuncOptions().p(hidden_dropout).training(is_training()));
  attended = attention_norm_->forward(attended + hidden);

  torch::Tensor inner = torch::gelu(linear(intermediate_dense_, attended, bf16));  // erf GELU
  torch::Tensor out = linear(output_dense_, inner, bf16).to(torch::kFloat);
  out = F::dropout(out, F::DropoutFuncOptions().p(hidden_dropout).training(is_training()));
  return output_norm_->forward(out + attended);
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

torch::Tensor SiameseEncoderImpl::hidden_states(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "token ids must be [batch, length]");
  TORCH_CHECK(ids.size(1) + config_.pad_token_id < config_.max_position_embeddings,
              "sequence length ", ids.size(1), " exceeds the model's positions");
  torch::Tensor key_mask = ids.ne(config_.pad_token_id);
  torch::Tensor positions = roberta_position_ids(ids, config_.pad_token_id);
  torch::Tensor x = word_embeddings_->forward(ids) + position_embeddings_->forward(positions) +
                    token_type_embeddings_->weight[0];
  x = embedding_norm_->forward(x);
  x = F::dropout(x, F::DropoutFuncOptions().p(config_.hidden_dropout_prob).training(is_training()));
  for (auto& layer : layers_) x = layer->forward(x, key_mask, compute_);
  return x;
}

torch::Tensor SiameseEncoderImpl::forward(const torch::Tensor& ids) {
  torch::Tensor hidden = hidden_states(ids);
  torch::Tensor mask = ids.ne(config_.pad_token_id).unsqueeze(-1).to(hidden.scalar_type());
  torch::Tensor mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0);
  return pool_ln_->forward(mean);
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

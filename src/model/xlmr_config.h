// The XLM-RoBERTa hyper-parameters of an HF config.json (any size). Torch-free.
#pragma once

#include <cstdint>
#include <string>

namespace sx::model {

struct XlmrConfig {
  int64_t vocab_size = 250002;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 514;
  int64_t type_vocab_size = 1;
  int64_t pad_token_id = 1;
  double layer_norm_eps = 1e-5;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double initializer_range = 0.02;
};

// Reads and checks config.json; a missing or ill-typed key names the file and the key.
XlmrConfig read_xlmr_config(const std::string& path);

}  // namespace sx::model

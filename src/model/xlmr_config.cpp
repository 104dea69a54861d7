#include "model/xlmr_config.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/error.h"

namespace sx::model {

XlmrConfig read_xlmr_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot open the model's config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw UserError(path + ": expected a JSON object");
  XlmrConfig c;
  auto integer = [&](const char* key, int64_t& out, int64_t min, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) throw UserError(path + ": missing key '" + key + "'");
      return;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < min)
      throw UserError(path + ": '" + key + "' expects an integer >= " + std::to_string(min) +
                      ", found " + it->dump());
    out = it->get<int64_t>();
  };
  auto number = [&](const char* key, double& out, double min, double max) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_number() || it->get<double>() < min || it->get<double>() > max)
      throw UserError(path + ": '" + key + "' expects a number in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], found " + it->dump());
    out = it->get<double>();
  };
  integer("vocab_size", c.vocab_size, 1, true);
  integer("hidden_size", c.hidden_size, 1, true);
  integer("num_hidden_layers", c.num_hidden_layers, 0, true);
  integer("num_attention_heads", c.num_attention_heads, 1, true);
  integer("intermediate_size", c.intermediate_size, 1, true);
  integer("max_position_embeddings", c.max_position_embeddings, 3, true);
  integer("type_vocab_size", c.type_vocab_size, 1, false);
  integer("pad_token_id", c.pad_token_id, 0, false);
  number("layer_norm_eps", c.layer_norm_eps, 0, 1);
  number("hidden_dropout_prob", c.hidden_dropout_prob, 0, 1);
  number("attention_probs_dropout_prob", c.attention_probs_dropout_prob, 0, 1);
  number("initializer_range", c.initializer_range, 0, 10);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw UserError(path + ": hidden_size " + std::to_string(c.hidden_size) +
                    " is not a multiple of num_attention_heads " +
                    std::to_string(c.num_attention_heads));
  if (c.pad_token_id >= c.vocab_size || c.pad_token_id >= c.max_position_embeddings)
    throw UserError(path + ": pad_token_id " + std::to_string(c.pad_token_id) + " out of range");
  auto act = j.find("hidden_act");
  if (act != j.end() && !(act->is_string() && act->get<std::string>() == "gelu"))
    throw UserError(path + ": hidden_act " + act->dump() + " is not supported, expected \"gelu\"");
  return c;
}

}  // namespace sx::model

// The settings texts are embedded with, beyond the weights: how they are tokenized and the
// pooling LayerNorm's epsilon. Features files record them (attributes), evaluation.json repeats
// them, and whoever compares two embeddings (predict: features against the configuration;
// evaluate: before against after; export-hf: the evaluation against the model) compares these,
// so the comparison and the spelling of its values live here once. No torch, no MPI.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sx {
struct Config;
namespace io {
class H5File;
}
}  // namespace sx

namespace sx::exporting {

// Unset: not recorded (features written before the setting was).
struct EmbeddingSettings {
  std::optional<int64_t> max_len;          // tokenizer.max_len
  std::optional<std::string> pretokenize;  // tokenizer.pretokenize
  std::optional<bool> keep_eos;            // tokenizer.keep_eos
  std::optional<double> pool_ln_eps;       // model.pool_ln_eps
};

// Their configuration keys, in the order above: "tokenizer.max_len", ..., "model.pool_ln_eps".
const std::vector<std::string>& embedding_setting_keys();

// The configuration's (every one set).
EmbeddingSettings embedding_settings_of(const Config& config);

// A features file's attributes (max_len, pretokenize, keep_eos, pool_ln_eps): read and written.
EmbeddingSettings read_embedding_settings(const io::H5File& f);
void write_embedding_settings(io::H5File& f, const EmbeddingSettings& s);

// Under their configuration keys ({"tokenizer.max_len": 64, ...}), the recorded ones only; the
// reader takes what it finds (an object of an earlier release may lack any of them).
nlohmann::json embedding_settings_json(const EmbeddingSettings& s);
EmbeddingSettings embedding_settings_from_json(const nlohmann::json& j);

// Each setting both record and that differs, in the order above, its values as a configuration
// spells them ("true", "wordpunct", 0.001; an epsilon with every digit where %g would print the
// two alike).
struct SettingDifference {
  std::string key, a, b;
};
std::vector<SettingDifference> embedding_differences(const EmbeddingSettings& a,
                                                     const EmbeddingSettings& b);

// "KEY A<between>B; KEY A<between>B", "" when they agree: evaluate says "16 vs 64", export-hf
// "16, not 64".
std::string describe_differences(const std::vector<SettingDifference>& differences,
                                 const std::string& between);

}  // namespace sx::exporting

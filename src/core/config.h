// The run configuration: one schema (config.cpp) with the notebook's values as defaults,
// loaded from YAML plus Hydra-style `dotted.key=value` overrides and validated before any
// work starts. Every mistake is reported as a UserError naming the file/line or key.
//
// Keys with a fixed set of values are enumerations here, parsed once when the configuration is
// loaded; name_of() gives a value's spelling in the configuration ("bf16"). The rules between
// keys live in one place, check_rules() (config_rules.cpp), which every command applies.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/progress.h"  // ProgressMode (run.progress)

namespace sx {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };  // run.log_level
enum class BadRows { kFail, kSkip };                           // data.bad_rows
enum class PairSampler { kNotebook, kBalanced };               // data.pair_sampler
enum class Pretokenize { kWordpunct, kNone };                  // tokenizer.pretokenize
enum class DeviceChoice { kAuto, kCpu, kCuda };                // model.device
enum class Attention { kMath, kSdpa };                         // model.attention
enum class ResidualDtype { kFp32, kBf16 };                     // model.residual_dtype
enum class Backend { kAuto, kNccl, kMpi };                     // dist.backend
enum class WireType { kFloat32, kBFloat16 };                   // dist.grad_dtype
enum class StopSignal { kUsr1, kUsr2, kTerm };                 // dist.stop_signal
enum class GraphAllReduce { kAfter, kInside };                 // train.graph_allreduce

// The spellings of an enumeration's values in the configuration, in the order of its values.
template <class E>
const std::vector<std::string>& enum_names();
template <class E>
const std::string& name_of(E value) {
  return enum_names<E>()[static_cast<size_t>(value)];
}
// The value spelled `name`; throws UserError naming `what` and the choices otherwise.
template <class E>
E parse_enum(const std::string& name, const std::string& what);
#define SX_DECLARE_ENUM(E)                         \
  template <>                                      \
  const std::vector<std::string>& enum_names<E>(); \
  extern template E parse_enum<E>(const std::string&, const std::string&);
SX_DECLARE_ENUM(LogLevel)
SX_DECLARE_ENUM(ProgressMode)
SX_DECLARE_ENUM(BadRows)
SX_DECLARE_ENUM(PairSampler)
SX_DECLARE_ENUM(Pretokenize)
SX_DECLARE_ENUM(DeviceChoice)
SX_DECLARE_ENUM(Attention)
SX_DECLARE_ENUM(ResidualDtype)
SX_DECLARE_ENUM(Backend)
SX_DECLARE_ENUM(WireType)
SX_DECLARE_ENUM(StopSignal)
SX_DECLARE_ENUM(GraphAllReduce)
#undef SX_DECLARE_ENUM

struct RunConfig {
  std::string dir;
  int64_t seed;
  double max_duration;  // seconds; 0 = no limit
  LogLevel log_level;
  LogLevel other_ranks_log_level;
  ProgressMode progress;
  double progress_interval;  // seconds between progress lines when stderr is not a TTY
  int64_t threads;           // torch intra-op threads per rank; 0 = cores / ranks on the node
};

struct DataConfig {
  std::string train_csv;
  std::string multilingual_csv;
  std::string test_csv;
  BadRows bad_rows;
  int64_t train_pairs;
  int64_t val_pairs;
  std::string text_field;
  std::vector<std::string> train_label_fields;
  std::vector<std::string> multilingual_label_fields;
  std::string lang_field;
  std::string test_id_field;
  std::string test_text_field;
  std::string test_lang_field;
  double label_threshold;
  double val_fraction;
  int64_t min_sample_chars;
  PairSampler pair_sampler;
  bool share_node;  // ranks of a node: corpora and pairs built once, shared
};

struct TokenizerConfig {
  std::string model;
  int64_t max_len;
  Pretokenize pretokenize;
  bool keep_eos;
  int64_t threads;  // 0 = all cores
};

struct ModelConfig {
  std::string pretrained;  // HF model directory; "" = random initialisation from model.config
  std::string config;      // HF config.json for random initialisation
  DeviceChoice device;
  Attention attention;
  bool autocast_bf16;
  ResidualDtype residual_dtype;  // bf16 needs autocast_bf16
  bool fused_kernels;            // CUDA kernels for dropout + residual add + LayerNorm
  double pool_ln_eps;
};

struct TrainConfig {
  int64_t pairs_per_rank;
  int64_t accumulation_steps;  // micro-batches per optimizer step
  int64_t max_steps;
  int64_t steps_per_epoch;
  int64_t max_epochs;
  int64_t patience;
  double lr_min;
  double lr_max;
  double lr_step_epochs;
  double adam_beta1;
  double adam_beta2;
  double adam_epsilon;
  double margin;
  std::string checkpoint_every;  // parse_steps_or_duration (core/strings.h); "" or 0 = off
  int64_t keep_checkpoints;
  double bucket_mb;
  int64_t log_every;
  int64_t max_bad_steps;
  bool balance_ranks;
  bool cuda_graphs;
  int64_t graph_bucket_tokens;     // graphed batches are padded to a multiple of this
  GraphAllReduce graph_allreduce;  // where graphed steps all-reduce the dense gradients
  bool touched_rows_only;          // zero and check the dense gradients and the touched rows only
  bool embedding_adam_overlap;     // the embeddings' Adam rows not looked up next on a side stream
  bool epoch_auc;  // centroid AUC of the multilingual labeled set at each epoch's end
};

struct DistConfig {
  Backend backend;
  double collective_timeout;
  WireType grad_dtype;  // what gradient all-reduces put on the wire
  StopSignal stop_signal;
};

struct ExportConfig {
  int64_t batch_size;
  bool before_training;
  bool before_training_test;  // features_before.h5 holds the test set too
};

struct Config {
  RunConfig run;
  DataConfig data;
  TokenizerConfig tokenizer;
  ModelConfig model;
  TrainConfig train;
  DistConfig dist;
  ExportConfig export_;
};

// One schema entry, as documentation sees it.
struct ConfigFieldInfo {
  std::string key;
  std::string type;  // human description: "integer >= 1", "one of fail|skip", ...
  std::string default_yaml;
  std::string doc;
  bool affects_results;
  bool changes_numbers;  // changes rounding or dropout's draw; not in the hash
};

// All keys with their types, defaults and docs, in schema order.
std::vector<ConfigFieldInfo> config_fields();
// The configuration with every default applied.
Config default_config();

// Load `path` (may be empty: defaults only) and then apply `overrides` ("a.b=value").
// Unknown keys, wrong types and out-of-range values throw UserError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// Checks that the input files named by `sections` ("data", "tokenizer", "model", ...) exist,
// and cross-key rules of those sections. Throws UserError naming the key and path.
void check_inputs(const Config& config, const std::vector<std::string>& sections);

// The configuration as YAML, every key present (what `config.resolved.yaml` holds).
std::string config_to_yaml(const Config& config);
// Every key with its resolved value as YAML, in schema order ("train.lr_max", "0.001").
std::vector<std::pair<std::string, std::string>> config_key_values(const Config& config);
// The input files and directories that the keys of `sections` name (key, path), set ones only.
std::vector<std::pair<std::string, std::string>> input_paths(
    const Config& config, const std::vector<std::string>& sections);
// Writes run.dir/config.resolved.yaml (creating run.dir); returns its path.
std::string write_resolved_config(const Config& config);
// A stable hash of the keys that change results (checkpoints refuse to mix runs).
std::string config_result_hash(const Config& config);
// The hash as releases before checkpoint format 6 computed it, of every number cut to 6
// significant digits (train::config_hash_matches accepts it from their checkpoints only).
std::string config_result_hash_of_six_digits(const Config& config);
// The keys that change results whose values differ, as "key: <then> then, <now> now".
// `six_digits`: numbers compared as earlier releases wrote them (a checkpoint of theirs, whose
// config.resolved.yaml holds 3.16228e-05 for 3.1622776601683795e-05, is no change).
std::vector<std::string> config_result_changes(const Config& then, const Config& now,
                                               bool six_digits = false);
// The keys marked *changes rounding* whose values differ, as "key: X then, Y now": a resume
// with them continues, no longer bit for bit.
std::vector<std::string> config_number_changes(const Config& then, const Config& now);
// Markdown table of every key (docs/configuration.md is checked against it).
std::string config_reference_markdown();

}  // namespace sx

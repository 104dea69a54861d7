#include "core/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <variant>

#include "core/config_rules.h"
#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/strings.h"

namespace sx {

template <class E>
E parse_enum(const std::string& name, const std::string& what) {
  const auto& names = enum_names<E>();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<E>(i);
  throw UserError((what.empty() ? std::string() : what + ": ") + "expected one of " +
                  join(names, "|") + ", found " + quote_value(name));
}

#define SX_ENUM_NAMES(E, ...)                                    \
  template <>                                                    \
  const std::vector<std::string>& enum_names<E>() {              \
    static const std::vector<std::string> names = {__VA_ARGS__}; \
    return names;                                                \
  }                                                              \
  template E parse_enum<E>(const std::string&, const std::string&);
SX_ENUM_NAMES(LogLevel, "trace", "debug", "info", "warn", "error")
SX_ENUM_NAMES(ProgressMode, "auto", "lines", "off")
SX_ENUM_NAMES(BadRows, "fail", "skip")
SX_ENUM_NAMES(PairSampler, "notebook", "balanced")
SX_ENUM_NAMES(Pretokenize, "wordpunct", "none")
SX_ENUM_NAMES(DeviceChoice, "auto", "cpu", "cuda")
SX_ENUM_NAMES(Attention, "math", "sdpa")
SX_ENUM_NAMES(ResidualDtype, "fp32", "bf16")
SX_ENUM_NAMES(Backend, "auto", "nccl", "mpi")
SX_ENUM_NAMES(WireType, "fp32", "bf16")
SX_ENUM_NAMES(StopSignal, "USR1", "USR2", "TERM")
SX_ENUM_NAMES(GraphAllReduce, "after", "inside")
#undef SX_ENUM_NAMES

namespace {

using Value = std::variant<int64_t, double, bool, std::string, std::vector<std::string>>;

enum class Kind {
  kInt,
  kFloat,
  kBool,
  kString,
  kEnum,
  kDuration,
  kStepsOrDuration,  // a string holding parse_steps_or_duration's input
  kFile,
  kDir,
  kStringList
};

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMaxDuration = 1e9;  // seconds

struct Field {
  std::string key;
  Kind kind;
  std::string default_yaml;
  std::string doc;
  double min = -kInf;
  double max = kInf;
  bool min_open = false;    // min itself is refused: (min, max]
  int64_t multiple_of = 1;  // an integer's values: multiples of this
  std::vector<std::string> choices;
  bool affects_results = false;
  bool changes_numbers = false;  // rounding or dropout's draw, not the hash: see numbers()
  std::function<void(Config&, const Value&)> set;
  std::function<Value(const Config&)> get;

  std::string section() const { return key.substr(0, key.find('.')); }
};

// A key and the member it binds, from one spelling: SX_MEMBER(train, patience) is the member
// Config::train.patience and the key "train.patience" (export_ is the section "export"), so a
// key cannot name another member than its own.
#define SX_MEMBER(section, member) \
  &Config::section, &decltype(Config::section)::member, #section "." #member

std::string key_of(std::string spelled) {
  if (const size_t underscore = spelled.find("_."); underscore != std::string::npos)
    spelled.erase(underscore, 1);  // export_.batch_size -> export.batch_size
  return spelled;
}

// Binds a schema entry to a member of one Config section. An enumeration's choices are its
// enum_names(), held as its name in a Value and converted once, here.
template <class Section, class T>
Field entry(Section Config::*section, T Section::*member, const char* key, Kind kind,
            std::string default_yaml, std::string doc) {
  Field f;
  f.key = key_of(key);
  f.kind = kind;
  f.default_yaml = std::move(default_yaml);
  f.doc = std::move(doc);
  if constexpr (std::is_enum_v<T>) {
    f.kind = Kind::kEnum;
    f.choices = enum_names<T>();
    f.set = [section, member](Config& c, const Value& v) {
      (c.*section).*member = parse_enum<T>(std::get<std::string>(v), "");
    };
    f.get = [section, member](const Config& c) { return Value(name_of((c.*section).*member)); };
  } else {
    f.set = [section, member](Config& c, const Value& v) { (c.*section).*member = std::get<T>(v); };
    f.get = [section, member](const Config& c) { return Value((c.*section).*member); };
  }
  return f;
}

Field range(Field f, double min, double max = kInf) {
  f.min = min;
  f.max = max;
  return f;
}
// (min, max]: values above min only.
Field range_above(Field f, double min, double max = kInf) {
  f = range(std::move(f), min, max);
  f.min_open = true;
  return f;
}
Field multiple_of(Field f, int64_t step) {
  f.multiple_of = step;
  return f;
}
Field results(Field f) {
  f.affects_results = true;
  return f;
}
// A key that leaves what is computed alone but changes its numbers: rounding (threads, kernels,
// the all-reduce's order or wire) or which rank's dropout stream a pair gets. Not in the hash:
// a resume that changes one continues, with a warning that it is no longer bit for bit.
Field numbers(Field f) {
  f.changes_numbers = true;
  return f;
}

// The schema: every key, its type, the notebook's default and what it means.
const std::vector<Field>& schema() {
  static const std::vector<Field> fields = [] {
    std::vector<Field> s;
    // run
    s.push_back(entry(SX_MEMBER(run, dir), Kind::kString, "runs/default",
                      "Run directory: resolved config, logs, checkpoints, metrics, features."));
    s.push_back(results(range(entry(SX_MEMBER(run, seed), Kind::kInt, "42",
                                    "Seed of every random choice (split, pairs, init, dropout)."),
                              0)));
    // Durations end at about 31 years: 2^63 seconds printed as a negative budget and overflow
    // the clocks' deadlines.
    s.push_back(
        range(entry(SX_MEMBER(run, max_duration), Kind::kDuration, "0",
                    "Time budget of the whole job from the program's start (seconds, or 90m, "
                    "2h, 1h30m): training stops, checked every step, when set-up, training and "
                    "the final export would not fit. 0 = no limit."),
              0, kMaxDuration));
    s.push_back(entry(SX_MEMBER(run, log_level), Kind::kEnum, "info",
                      "Log level of rank 0 (the lines launch/run.sh reads show at any level: "
                      "the layout, a stop's checkpoint, the job time)."));
    s.push_back(entry(SX_MEMBER(run, other_ranks_log_level), Kind::kEnum, "warn",
                      "Log level of ranks other than 0."));
    s.push_back(
        entry(SX_MEMBER(run, progress), Kind::kEnum, "auto",
              "How rank 0 shows progress (training: step, epoch, smoothed loss, pairs/s, time "
              "to the epoch's end and left in run.max_duration; loading and exporting: the "
              "time left): auto = a bar redrawn in place when stderr is a terminal, a line "
              "every run.progress_interval otherwise; lines = lines always; off = neither."));
    s.push_back(range(entry(SX_MEMBER(run, progress_interval), Kind::kDuration, "30s",
                            "Interval of progress lines when stderr is not a terminal."),
                      0.1, kMaxDuration));
    s.push_back(
        numbers(range(entry(SX_MEMBER(run, threads), Kind::kInt, "0",
                            "CPU threads per rank for torch; 0 = the node's cores / its ranks."),
                      0, 4096)));
    // data
    s.push_back(entry(SX_MEMBER(data, train_csv), Kind::kFile,
                      "data/jigsaw-unintended-bias-train.csv",
                      "English training corpus (Jigsaw unintended-bias train CSV)."));
    s.push_back(entry(SX_MEMBER(data, multilingual_csv), Kind::kFile, "data/validation.csv",
                      "Labeled non-English texts (Jigsaw multilingual validation.csv)."));
    s.push_back(entry(SX_MEMBER(data, test_csv), Kind::kFile, "data/test.csv",
                      "Unlabeled texts to embed (id, content, lang). Empty: none."));
    s.push_back(entry(SX_MEMBER(data, bad_rows), Kind::kEnum, "fail",
                      "What a malformed CSV row does: stop the run, or skip it "
                      "(counted and logged per reason)."));
    s.push_back(results(range(
        entry(SX_MEMBER(data, train_pairs), Kind::kInt, "500000", "Number of training pairs."),
        1)));
    s.push_back(results(range(
        entry(SX_MEMBER(data, val_pairs), Kind::kInt, "1000", "Number of validation pairs."), 1)));
    s.push_back(results(entry(SX_MEMBER(data, text_field), Kind::kString, "comment_text",
                              "Text column of the labeled CSV files.")));
    s.push_back(
        results(entry(SX_MEMBER(data, train_label_fields), Kind::kStringList,
                      "[toxic, severe_toxicity, obscene, identity_attack, insult, threat]",
                      "Label columns of the English file; label = max >= data.label_threshold.")));
    s.push_back(results(entry(SX_MEMBER(data, multilingual_label_fields), Kind::kStringList,
                              "[toxic]", "Label columns of the multilingual file.")));
    s.push_back(results(entry(SX_MEMBER(data, lang_field), Kind::kString, "lang",
                              "Language column; a file without it is English.")));
    s.push_back(
        entry(SX_MEMBER(data, test_id_field), Kind::kString, "id",
              "Id column of the test file: non-negative integers, as Jigsaw's; written back as "
              "numbers (`007` as `7`, which a warning says)."));
    s.push_back(entry(SX_MEMBER(data, test_text_field), Kind::kString, "content",
                      "Text column of the test file."));
    s.push_back(entry(SX_MEMBER(data, test_lang_field), Kind::kString, "lang",
                      "Language column of the test file."));
    s.push_back(results(range(entry(SX_MEMBER(data, label_threshold), Kind::kFloat, "0.5",
                                    "A text is toxic when its largest label field is >= this."),
                              0, 1)));
    s.push_back(results(range(entry(SX_MEMBER(data, val_fraction), Kind::kFloat, "0.1",
                                    "Share of the remaining English corpus kept for validation."),
                              0.001, 0.9)));
    s.push_back(results(range(entry(SX_MEMBER(data, min_sample_chars), Kind::kInt, "10",
                                    "Texts of this many characters or fewer are never sampled."),
                              0)));
    s.push_back(results(entry(
        SX_MEMBER(data, pair_sampler), Kind::kEnum, "notebook",
        "notebook: each side of a category sampled without replacement, categories may end "
        "short (build_siamese_dataset); balanced: exactly the requested pairs, a quarter "
        "toxic-toxic, a quarter normal-normal, a half normal-toxic (drawn with replacement).")));
    s.push_back(entry(
        SX_MEMBER(data, share_node), Kind::kBool, "true",
        "With several ranks on a node: the node's first rank loads and splits the CSV files and "
        "builds the pairs, published once into shared memory the others map (texts stay views "
        "of each rank's read-only mapping of the files). Same corpora and pairs, one copy per "
        "node; false: each rank loads its own copy."));
    // tokenizer
    s.push_back(entry(SX_MEMBER(tokenizer, model), Kind::kFile, "",
                      "XLM-R sentencepiece model (sentencepiece.bpe.model). Empty: the one in "
                      "model.pretrained."));
    s.push_back(results(range(entry(SX_MEMBER(tokenizer, max_len), Kind::kInt, "128",
                                    "Token ids per text (cut and padded)."),
                              2, 4096)));
    s.push_back(
        results(entry(SX_MEMBER(tokenizer, pretokenize), Kind::kEnum, "wordpunct",
                      "wordpunct: split as NLTK's wordpunct_tokenize and encode each word (the "
                      "notebook); none: encode the whole text (HF).")));
    s.push_back(results(entry(SX_MEMBER(tokenizer, keep_eos), Kind::kBool, "true",
                              "A cut sequence still ends with </s> (the notebook drops it).")));
    s.push_back(range(
        entry(SX_MEMBER(tokenizer, threads), Kind::kInt, "0", "Tokenizer threads; 0 = all cores."),
        0, 1024));
    // model
    s.push_back(entry(SX_MEMBER(model, pretrained), Kind::kDir, "",
                      "HF model directory (config.json + model.safetensors). Empty: random "
                      "initialisation from model.config."));
    s.push_back(entry(SX_MEMBER(model, config), Kind::kFile, "",
                      "HF config.json used for random initialisation when model.pretrained is "
                      "empty."));
    s.push_back(numbers(entry(SX_MEMBER(model, device), Kind::kEnum, "auto",
                              "Where the replica runs: auto = the rank's GPU if any, else CPU.")));
    s.push_back(
        numbers(entry(SX_MEMBER(model, attention), Kind::kEnum, "math",
                      "Attention kernel: math (any libtorch) or sdpa (fused, libtorch 2.x).")));
    s.push_back(numbers(entry(SX_MEMBER(model, autocast_bf16), Kind::kBool, "false",
                              "bf16 autocast of the encoder on CUDA (libtorch 2.x).")));
    s.push_back(numbers(
        entry(SX_MEMBER(model, residual_dtype), Kind::kEnum, "fp32",
              "With autocast_bf16: the hidden states between layers (residual adds, dropout, "
              "LayerNorm outputs) in fp32 as autocast keeps them, or bf16 (faster; rounds the "
              "residual stream to bf16).")));
    s.push_back(
        numbers(entry(SX_MEMBER(model, fused_kernels), Kind::kBool, "false",
                      "With autocast_bf16 and the fp32 residual stream on CUDA: each dropout + "
                      "residual add + LayerNorm of the encoder layers as one CUDA kernel forward "
                      "and one backward, which also writes the next matmul's bf16 input "
                      "(the same formula; rounding and dropout's random numbers differ); with one "
                      "rank, the word embeddings' gradient added into its slot by a kernel "
                      "instead of a dense gradient; pooling sums each text's tokens by segment "
                      "instead of through a padded copy. Needs a "
                      "build against a libtorch with CUDA (launch/build-cuda.sh). Ignored, with a "
                      "warning in train and bench train, elsewhere.")));
    s.push_back(results(range(entry(SX_MEMBER(model, pool_ln_eps), Kind::kFloat, "1e-3",
                                    "Epsilon of the pooling LayerNorm (Keras' default)."),
                              0, 1)));
    // train
    s.push_back(results(range(entry(SX_MEMBER(train, pairs_per_rank), Kind::kInt, "32",
                                    "Pairs per replica per step; global batch = this x ranks."),
                              1, 1 << 20)));
    s.push_back(
        range(entry(SX_MEMBER(train, accumulation_steps), Kind::kInt, "1",
                    "Gradient accumulation: micro-batches per optimizer step. Global batch = "
                    "pairs_per_rank x ranks x this, so 1 rank with 8 reproduces 8 ranks; the "
                    "all-reduce, steps per epoch, the schedule and the time checks count optimizer "
                    "steps. Like the world size it may change on resume (the schedule is kept in "
                    "pairs)."),
              1, 1 << 16));
    s.push_back(range(entry(SX_MEMBER(train, max_steps), Kind::kInt, "0",
                            "Cap on global steps (smoke runs, tests); 0 = no limit. A run resumed "
                            "with another global batch keeps the cap in pairs (this x the first "
                            "run's global batch)."),
                      0));
    s.push_back(results(range(entry(SX_MEMBER(train, steps_per_epoch), Kind::kInt, "0",
                                    "Steps per epoch; 0 = the notebook's rule min(20 x validation "
                                    "batches, training batches)."),
                              0)));
    s.push_back(results(
        range(entry(SX_MEMBER(train, max_epochs), Kind::kInt, "0",
                    "Epoch cap; 0 = the notebook's rule max(30, round(10 x "
                    "training batches / steps per epoch)). The one key that "
                    "changes results a resume may change: a finished run "
                    "resumed with a larger cap trains on to it (one early stopping ended stops "
                    "again at once)."),
              0)));
    s.push_back(results(range(entry(SX_MEMBER(train, patience), Kind::kInt, "9",
                                    "Early stopping: epochs without a strictly lower validation "
                                    "loss before training stops."),
                              1)));
    s.push_back(results(range(entry(SX_MEMBER(train, lr_min), Kind::kFloat, "1e-6",
                                    "Triangular2 cyclical learning rate: lower bound."),
                              0)));
    s.push_back(results(range(entry(SX_MEMBER(train, lr_max), Kind::kFloat, "5e-5",
                                    "Triangular2 cyclical learning rate: upper bound."),
                              0)));
    s.push_back(results(range(entry(SX_MEMBER(train, lr_step_epochs), Kind::kFloat, "3",
                                    "Triangular2 half-cycle length, in epochs."),
                              1e-9)));
    s.push_back(results(range(
        entry(SX_MEMBER(train, adam_beta1), Kind::kFloat, "0.9", "Adam beta1."), 0, 0.999999)));
    s.push_back(results(range(
        entry(SX_MEMBER(train, adam_beta2), Kind::kFloat, "0.999", "Adam beta2."), 0, 0.99999999)));
    // 0 divides 0 by 0 on every parameter without a gradient (rows no batch looked up).
    s.push_back(results(range_above(entry(SX_MEMBER(train, adam_epsilon), Kind::kFloat, "1e-7",
                                          "Adam epsilon (Keras' epsilon hat)."),
                                    0, 1)));
    s.push_back(results(range(
        entry(SX_MEMBER(train, margin), Kind::kFloat, "1.0", "Margin m of the DBL loss."), 0)));
    s.push_back(entry(SX_MEMBER(train, checkpoint_every), Kind::kStepsOrDuration, "0",
                      "Step checkpoints besides those at epoch ends and stops: every N optimizer "
                      "steps (500), or every duration of training (30m, 2h, 90s; rank 0's clock, "
                      "all ranks agree on the step). 0 = only at epoch ends and stops."));
    s.push_back(range(entry(SX_MEMBER(train, keep_checkpoints), Kind::kInt, "3",
                            "Step checkpoints kept besides the best one."),
                      1, 1000));
    s.push_back(numbers(range(entry(SX_MEMBER(train, bucket_mb), Kind::kFloat, "25",
                                    "Gradient all-reduce bucket size in MiB."),
                              0.001, 1 << 16)));
    s.push_back(range(entry(SX_MEMBER(train, log_every), Kind::kInt, "50",
                            "Log a training line every this many steps."),
                      1));
    s.push_back(range(entry(SX_MEMBER(train, max_bad_steps), Kind::kInt, "10",
                            "Consecutive non-finite steps (skipped) before training stops."),
                      1));
    s.push_back(
        numbers(entry(SX_MEMBER(train, balance_ranks), Kind::kBool, "true",
                      "Deal each global batch's pairs out so that the ranks' token counts are "
                      "close (each still takes train.pairs_per_rank pairs; the global batch is "
                      "unchanged, but a pair's dropout follows the rank it lands on, as with "
                      "another world size). false: rank r takes the r-th consecutive slice.")));
    s.push_back(
        numbers(entry(SX_MEMBER(train, cuda_graphs), Kind::kBool, "false",
                      "Replay each step's forward and backward as a CUDA graph (CUDA, packed "
                      "layout, flash attention; libtorch 2.x): far fewer kernel launches. Each "
                      "batch is padded to a multiple of train.graph_bucket_tokens tokens with "
                      "dummy sequences, which changes only dropout's random numbers. With several "
                      "ranks the gradient all-reduce runs after the replay instead of overlapping "
                      "backward (see train.graph_allreduce). With train.accumulation_steps > 1 "
                      "each micro-batch replays a graph. Ignored, with a warning, elsewhere.")));
    s.push_back(numbers(multiple_of(
        range(entry(SX_MEMBER(train, graph_bucket_tokens), Kind::kInt, "256",
                    "With train.cuda_graphs: the token bucket a graphed batch is padded up to a "
                    "multiple of. One graph is captured per bucket a batch falls in: 128 wastes "
                    "half the padding of 256 and captures about twice as many graphs (more "
                    "start-up and pool memory)."),
              64, 16384),
        64)));
    s.push_back(entry(SX_MEMBER(train, graph_allreduce), Kind::kEnum, "after",
                      "With train.cuda_graphs and several ranks over NCCL: where the dense "
                      "gradient buckets are all-reduced. after: once the replay is done. "
                      "inside: captured into the step's graph on the communication stream, so "
                      "that they overlap backward as in the eager step (the word-embedding rows "
                      "are still reduced after the replay). Not yet verified on a GPU. Ignored, "
                      "with a warning, where graphs or several ranks over NCCL are not used."));
    s.push_back(entry(SX_MEMBER(train, touched_rows_only), Kind::kBool, "false",
                      "Each step zeroes the gradients and checks them for non-finite values "
                      "over the dense parameters and the word-embedding rows the last step "
                      "wrote only, instead of the whole buffer (the word embeddings are ~70% of "
                      "XLM-R base's parameters). The results are bitwise the same."));
    s.push_back(
        numbers(entry(SX_MEMBER(train, embedding_adam_overlap), Kind::kBool, "false",
                      "Keras Adam's pass over the word embeddings (every row moves every step) "
                      "is split: the rows the next, prefetched batch looks up are updated before "
                      "the next step, the others on a second CUDA stream while it runs (with one "
                      "rank and model.fused_kernels during its forward and backward, otherwise "
                      "only until it starts). Implies train.touched_rows_only; on a GPU it needs "
                      "the fused kernels' build (else not used, with a warning). Bitwise the same "
                      "results on the CPU; on a GPU the rows' kernel rounds as the CPU does, "
                      "within float rounding of the default fused Adam. Not yet verified on a "
                      "GPU.")));
    s.push_back(entry(SX_MEMBER(train, epoch_auc), Kind::kBool, "true",
                      "At each epoch's end, embed the multilingual labeled set (every rank a "
                      "share, eval mode) and log its centroid ROC-AUC per held-out language and "
                      "the mean (as `evaluate`'s AUC centroid) in metrics.jsonl and the epoch "
                      "line. Does not change the training."));
    // dist
    s.push_back(numbers(entry(SX_MEMBER(dist, backend), Kind::kEnum, "auto",
                              "Gradient all-reduce: nccl (GPU), mpi (CPU), auto = nccl when the "
                              "replica is on a GPU.")));
    s.push_back(range(
        entry(SX_MEMBER(dist, collective_timeout), Kind::kDuration, "10m",
              "Deadline of every collective (MPI and NCCL, communicator creation and start-up "
              "agreement included), counted from when a rank enters it, less any time the rank "
              "was stopped (a suspended job): a rank that waits longer for its peers names the "
              "collective and the step and aborts the job."),
        1, kMaxDuration));
    s.push_back(numbers(
        entry(SX_MEMBER(dist, grad_dtype), Kind::kEnum, "fp32",
              "Gradient all-reduce on the wire: fp32, or bf16 (half the bytes; the averaged "
              "gradient is rounded to bf16, the master weights and Adam stay fp32).")));
    s.push_back(entry(SX_MEMBER(dist, stop_signal), Kind::kEnum, "USR1",
                      "Signal that slurm/train.sbatch and launch/run.sh (on Ctrl-C) send for a "
                      "checkpoint and a requeueable stop; train takes SIGUSR1, SIGUSR2, SIGTERM "
                      "and a first Ctrl-C as such a request whatever this says."));
    // export
    s.push_back(range(entry(SX_MEMBER(export_, batch_size), Kind::kInt, "128",
                            "Texts per forward pass when exporting features (validation takes "
                            "train.pairs_per_rank pairs a pass, so that this changes no result)."),
                      1, 1 << 20));
    s.push_back(entry(SX_MEMBER(export_, before_training), Kind::kBool, "true",
                      "train also writes features_before.h5 with the untrained encoder."));
    s.push_back(entry(SX_MEMBER(export_, before_training_test), Kind::kBool, "true",
                      "features_before.h5 holds the test set (data.test_csv) too; false: the "
                      "labeled multilingual set alone, as the notebook projects before training "
                      "(the export before training then takes less of run.max_duration)."));
    return s;
  }();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema())
    if (f.key == key) return &f;
  return nullptr;
}

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  for (const auto& f : schema()) keys.push_back(f.key);
  return keys;
}

bool is_section_prefix(const std::string& path) {
  for (const auto& f : schema())
    if (starts_with(f.key, path + ".")) return true;
  return false;
}

// A number as the configuration reads it back, exactly: the fewest significant digits from 6
// (the form of earlier releases) that give v again, and a whole number below 1e15 without an
// exponent (durations take no exponent). `six_digits`: as earlier releases wrote every number
// (%.6g, which lost digits), for the result hashes of their checkpoints.
std::string fmt_number(double v, bool six_digits = false) {
  char text[40];
  if (six_digits) {
    std::snprintf(text, sizeof text, "%.6g", v);
    return text;
  }
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, v);
    if (std::strtod(text, nullptr) == v) break;
  }
  if (std::strchr(text, 'e') && v == std::floor(v) && std::abs(v) < 1e15)
    std::snprintf(text, sizeof text, "%.0f", v);
  return text;
}

std::string type_description(const Field& f) {
  // An integer's bounds in full (1048576, not 1.04858e+06).
  auto bound = [&](double v) {
    return f.kind == Kind::kInt && std::abs(v) < 9e15 ? std::to_string(static_cast<int64_t>(v))
                                                      : fmt_number(v);
  };
  auto bounds = [&](const char* noun) {
    std::string s = noun;
    bool has_min = f.min != -kInf, has_max = f.max != kInf;
    if (has_min && has_max)
      s +=
          std::string(" in ") + (f.min_open ? "(" : "[") + bound(f.min) + ", " + bound(f.max) + "]";
    else if (has_min)
      s += (f.min_open ? " > " : " >= ") + bound(f.min);
    else if (has_max)
      s += " <= " + bound(f.max);
    if (f.multiple_of > 1) s += ", a multiple of " + std::to_string(f.multiple_of);
    return s;
  };
  switch (f.kind) {
    case Kind::kInt:
      return bounds("an integer");
    case Kind::kFloat:
      return bounds("a number");
    case Kind::kBool:
      return "true or false";
    case Kind::kString:
      return "a string";
    case Kind::kEnum:
      return "one of " + join(f.choices, "|");
    case Kind::kDuration:
      return bounds(
          "a duration (seconds, or 90s, 30m, 2h, 1h30m, 1d: each unit once, largest first, a part "
          "below the unit before it)");
    case Kind::kStepsOrDuration:
      return "a number of steps (500) or a duration (90s, 30m, 2h)";
    case Kind::kFile:
      return "a file path";
    case Kind::kDir:
      return "a directory path";
    case Kind::kStringList:
      return "a list of strings";
  }
  return "?";
}

// Where a value came from, for error messages: "cfg.yaml:12" or "override 'a.b=c'".
struct Origin {
  std::string where;
};

[[noreturn]] void fail(const Origin& origin, const std::string& message) {
  throw UserError(origin.where + ": " + message);
}

[[noreturn]] void fail_value(const Origin& origin, const Field& f, const std::string& found) {
  fail(origin, f.key + " expects " + type_description(f) + ", found " + quote_value(found));
}

// A NUL ("a\0.old" in YAML) would cut the value short at every system call that takes it.
[[noreturn]] void fail_nul(const Origin& origin, const Field& f, const std::string& text) {
  fail(origin, f.key + " holds a NUL character after " +
                   quote_value(text.substr(0, text.find('\0'))) + "; expected text without one");
}

// "; line N indents with a tab ..." when a line up to `last` does (yaml-cpp's message for it,
// "illegal map value" and the like, does not say so), else "".
std::string tab_hint(const std::string& path, int last) {
  std::ifstream in(path);
  std::string line;
  for (int n = 1; n <= last && std::getline(in, line); ++n) {
    const size_t text = line.find_first_not_of(" \t");
    // A comment's indentation is free (YAML ignores it).
    if (text != std::string::npos && line[text] != '#' && line.find('\t') < text)
      return "; line " + std::to_string(n) + " indents with a tab, and YAML indents with spaces";
  }
  return "";
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end) return false;
  out = v;
  return true;
}

bool parse_float(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno || *end || !std::isfinite(v)) return false;
  out = v;
  return true;
}

Value parse_value(const Field& f, const YAML::Node& node, const Origin& origin) {
  if (f.kind == Kind::kStringList) {
    std::vector<std::string> items;
    if (node.IsSequence()) {
      for (const auto& item : node) {
        if (!item.IsScalar()) fail_value(origin, f, "a nested structure");
        items.push_back(item.Scalar());
      }
    } else if (node.IsScalar()) {
      for (const auto& part : split(node.Scalar(), ','))
        if (!trim(part).empty()) items.push_back(trim(part));
    } else {
      fail_value(origin, f, node.IsMap() ? "a mapping" : "nothing");
    }
    if (items.empty()) fail_value(origin, f, "an empty list");
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].find('\0') != std::string::npos) fail_nul(origin, f, items[i]);
      if (std::find(items.begin(), items.begin() + i, items[i]) != items.begin() + i)
        fail(origin, f.key + " lists " + quote_value(items[i]) + " twice; give each once");
    }
    return items;
  }
  if (node.IsNull()) {
    if (f.kind == Kind::kFile || f.kind == Kind::kDir || f.kind == Kind::kStepsOrDuration)
      return std::string();
    fail_value(origin, f, "nothing");
  }
  if (!node.IsScalar()) fail_value(origin, f, node.IsMap() ? "a mapping" : "a list");
  const std::string text = node.Scalar();
  auto check_range = [&](double v) {
    if (v < f.min || v > f.max || (f.min_open && v == f.min)) fail_value(origin, f, text);
  };
  switch (f.kind) {
    case Kind::kInt: {
      int64_t v;
      if (!parse_int(text, v) || v % f.multiple_of != 0) fail_value(origin, f, text);
      check_range(static_cast<double>(v));
      return v;
    }
    case Kind::kFloat: {
      double v;
      if (!parse_float(text, v)) fail_value(origin, f, text);
      check_range(v);
      return v;
    }
    case Kind::kBool: {
      static const std::map<std::string, bool> words = {
          {"true", true},   {"True", true},   {"TRUE", true},   {"yes", true}, {"on", true},
          {"false", false}, {"False", false}, {"FALSE", false}, {"no", false}, {"off", false}};
      auto it = words.find(text);
      if (it == words.end()) fail_value(origin, f, text);
      return it->second;
    }
    case Kind::kEnum: {
      for (const auto& c : f.choices)
        if (c == text) return text;
      fail_value(origin, f, text);
    }
    case Kind::kDuration: {
      double v;
      try {
        v = parse_duration(text);
      } catch (const std::exception&) {
        fail_value(origin, f, text);
      }
      check_range(v);
      return v;
    }
    case Kind::kStepsOrDuration:
      try {
        parse_steps_or_duration(text);
      } catch (const std::exception&) {
        fail_value(origin, f, text);
      }
      return trim(text);
    case Kind::kString:
    case Kind::kFile:
    case Kind::kDir:
      // A path or name holding a NUL ("a\0.old" in YAML) was cut at it by every system call.
      if (text.find('\0') != std::string::npos) fail_nul(origin, f, text);
      return text;
    case Kind::kStringList:
      break;
  }
  fail_value(origin, f, text);
}

void apply(Config& config, const Field& f, const YAML::Node& node, const Origin& origin) {
  f.set(config, parse_value(f, node, origin));
}

[[noreturn]] void unknown_key(const Origin& origin, const std::string& key) {
  std::vector<std::string> candidates = all_keys();
  if (key.find('.') == std::string::npos) {  // a top-level name: compare with the sections
    candidates.clear();
    for (const auto& f : schema())
      if (candidates.empty() || candidates.back() != f.section()) candidates.push_back(f.section());
  }
  std::string hint = closest_match(key, candidates);
  if (hint.empty()) {
    // A section name typo ("trian.patience") is still worth a hint.
    std::vector<std::string> sections;
    for (const auto& f : schema())
      if (sections.empty() || sections.back() != f.section()) sections.push_back(f.section());
    std::string first = key.substr(0, key.find('.'));
    std::string section = closest_match(first, sections);
    if (!section.empty() && key.find('.') != std::string::npos)
      hint = closest_match(section + key.substr(key.find('.')), all_keys());
  }
  fail(origin, "unknown key '" + key + "'" +
                   (hint.empty() ? std::string(" (see `siamese-xlmr config --docs`)")
                                 : " (did you mean '" + hint + "'?)"));
}

// Keys removed from the schema. A file written before them (config.resolved.yaml lists every
// key) still loads when it gives the one behaviour the program now always has; any other value
// is an error saying what replaced the key.
struct RetiredKey {
  const char* key;
  std::vector<std::string> kept;  // spellings of the surviving behaviour
  const char* replacement;
};
const std::vector<RetiredKey>& retired_keys() {
  static const std::vector<RetiredKey> keys = {
      {"model.layout",
       {"packed"},
       "batches are always packed now (the padded training layout was retired); delete the key"},
      {"tokenizer.share_node",
       {"false", "False", "FALSE", "no", "off"},
       "each rank tokenizes the texts it consumes (token ids shared per node were retired: "
       "they made node memory worse); delete the key"},
  };
  return keys;
}

// True when `key` is retired and `value` is its surviving behaviour (nothing to apply); throws
// for a retired key with another value; false for a key that was never in the schema.
bool accept_retired(const std::string& key, const YAML::Node& value, const Origin& origin) {
  for (const auto& r : retired_keys()) {
    if (key != r.key) continue;
    const std::string text = value.IsScalar() ? value.Scalar() : "";
    for (const auto& kept : r.kept)
      if (text == kept) return true;
    fail(origin, key + " was removed: " + r.replacement + " (found " + quote_value(text) + ")");
  }
  return false;
}

Origin origin_of(const std::string& file, const YAML::Node& node) {
  const auto mark = node.Mark();
  return {file + (mark.line >= 0 ? ":" + std::to_string(mark.line + 1) : "")};
}

// `seen`: the line of each key given so far in the file, dotted or nested alike (yaml-cpp keeps a
// repeated key twice; "train.patience: 5" and "train: {patience: 6}" name one key).
void apply_map(Config& config, const YAML::Node& map, const std::string& prefix,
               const std::string& file, std::map<std::string, int>& seen) {
  for (const auto& item : map) {
    const YAML::Node& key_node = item.first;
    const YAML::Node& value = item.second;
    if (!key_node.IsScalar()) fail(origin_of(file, key_node), "keys must be plain names");
    std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
    Origin origin = origin_of(file, key_node);
    if (auto [first, fresh] = seen.emplace(key, key_node.Mark().line + 1); !fresh)
      fail(origin, "'" + key + "' is given twice in this file (first at line " +
                       std::to_string(first->second) + "), expected once");
    if (const Field* f = find_field(key)) {
      apply(config, *f, value, origin);
    } else if (is_section_prefix(key)) {
      if (value.IsNull()) continue;  // an empty section keeps its defaults
      if (!value.IsMap()) fail(origin, "'" + key + "' is a section and expects a mapping of keys");
      apply_map(config, value, key, file, seen);
    } else if (!accept_retired(key, value, origin)) {
      unknown_key(origin, key);
    }
  }
}

std::string value_to_yaml(const Value& v, bool six_digits = false) {
  YAML::Emitter out;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          out << YAML::Flow << YAML::BeginSeq;
          for (const auto& s : x) out << s;
          out << YAML::EndSeq;
        } else if constexpr (std::is_same_v<T, double>) {
          out << fmt_number(x, six_digits);
        } else {
          out << x;
        }
      },
      v);
  return out.c_str();
}

}  // namespace

std::vector<ConfigFieldInfo> config_fields() {
  std::vector<ConfigFieldInfo> out;
  for (const auto& f : schema())
    out.push_back(
        {f.key, type_description(f), f.default_yaml, f.doc, f.affects_results, f.changes_numbers});
  return out;
}

Config default_config() {
  static const Config defaults = [] {
    Config c{};
    for (const auto& f : schema()) {
      YAML::Node node = YAML::Load(f.default_yaml.empty() ? "~" : f.default_yaml);
      if (f.kind == Kind::kString && node.IsNull()) node = YAML::Node(std::string());
      f.set(c, parse_value(f, node, Origin{"schema default"}));
    }
    return c;
  }();
  return defaults;
}

namespace {

// The configuration file's one YAML document (null when it holds none).
YAML::Node read_config_file(const std::string& path) {
  if (!files::exists(path)) throw UserError("--config: file not found: " + path);
  if (files::is_directory(path))
    throw UserError("--config: " + path + " is a directory, expected a YAML file");
  try {
    // Empty documents (a leading or trailing ---) hold nothing; a second one with content was
    // silently ignored.
    std::vector<YAML::Node> documents;
    for (const YAML::Node& document : YAML::LoadAllFromFile(path))
      if (!document.IsNull()) documents.push_back(document);
    if (documents.size() > 1)
      throw UserError(path + ":" + std::to_string(documents[1].Mark().line + 1) + ": holds " +
                      std::to_string(documents.size()) +
                      " YAML documents (separated by ---), expected one");
    return documents.empty() ? YAML::Node() : documents.front();
  } catch (const YAML::ParserException& e) {
    throw UserError(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg +
                    tab_hint(path, e.mark.line + 1));
  } catch (const YAML::BadFile&) {  // (yaml-cpp keeps no reason: the open says it)
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const std::string why = fd < 0 ? std::string(": ") + std::strerror(errno) : "";
    if (fd >= 0) ::close(fd);
    throw UserError("--config: cannot read " + path + why);
  }
}

// One dotted.key=value override.
void apply_override(Config& config, const std::string& ov) {
  Origin origin{"override " + quote_value(ov)};
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    fail(origin, "expected dotted.key=value (for example train.patience=5)");
  std::string key = trim(ov.substr(0, eq));
  YAML::Node node;
  std::string text = ov.substr(eq + 1);
  bool yaml = true;
  try {
    node = YAML::Load(text);
  } catch (const YAML::ParserException&) {
    node = YAML::Node(text);  // not YAML: take it as a plain string
    yaml = false;
  }
  const Field* f = find_field(key);
  // '[a, b' (no closing bracket) would otherwise be the items "[a" and "b".
  if (!yaml && f && f->kind == Kind::kStringList && !trim(text).empty() && trim(text)[0] == '[')
    fail(origin,
         "the list is not valid YAML (an unclosed or extra bracket?); expected [a, b] or a, b");
  if (!f) {
    if (is_section_prefix(key))
      fail(origin,
           "'" + key + "' is a section; override one of its keys (" + key + ".<name>=value)");
    if (accept_retired(key, node, origin)) return;
    unknown_key(origin, key);
  }
  if (node.IsNull() && f->kind == Kind::kString) node = YAML::Node(std::string());
  apply(config, *f, node, origin);
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config config = default_config();
  if (!path.empty()) {
    const YAML::Node root = read_config_file(path);
    if (root.IsMap()) {
      std::map<std::string, int> seen;
      apply_map(config, root, "", path, seen);
    } else if (!root.IsNull()) {
      throw UserError(path +
                      ": expected a mapping of sections (run:, data:, ...) at the top level");
    }
  }
  for (const auto& ov : overrides) apply_override(config, ov);
  // Where the rules' values came from: the file, its overrides, or both.
  std::string where = path.empty() ? "the overrides" : path;
  if (!path.empty() && !overrides.empty()) where += " with its overrides";
  check_key_rules(config, path.empty() && overrides.empty() ? "config" : where);
  return config;
}

void check_inputs(const Config& config, const std::vector<std::string>& sections) {
  for (const auto& f : schema()) {
    if (std::find(sections.begin(), sections.end(), f.section()) == sections.end()) continue;
    if (f.kind != Kind::kFile && f.kind != Kind::kDir) continue;
    const std::string path = std::get<std::string>(f.get(config));
    if (path.empty()) continue;
    if (!files::exists(path))
      throw UserError(f.key + ": " + (f.kind == Kind::kDir ? "directory" : "file") +
                      " not found: " + path);
    if (f.kind == Kind::kFile && files::is_directory(path))
      throw UserError(f.key + ": " + path + " is a directory, expected a file");
    if (f.kind == Kind::kDir && !files::is_directory(path))
      throw UserError(f.key + ": " + path + " is a file, expected a directory");
  }
  auto uses = [&](const char* s) {
    return std::find(sections.begin(), sections.end(), s) != sections.end();
  };
  if (uses("data")) {
    if (config.data.train_csv.empty()) throw UserError("data.train_csv: must name a file");
    if (config.data.multilingual_csv.empty())
      throw UserError("data.multilingual_csv: must name a file");
  }
  if (uses("tokenizer") && config.tokenizer.model.empty() && config.model.pretrained.empty())
    throw UserError(
        "tokenizer.model: must name a sentencepiece model file (or set model.pretrained to an HF "
        "model directory that holds sentencepiece.bpe.model)");
  if (uses("model") && config.model.pretrained.empty() && config.model.config.empty())
    throw UserError(
        "model.pretrained and model.config are both empty: name an HF model directory, or a "
        "config.json to initialise from");
}

std::string config_to_yaml(const Config& config) {
  std::string out = "# Resolved siamese-xlmr configuration: every key, defaults included.\n";
  std::string section;
  for (const auto& f : schema()) {
    if (f.section() != section) {
      section = f.section();
      out += section + ":\n";
    }
    out += "  " + f.key.substr(section.size() + 1) + ": " + value_to_yaml(f.get(config)) + "\n";
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> config_key_values(const Config& config) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : schema()) out.emplace_back(f.key, value_to_yaml(f.get(config)));
  return out;
}

std::vector<std::pair<std::string, std::string>> input_paths(
    const Config& config, const std::vector<std::string>& sections) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : schema()) {
    if (f.kind != Kind::kFile && f.kind != Kind::kDir) continue;
    if (std::find(sections.begin(), sections.end(), f.section()) == sections.end()) continue;
    const std::string path = std::get<std::string>(f.get(config));
    if (!path.empty()) out.emplace_back(f.key, path);
  }
  return out;
}

std::string write_resolved_config(const Config& config) {
  try {
    files::create_directories(config.run.dir);
  } catch (const std::exception& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  std::string path = files::join(config.run.dir, "config.resolved.yaml");
  try {
    files::write_file_atomically(path, config_to_yaml(config));
  } catch (const std::exception& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  return path;
}

namespace {

std::string result_hash(const Config& config, bool six_digits) {
  Fnv1a hash;  // over "key=value" lines of the keys that change results
  for (const auto& f : schema())
    if (f.affects_results)
      hash.update(f.key + "=" + value_to_yaml(f.get(config), six_digits) + "\n");
  return hash.hex();
}

}  // namespace

std::string config_result_hash(const Config& config) {
  return result_hash(config, false);
}

std::string config_result_hash_of_six_digits(const Config& config) {
  return result_hash(config, true);
}

namespace {
// The keys whose `marked` flag is set and whose values differ, as "key: X then, Y now"
// (compared as `six_digits` says, shown exactly).
std::vector<std::string> changed_keys(const Config& then, const Config& now, bool Field::*marked,
                                      bool six_digits) {
  std::vector<std::string> out;
  for (const auto& f : schema()) {
    if (!(f.*marked)) continue;
    if (value_to_yaml(f.get(then), six_digits) == value_to_yaml(f.get(now), six_digits)) continue;
    out.push_back(f.key + ": " + value_to_yaml(f.get(then)) + " then, " +
                  value_to_yaml(f.get(now)) + " now");
  }
  return out;
}
}  // namespace

std::vector<std::string> config_result_changes(const Config& then, const Config& now,
                                               bool six_digits) {
  return changed_keys(then, now, &Field::affects_results, six_digits);
}

std::vector<std::string> config_number_changes(const Config& then, const Config& now) {
  return changed_keys(then, now, &Field::changes_numbers, false);
}

std::string config_reference_markdown() {
  std::string out = "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& f : schema()) {
    std::string def = f.default_yaml.empty() ? "(empty)" : f.default_yaml;
    std::string type = type_description(f);
    for (size_t pos = 0; (pos = type.find('|', pos)) != std::string::npos; pos += 2)
      type.replace(pos, 1, "\\|");  // a bare | would end the table cell
    out += "| `" + f.key + "` | " + type + " | `" + def + "` | " + f.doc +
           (f.affects_results ? " *(affects results)*" : "") +
           (f.changes_numbers ? " *(changes rounding)*" : "") + " |\n";
  }
  return out;
}

}  // namespace sx

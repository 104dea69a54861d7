// bench train: training throughput of the trainer's own step (train::train_step) on synthetic
// batches shaped like the PyTorch reference benchmark's (../shared/bench/pytorch_reference.py),
// with a randomly initialised model from an HF config.json. Runs under mpirun like train
// (one rank per GPU); rank 0 prints the table and the JSON.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <torch/version.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/bench_profile.h"
#include "app/commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "data/rank_deal.h"
#include "data/text_batch.h"
#include "dist/communicator.h"
#include "dist/mpi_env.h"
#include "model/encoder_factory.h"
#include "train/flat_params.h"
#include "train/prefetch.h"
#include "train/replica.h"
#include "train/step.h"

#ifdef SX_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace sx::app {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// What the reference's formula counts: the parameters outside the embeddings of HF's
// XLMRobertaModel (our pooling LayerNorm is not in it).
int64_t non_embedding_parameters(model::SiameseEncoderImpl& model) {
  int64_t n = 0;
  for (const auto& p : model.named_parameters())
    if (p.key().find("embeddings") == std::string::npos && p.key().rfind("pool_ln", 0) != 0)
      n += p.value().numel();
  return n;
}

// Model FLOPs of one step as the reference counts them (6 N per token, every sequence padded
// to `padded_len`, plus attention's 4 L^2 H per sequence and layer, x3 for backward), and the
// same on the real tokens only.
struct Flops {
  double reference = 0, real = 0;
};
Flops step_flops(const model::XlmrConfig& c, int64_t n_nonemb, int64_t sequences,
                 int64_t padded_len, int64_t real_tokens, int64_t sum_sq_len) {
  const double layers = static_cast<double>(c.num_hidden_layers),
               h = static_cast<double>(c.hidden_size);
  Flops f;
  f.reference = 6.0 * n_nonemb * static_cast<double>(sequences * padded_len) +
                3.0 * layers * 4.0 * sequences * static_cast<double>(padded_len * padded_len) * h;
  f.real = 6.0 * n_nonemb * static_cast<double>(real_tokens) +
           3.0 * layers * 4.0 * static_cast<double>(sum_sq_len) * h;
  return f;
}

double peak_memory_gib(const torch::Device& device) {
#ifdef SX_WITH_CUDA
  if (device.is_cuda())
    return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(device.index())
                                   .allocated_bytes[0]  // StatType::AGGREGATE
                                   .peak) /
           (1 << 30);
#endif
  (void)device;
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1 << 20);  // host peak RSS (KiB -> GiB)
}

void reset_peak_memory(const torch::Device& device) {
#ifdef SX_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  (void)device;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

std::vector<int64_t> parse_pairs(const std::string& list) {
  std::vector<int64_t> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw UserError("--pairs: expected a comma-separated list of positive integers, found '" +
                      list + "'");
    }
  }
  if (out.empty()) throw UserError("--pairs: empty list");
  return out;
}

struct Bench {
  const Config& config;
  const BenchTrainArgs& args;
  const dist::MpiEnv& env;
  torch::Device device;
  train::Trainee trainee;
  int64_t n_nonemb = 0;
};

// The steps of one setting, `per_rank` pairs per rank: batches made ahead and split over the
// ranks as train's are, the step's settings, and what the last step reported.
class SettingSteps {
 public:
  SettingSteps(Bench& b, int64_t per_rank)
      : b_(b),
        per_rank_(per_rank),
        seed_(static_cast<uint64_t>(b.config.run.seed)),
        // The reference's ids are uniform in [5, 250000); smaller vocabularies cap them.
        vocab_end_(
            static_cast<int32_t>(std::min<int64_t>(250000, b.trainee.model->config().vocab_size))),
        batches_([this](uint64_t k) { return host_batch(k); }, 1) {
    settings_.margin = b.config.train.margin;
    settings_.lr = 5e-5;  // the reference's constant rate
    if (b.trainee.rows_adam)
      settings_.next_batches = [this]() -> const std::vector<train::HostBatch>* {
        const train::HostBatch* next = batches_.ready_next();
        if (!next) return nullptr;
        next_one_.assign(1, *next);
        return &next_one_;
      };
  }

  data::TextBatch global_batch(uint64_t k) const {
    return data::random_text_batch(b_.env.world * per_rank_, seed_ * 1000003 + k, 10,
                                   b_.args.max_len, vocab_end_);
  }

  void step(train::PhaseTimer* timer) {
    std::vector<train::HostBatch> micro_batches;  // one: no accumulation here
    micro_batches.push_back(batches_.take(k, &waited));
    settings_.step = static_cast<int64_t>(k) + 1;
    settings_.dropout_seed = seed_ * 7919 + k * 131 + static_cast<uint64_t>(b_.env.rank);
    const train::StepResult r = train::train_step(b_.trainee, micro_batches, settings_, timer);
    prep = micro_batches.front().prep_s;
    loss = r.loss;
    ++k;
  }

  uint64_t k = 0;                         // steps taken
  double waited = 0, prep = 0, loss = 0;  // of the last step

 private:
  train::HostBatch host_batch(uint64_t k) const {
    const auto start = Clock::now();
    const int world = b_.env.world;
    data::TextBatch global = global_batch(k);
    const auto tokens = data::pair_token_counts(global);
    const auto assignment = b_.config.train.balance_ranks
                                ? data::balanced_assignment(tokens, world, per_rank_)
                                : data::consecutive_assignment(world, per_rank_);
    train::HostBatch h =
        train::make_host_batch(data::select_pairs(global, assignment[b_.env.rank]), b_.device);
    h.consumed = k;
    h.imbalance = data::token_imbalance(tokens, assignment);
    const std::vector<int64_t> shares = data::rank_tokens(tokens, assignment);
    h.most_rank_tokens = *std::max_element(shares.begin(), shares.end());
    h.prep_s = std::chrono::duration<double>(Clock::now() - start).count();
    return h;
  }

  Bench& b_;
  const int64_t per_rank_;
  const uint64_t seed_;
  const int32_t vocab_end_;
  train::StepSettings settings_;
  std::vector<train::HostBatch> next_one_;  // train.embedding_adam_overlap: the next step's batch
  train::Prefetcher<train::HostBatch> batches_;  // last: its thread uses the members above
};

// Tokens, FLOPs and the ranks' token balance of the steps [first, end), made again.
void describe_batches(const Bench& b, const SettingSteps& steps, uint64_t first, uint64_t end,
                      int64_t per_rank, double step_s, json& j) {
  const int world = b.env.world;
  int64_t real_tokens = 0, sum_sq = 0;
  double imbalance_balanced = 0, imbalance_consecutive = 0;
  for (uint64_t s = first; s < end; ++s) {
    data::TextBatch global = steps.global_batch(s);
    const auto tokens = data::pair_token_counts(global);
    real_tokens += global.tokens();
    sum_sq += global.sum_squared_lengths();
    imbalance_balanced +=
        data::token_imbalance(tokens, data::balanced_assignment(tokens, world, per_rank));
    imbalance_consecutive +=
        data::token_imbalance(tokens, data::consecutive_assignment(world, per_rank));
  }
  const double n = static_cast<double>(end - first);
  const int64_t n_steps = static_cast<int64_t>(end - first);
  const int64_t global_pairs = world * per_rank;
  const Flops flops = step_flops(b.trainee.model->config(), b.n_nonemb, 2 * global_pairs,
                                 b.args.max_len, real_tokens / n_steps, sum_sq / n_steps);
  j["real_tokens_per_s"] = real_tokens / n / step_s;
  j["padded_tokens_per_s"] = 2.0 * global_pairs * b.args.max_len / step_s;
  j["model_tflops_per_s"] = flops.reference / step_s / 1e12;
  j["model_tflops_per_s_real_tokens"] = flops.real / step_s / 1e12;
  j["token_imbalance_balanced"] = imbalance_balanced / n;
  j["token_imbalance_consecutive"] = imbalance_consecutive / n;
}

// --profile: a few more steps under kineto (rank 0 writes the trace; the others step along).
void profile_setting(Bench& b, SettingSteps& steps, int64_t global_pairs) {
  if (b.args.profile.empty()) return;
  if (b.env.rank != 0) {
    for (int64_t i = 0; i < b.args.profile_steps; ++i) steps.step(nullptr);
    return;
  }
  const std::string trace =
      b.args.profile + "/trace-" + std::to_string(global_pairs) + "-" + b.args.layout + ".json";
  profile_steps(
      std::to_string(global_pairs) + " pairs, " + b.args.layout, trace,
      static_cast<int>(b.args.profile_steps), [&] { steps.step(nullptr); },
      [&] { synchronize(b.device); });
}

// One setting: `per_rank` pairs per rank and step, warm-up then measured steps.
json run_setting(Bench& b, int64_t per_rank) {
  SettingSteps steps(b, per_rank);
  for (int64_t i = 0; i < b.args.warmup; ++i) steps.step(nullptr);
  synchronize(b.device);
  reset_peak_memory(b.device);
  train::PhaseTimer timer(b.device);
  double waited_sum = 0, prep_sum = 0;
  const uint64_t first_measured = steps.k;
  const int64_t graphs_before = b.trainee.graphs ? b.trainee.graphs->captured() : 0;
  const auto start = Clock::now();
  for (int64_t i = 0; i < b.args.steps; ++i) {
    steps.step(&timer);
    waited_sum += steps.waited;
    prep_sum += steps.prep;
  }
  synchronize(b.device);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double step_s = seconds / static_cast<double>(b.args.steps);
  const double n = static_cast<double>(b.args.steps);
  const int64_t global_pairs = b.env.world * per_rank;

  json j;
  j["pairs_per_rank"] = per_rank;
  j["pairs_per_step"] = global_pairs;
  j["ranks"] = b.env.world;
  j["layout"] = b.args.layout;
  j["balanced"] = b.config.train.balance_ranks;
  j["step_ms"] = step_s * 1e3;
  j["pairs_per_s"] = global_pairs / step_s;
  describe_batches(b, steps, first_measured, steps.k, per_rank, step_s, j);
  json split;
  split["prep_thread"] = prep_sum / n * 1e3;
  split["prep_wait"] = waited_sum / n * 1e3;
  for (const auto& [name, ms] : timer.averages_ms()) split[name] = ms;
  j["split_ms"] = split;
  j["split_clock"] = b.device.is_cuda() ? "cuda events (rank 0)" : "wall clock (rank 0)";
  // The graphs' pool was filled at capture, before the peak was reset: what it holds for the
  // replays counts too.
  const double pool_gib =
      b.trainee.graphs ? static_cast<double>(b.trainee.graphs->idle_pool_bytes()) / (1 << 30) : 0;
  j[b.device.is_cuda() ? "peak_mem_gib" : "peak_host_rss_gib"] =
      peak_memory_gib(b.device) + pool_gib;
  j["loss"] = steps.loss;
  if (b.trainee.graphs) {
    j["cuda_graphs"] = b.trainee.graphs->captured();  // captured so far
    j["cuda_graphs_captured_while_measuring"] = b.trainee.graphs->captured() - graphs_before;
  }
  profile_setting(b, steps, global_pairs);
  return j;
}

void print_table(const json& results) {
  std::printf("%-6s %-7s %-6s %9s %10s %12s %9s %9s  %s\n", "pairs", "layout", "ranks", "step ms",
              "pairs/s", "tokens/s", "TFLOP/s", "(real)", "split ms");
  for (const auto& j : results["settings"]) {
    std::string split;
    for (auto it = j["split_ms"].begin(); it != j["split_ms"].end(); ++it) {
      char ms[32];
      std::snprintf(ms, sizeof ms, "%.2f", it.value().get<double>());
      split += it.key() + " " + ms + ", ";
    }
    std::printf("%-6lld %-7s %-6lld %9.2f %10.1f %12.0f %9.4f %9.4f  %s\n",
                j["pairs_per_step"].get<long long>(), j["layout"].get<std::string>().c_str(),
                j["ranks"].get<long long>(), j["step_ms"].get<double>(),
                j["pairs_per_s"].get<double>(), j["real_tokens_per_s"].get<double>(),
                j["model_tflops_per_s"].get<double>(),
                j["model_tflops_per_s_real_tokens"].get<double>(),
                split.substr(0, split.size() - 2).c_str());
    std::printf("       token imbalance over ranks (max/mean): %.4f balanced, %.4f consecutive\n",
                j["token_imbalance_balanced"].get<double>(),
                j["token_imbalance_consecutive"].get<double>());
  }
}

// The job's configuration: the options' model (an HF config.json, randomly initialised;
// overrides may still name others) and longest text, which the graphs are captured for.
int load_bench_config(const BenchTrainArgs& a, const dist::MpiEnv& env, Config& config) {
  ConfigArgs config_args = a.config;
  config_args.overrides.insert(config_args.overrides.begin(),
                               {"model.pretrained=", "model.config=" + a.model});
  config_args.overrides.push_back("tokenizer.max_len=" + std::to_string(a.max_len));
  if (a.layout != "packed")
    throw UserError("--layout " + a.layout +
                    ": the padded layout was retired with model.layout: padded; the trainer "
                    "steps packed batches only (--layout packed)");
  return load_job_config(config_args, {"model"}, env, config);
}

// What every setting shares: device, model, numerics, steps.
json describe_bench(const Bench& b) {
  const Config& config = b.config;
  json results;
  results["device"] = b.device.str();
  results["torch"] = TORCH_VERSION;
  results["model"] = b.args.model;
  results["n_nonemb_params"] = b.n_nonemb;
  results["parameters"] = b.trainee.flat->size();
  results["bf16"] = config.model.autocast_bf16;
  results["attention"] = name_of(config.model.attention);
  results["grad_dtype"] = name_of(config.dist.grad_dtype);
  results["cuda_graphs"] = b.trainee.graphs != nullptr;
  results["max_len"] = b.args.max_len;
  results["warmup_steps"] = b.args.warmup;
  results["measured_steps"] = b.args.steps;
  results["settings"] = json::array();
  return results;
}

void write_json(const std::string& path, const json& results) {
  try {
    files::write_atomically(path, [&](const std::string& tmp) {
      std::ofstream out(tmp);
      out << results.dump(1) << "\n";
      out.close();
      if (!out) throw std::runtime_error("cannot write " + tmp);
    });
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("--json: ") + e.what());
  }
}

}  // namespace

void add_bench_train(CLI::App* bench, BenchTrainArgs& a, std::function<int()>& action) {
  auto* cmd = bench->add_subcommand(
      "train",
      "Training throughput of the trainer's step on synthetic batches (random model from an "
      "HF config.json; run under mpirun for several ranks)");
  cmd->add_option("--config,-c", a.config.config_path, "YAML configuration file");
  cmd->add_option("overrides", a.config.overrides,
                  "dotted.key=value overrides (model.device, model.autocast_bf16, "
                  "model.attention, train.balance_ranks, run.threads, ...)");
  cmd->add_option("--model", a.model, "HF config.json of the randomly initialised model")
      ->check(CLI::ExistingFile);
  cmd->add_option("--pairs", a.pairs, "pairs per rank and step, a comma-separated list");
  cmd->add_option("--warmup", a.warmup, "warm-up steps per setting (not measured)")
      ->check(CLI::Range(0LL, 100000LL));
  cmd->add_option("--steps", a.steps, "measured steps per setting")
      ->check(CLI::Range(1LL, 100000LL));
  cmd->add_option("--max-len", a.max_len, "longest text in tokens (lengths uniform in [10, this])")
      ->check(CLI::Range(10LL, 100000LL));
  cmd->add_option("--layout", a.layout,
                  "packed (the one layout the trainer steps; padded was retired)");
  cmd->add_option("--json", a.json, "also write the results to this JSON file");
  cmd->add_option("--profile", a.profile,
                  "after measuring, profile a few more steps with kineto (libtorch 2.x): a "
                  "summary on stdout and a Chrome trace per setting in this folder");
  cmd->add_option("--profile-steps", a.profile_steps, "steps to profile per setting")
      ->check(CLI::Range(1LL, 1000LL));
  cmd->callback([&] { action = [&] { return cmd_bench_train(a); }; });
}

int cmd_bench_train(const BenchTrainArgs& a) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;
  if (const int code = load_bench_config(a, env, config); code != kExitOk) return code;
  init_logging({env.rank, env.world, LogLevel::kWarn, LogLevel::kWarn, ""});
  const std::vector<int64_t> pairs = parse_pairs(a.pairs);
  if (!a.profile.empty()) {
    if (!profiler_available())
      throw UserError("--profile needs a build against libtorch 2.x with kineto (this is " +
                      std::string(TORCH_VERSION) + ")");
    files::create_directories(a.profile);
  }
  if (config.run.threads > 0) torch::set_num_threads(static_cast<int>(config.run.threads));

  model::BuiltEncoder built = model::build_encoder(config);
  const model::XlmrConfig& mc = built.encoder->config();
  if (a.max_len + mc.pad_token_id + 1 > mc.max_position_embeddings)
    throw UserError("--max-len " + std::to_string(a.max_len) +
                    " needs more positions than the model has (max_position_embeddings " +
                    std::to_string(mc.max_position_embeddings) + ")");
  train::Trainee trainee = train::build_trainee(config, env, built.encoder);  // as train does
  train::connect_trainee(trainee, config, env);
  const torch::Device device = trainee.device;
  const int64_t n_nonemb = non_embedding_parameters(*trainee.model);
  Bench b{config, a, env, device, std::move(trainee), n_nonemb};

  json results = describe_bench(b);
  for (int64_t p : pairs) {
    json j = run_setting(b, p);
    if (env.rank == 0) std::printf("bench_train %s\n", j.dump().c_str());
    std::fflush(stdout);
    results["settings"].push_back(j);
  }
  if (env.rank == 0) {
    print_table(results);
    if (!a.json.empty()) write_json(a.json, results);
  }
  return 0;
}

}  // namespace sx::app

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

// One setting: `per_rank` pairs per rank and step, warm-up then measured steps.
json run_setting(Bench& b, int64_t per_rank) {
  const int world = b.env.world, rank = b.env.rank;
  const bool balance = b.config.train.balance_ranks;
  const uint64_t seed = static_cast<uint64_t>(b.config.run.seed);
  // The reference's ids are uniform in [5, 250000); smaller vocabularies cap them.
  const int32_t vocab_end =
      static_cast<int32_t>(std::min<int64_t>(250000, b.trainee.model->config().vocab_size));
  auto global_batch = [&](uint64_t k) {
    return data::random_text_batch(world * per_rank, seed * 1000003 + k, 10, b.args.max_len,
                                   vocab_end);
  };
  train::Prefetcher<train::HostBatch> batches(
      [&](uint64_t k) {
        const auto start = Clock::now();
        data::TextBatch global = global_batch(k);
        const auto tokens = data::pair_token_counts(global);
        const auto assignment = balance ? data::balanced_assignment(tokens, world, per_rank)
                                        : data::consecutive_assignment(world, per_rank);
        train::HostBatch h =
            train::make_host_batch(data::select_pairs(global, assignment[rank]), b.device);
        h.consumed = k;
        h.imbalance = data::token_imbalance(tokens, assignment);
        const std::vector<int64_t> shares = data::rank_tokens(tokens, assignment);
        h.most_rank_tokens = *std::max_element(shares.begin(), shares.end());
        h.prep_s = std::chrono::duration<double>(Clock::now() - start).count();
        return h;
      },
      1);
  train::StepSettings settings;
  settings.margin = b.config.train.margin;
  settings.lr = 5e-5;                      // the reference's constant rate
  std::vector<train::HostBatch> next_one;  // train.embedding_adam_overlap: the next step's batch
  if (b.trainee.rows_adam)
    settings.next_batches = [&]() -> const std::vector<train::HostBatch>* {
      const train::HostBatch* next = batches.ready_next();
      if (!next) return nullptr;
      next_one.assign(1, *next);
      return &next_one;
    };
  uint64_t k = 0;
  auto one_step = [&](train::PhaseTimer* timer, double* waited, double* prep, double* loss) {
    std::vector<train::HostBatch> micro_batches;  // one: no accumulation here
    micro_batches.push_back(batches.take(k, waited));
    settings.step = static_cast<int64_t>(k) + 1;
    settings.dropout_seed = seed * 7919 + k * 131 + static_cast<uint64_t>(rank);
    const train::StepResult r = train::train_step(b.trainee, micro_batches, settings, timer);
    *prep = micro_batches.front().prep_s;
    *loss = r.loss;
    ++k;
  };
  double waited = 0, prep = 0, loss = 0;
  for (int64_t i = 0; i < b.args.warmup; ++i) one_step(nullptr, &waited, &prep, &loss);
  synchronize(b.device);
  reset_peak_memory(b.device);
  train::PhaseTimer timer(b.device);
  double waited_sum = 0, prep_sum = 0;
  const uint64_t first_measured = k;
  const int64_t graphs_before = b.trainee.graphs ? b.trainee.graphs->captured() : 0;
  const auto start = Clock::now();
  for (int64_t i = 0; i < b.args.steps; ++i) {
    one_step(&timer, &waited, &prep, &loss);
    waited_sum += waited;
    prep_sum += prep;
  }
  synchronize(b.device);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double step_s = seconds / static_cast<double>(b.args.steps);

  // The measured steps' global batches again, for tokens, FLOPs and the split's balance.
  int64_t real_tokens = 0, sum_sq = 0;
  double imbalance_balanced = 0, imbalance_consecutive = 0;
  for (uint64_t s = first_measured; s < k; ++s) {
    data::TextBatch global = global_batch(s);
    const auto tokens = data::pair_token_counts(global);
    real_tokens += global.tokens();
    sum_sq += global.sum_squared_lengths();
    imbalance_balanced +=
        data::token_imbalance(tokens, data::balanced_assignment(tokens, world, per_rank));
    imbalance_consecutive +=
        data::token_imbalance(tokens, data::consecutive_assignment(world, per_rank));
  }
  const double steps = static_cast<double>(b.args.steps);
  const int64_t global_pairs = world * per_rank;
  const Flops flops = step_flops(b.trainee.model->config(), b.n_nonemb, 2 * global_pairs,
                                 b.args.max_len, real_tokens / b.args.steps, sum_sq / b.args.steps);
  json j;
  j["pairs_per_rank"] = per_rank;
  j["pairs_per_step"] = global_pairs;
  j["ranks"] = world;
  j["layout"] = b.args.layout;
  j["balanced"] = balance;
  j["step_ms"] = step_s * 1e3;
  j["pairs_per_s"] = global_pairs / step_s;
  j["real_tokens_per_s"] = real_tokens / steps / step_s;
  j["padded_tokens_per_s"] = 2.0 * global_pairs * b.args.max_len / step_s;
  j["model_tflops_per_s"] = flops.reference / step_s / 1e12;
  j["model_tflops_per_s_real_tokens"] = flops.real / step_s / 1e12;
  json split;
  split["prep_thread"] = prep_sum / steps * 1e3;
  split["prep_wait"] = waited_sum / steps * 1e3;
  for (const auto& [name, ms] : timer.averages_ms()) split[name] = ms;
  j["split_ms"] = split;
  j["split_clock"] = b.device.is_cuda() ? "cuda events (rank 0)" : "wall clock (rank 0)";
  // The graphs' pool was filled at capture, before the peak was reset: what it holds for the
  // replays counts too.
  const double pool_gib =
      b.trainee.graphs ? static_cast<double>(b.trainee.graphs->idle_pool_bytes()) / (1 << 30) : 0;
  j[b.device.is_cuda() ? "peak_mem_gib" : "peak_host_rss_gib"] =
      peak_memory_gib(b.device) + pool_gib;
  j["token_imbalance_balanced"] = imbalance_balanced / steps;
  j["token_imbalance_consecutive"] = imbalance_consecutive / steps;
  j["loss"] = loss;
  if (b.trainee.graphs) {
    j["cuda_graphs"] = b.trainee.graphs->captured();  // captured so far
    j["cuda_graphs_captured_while_measuring"] = b.trainee.graphs->captured() - graphs_before;
  }
  if (!b.args.profile.empty() && rank == 0) {
    const std::string trace =
        b.args.profile + "/trace-" + std::to_string(global_pairs) + "-" + b.args.layout + ".json";
    profile_steps(
        std::to_string(global_pairs) + " pairs, " + b.args.layout, trace,
        static_cast<int>(b.args.profile_steps), [&] { one_step(nullptr, &waited, &prep, &loss); },
        [&] { synchronize(b.device); });
  } else if (!b.args.profile.empty()) {
    for (int64_t i = 0; i < b.args.profile_steps; ++i) one_step(nullptr, &waited, &prep, &loss);
  }
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
  ConfigArgs config_args = a.config;
  // The model: an HF config.json, randomly initialised (overrides may still name others).
  config_args.overrides.insert(config_args.overrides.begin(),
                               {"model.pretrained=", "model.config=" + a.model});
  // The graphs' fixed longest text is the benchmark's.
  config_args.overrides.push_back("tokenizer.max_len=" + std::to_string(a.max_len));
  if (a.layout != "packed")
    throw UserError("--layout " + a.layout +
                    ": the padded layout was retired with model.layout: padded; the trainer "
                    "steps packed batches only (--layout packed)");
  Config config;
  if (const int code = load_job_config(config_args, {"model"}, env, config); code != kExitOk)
    return code;
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
  const int64_t n_params = trainee.flat->size();
  Bench b{config, a, env, device, std::move(trainee), n_nonemb};

  json results;
  results["device"] = device.str();
  results["torch"] = TORCH_VERSION;
  results["model"] = a.model;
  results["n_nonemb_params"] = b.n_nonemb;
  results["parameters"] = n_params;
  results["bf16"] = config.model.autocast_bf16;
  results["attention"] = name_of(config.model.attention);
  results["grad_dtype"] = name_of(config.dist.grad_dtype);
  results["cuda_graphs"] = b.trainee.graphs != nullptr;
  results["max_len"] = a.max_len;
  results["warmup_steps"] = a.warmup;
  results["measured_steps"] = a.steps;
  results["settings"] = json::array();
  for (int64_t p : pairs) {
    json j = run_setting(b, p);
    if (env.rank == 0) std::printf("bench_train %s\n", j.dump().c_str());
    std::fflush(stdout);
    results["settings"].push_back(j);
  }
  if (env.rank == 0) {
    print_table(results);
    if (!a.json.empty()) {
      try {
        files::write_atomically(a.json, [&](const std::string& tmp) {
          std::ofstream out(tmp);
          out << results.dump(1) << "\n";
          out.close();
          if (!out) throw std::runtime_error("cannot write " + tmp);
        });
      } catch (const std::runtime_error& e) {
        throw UserError(std::string("--json: ") + e.what());
      }
    }
  }
  return 0;
}

}  // namespace sx::app

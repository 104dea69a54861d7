#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include <unistd.h>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/program_clock.h"
#include "core/rng.h"
#include "core/strings.h"
#include "data/batches.h"
#include "data/datasets.h"
#include "data/node_share.h"
#include "data/packed_batch.h"
#include "dist/communicator.h"
#include "dist/deadline.h"
#include "dist/node_memory.h"
#include "export/features.h"
#include "model/encoder_factory.h"
#include "model/keras_adam.h"
#include "model/schedule.h"
#include "model/siamese_loss.h"
#include "model/weights.h"
#include "train/checkpoint.h"
#include "train/epoch_score.h"
#include "train/flat_params.h"
#include "train/metrics.h"
#include "train/prefetch.h"
#include "train/progress.h"
#include "train/reducer.h"
#include "train/run_dir.h"
#include "train/run_inputs.h"
#include "train/signals.h"
#include "train/step.h"
#include "train/stopping.h"
#include "train/train_state.h"

namespace sx::train {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();

enum class StopReason { kNone, kMaxSteps, kMaxEpochs, kEarlyStopping, kTime, kSignal, kNonFinite };

const char* describe(StopReason r) {
  switch (r) {
    case StopReason::kNone:
      return "not stopped";
    case StopReason::kMaxSteps:
      return "train.max_steps reached";
    case StopReason::kMaxEpochs:
      return "the epoch limit reached";
    case StopReason::kEarlyStopping:
      return "early stopping (validation loss stopped improving)";
    case StopReason::kTime:
      return "run.max_duration: only the final export's time is left (time-based stopping)";
    case StopReason::kSignal:
      return "a stop signal";
    case StopReason::kNonFinite:
      return "too many non-finite steps in a row";
  }
  return "?";
}

// Everything one rank holds for training.
struct Replica {
  std::unique_ptr<RunDirLock> run_dir_lock;  // rank 0: run.dir is this run's while it lives
  data::Datasets datasets;
  data::CorpusSplit split;
  data::PairList train_pairs, val_pairs;
  std::unique_ptr<data::XlmrTokenizer> tokenizer;
  std::unique_ptr<data::NodeMemory> node_memory;  // what the ranks of this node share
  std::unique_ptr<data::TokenStore> train_tokens, val_tokens;
  model::SiameseEncoder model{nullptr};
  torch::Device device{torch::kCPU};
  std::unique_ptr<FlatParameters> flat;
  std::unique_ptr<model::KerasAdam> adam;
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<GradientReducer> reducer;  // averages flat's gradients over the ranks
  std::unique_ptr<StepGraphs> graphs;        // train.cuda_graphs, where it can run
  TrainState state;
  std::string model_description;
};

void export_run_features(const Config& config, const dist::MpiEnv& env, Replica& r,
                         const std::string& name) {
  exporting::ExportInputs inputs;
  inputs.multilingual = &r.split.multilingual;
  inputs.test = r.datasets.test ? &*r.datasets.test : nullptr;
  inputs.model_description = r.model_description;
  exporting::export_features(config, env, r.model, *r.tokenizer, inputs,
                             files::join(config.run.dir, name));
}

int64_t threads_for(const Config& config, const dist::MpiEnv& env) {
  if (config.run.threads > 0) return config.run.threads;
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  return std::max<int64_t>(1, cores / std::max(1, env.local_world));
}

// Token ids of a batch as a [2B, L] int64 tensor on the device (left texts, then right).
torch::Tensor batch_ids(const data::PairBatch& batch, const torch::Device& device) {
  const auto b = static_cast<int64_t>(batch.count), len = static_cast<int64_t>(batch.max_len);
  torch::Tensor left =
      torch::from_blob(const_cast<int32_t*>(batch.left_ids.data()), {b, len}, torch::kInt);
  torch::Tensor right =
      torch::from_blob(const_cast<int32_t*>(batch.right_ids.data()), {b, len}, torch::kInt);
  return torch::cat({left, right}, 0).to(torch::kLong).to(device);
}

torch::Tensor pair_distances(model::SiameseEncoder& model, const data::PairBatch& batch,
                             const torch::Device& device) {
  torch::Tensor embeddings = model->forward(batch_ids(batch, device));
  const auto b = static_cast<int64_t>(batch.count);
  return model::pair_distance(embeddings.narrow(0, 0, b), embeddings.narrow(0, b, b));
}

void load_params(model::SiameseEncoderImpl& model,
                 const std::map<std::string, torch::Tensor>& params, const std::string& path) {
  model::load_state(model, params, "checkpoint " + path);
}

// Throws a UserError when the checkpoint at `path` comes from a run whose results would differ
// from this one's (`now`): another configuration, or other data, tokenizer or model files.
void check_same_results(const TrainState& then, const TrainState& now, const std::string& path) {
  if (then.config_hash != now.config_hash)
    throw UserError("checkpoint " + path +
                    " was written with a different configuration of the keys that change "
                    "results (hash " +
                    then.config_hash + ", now " + now.config_hash +
                    "); resume with the same configuration or use another run.dir");
  if (then.inputs.empty()) {  // formats 1 and 2
    spdlog::warn(
        "checkpoint {} predates input identities: its data and model files are not checked", path);
    return;
  }
  const std::string change = describe_inputs_change(then.inputs, now.inputs);
  if (!change.empty())
    throw UserError("checkpoint " + path + " was written with other inputs: " + change +
                    "; resume with the same files or use another run.dir");
}

// Rank 0: the checkpoint to resume from, read into `checkpoint`, or "" for a fresh start, which
// claims run.dir (run_dir.h; --resume auto finding no usable checkpoint is one too) and gets a
// new lineage in `state`.
std::string pick_checkpoint(const Config& config, const TrainOptions& options, TrainState& state,
                            Checkpoint& checkpoint) {
  std::string path;
  if (options.resume == "auto") {
    for (const auto& candidate : list_step_checkpoints(config.run.dir)) {
      try {
        checkpoint = read_checkpoint(candidate);
        path = candidate;
        break;
      } catch (const UserError& e) {  // "checkpoint <path> is unusable: <why>"
        spdlog::warn("{}; trying the previous one", e.what());
      } catch (const std::exception& e) {  // anything else that makes it unusable (memory, torch)
        const std::string why = e.what();
        spdlog::warn("checkpoint {} is unusable: {}; trying the previous one", candidate,
                     why.substr(0, why.find('\n')));
      }
    }
    if (path.empty()) {
      const std::string moved = claim_run_dir(config.run.dir, options.force, /*with_logs=*/false);
      spdlog::info("--resume auto: no usable checkpoint in {}; starting fresh{}", config.run.dir,
                   moved.empty() ? "" : " (the earlier run's files moved into " + moved + ")");
    }
  } else if (!options.resume.empty()) {
    checkpoint = read_checkpoint(options.resume);
    path = options.resume;
  }
  if (path.empty()) {
    state.lineage = new_lineage_id();
    return path;
  }
  check_same_results(checkpoint.state, state, path);
  // A checkpoint of format 1 or 2 has no lineage: this run starts one (and leaves its files be).
  if (checkpoint.state.lineage.empty()) checkpoint.state.lineage = new_lineage_id();
  return path;
}

// With data.share_node and several ranks on this node, the node's first rank (local rank 0,
// the builder of dist::make_node_memory) loads, splits and builds the pairs; connect() shares
// them with the others.
bool shares_data(const Config& config, const dist::MpiEnv& env) {
  return config.data.share_node && env.local_world > 1;
}

void log_pair_sequences(const Replica& r, const std::string& train_fingerprint,
                        const std::string& val_fingerprint) {
  // On every rank: the ranks (and `data pairs`) agree on the sequences.
  spdlog::info("pair sequences: training {} fingerprint {}, validation {} fingerprint {}",
               r.train_pairs.size(), train_fingerprint, r.val_pairs.size(), val_fingerprint);
}

// Loads, splits and builds the pair sequences, without any collective.
void load_data(const Config& config, const dist::MpiEnv& env, Replica& r) {
  const bool lead = env.rank == 0;
  r.datasets = data::load_datasets(config, /*with_test=*/true, /*progress=*/lead);
  r.split = data::split_corpus(r.datasets.english, r.datasets.multilingual,
                               static_cast<uint64_t>(config.run.seed), config.data.val_fraction);
  // The split holds every row the run uses (its texts are views of the mapped files, shared
  // by the ranks of a node); the loaded corpora's own index arrays are not needed again.
  r.datasets.english = {};
  r.datasets.multilingual = {};
  data::PairReport train_report, val_report;
  r.train_pairs = data::training_pairs(config, r.split, &train_report);
  r.val_pairs = data::validation_pairs(config, r.split, &val_report);
  log_pair_sequences(r, train_report.fingerprint, val_report.fingerprint);
  if (lead) {
    spdlog::info(
        "split: multilingual set {} rows ({} English), validation corpus {}, training corpus {}",
        r.split.multilingual.size(), r.split.max_size, r.split.validation.size(),
        r.split.train.size());
    train_report.log("training");
    val_report.log("validation");
  }
}

// Sets up one rank without any collective: data, tokenizer, model, optimizer, and on rank 0
// the checkpoint to resume from. A mistake here is reported after all ranks agree on
// success (a collective inside would deadlock against a rank that already failed).
void set_up_locally(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                    Replica& r, std::string& resume_path, Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  torch::set_num_threads(static_cast<int>(threads_for(config, env)));

  if (!shares_data(config, env) || env.local_rank == 0) load_data(config, env, r);
  r.tokenizer = std::make_unique<data::XlmrTokenizer>(data::tokenizer_options(config));

  model::BuiltEncoder built = model::build_encoder(config);
  r.model = built.encoder;
  r.model_description = built.description;
  if (lead) spdlog::info("model: {}", built.description);
  model::check_tokenizer_fits(config, r.model->config(), r.tokenizer->vocab_size());
  r.device = model::resolve_device(config.model.device, env.local_rank);
  r.model->to(r.device);
  r.model->set_compute(model::compute_options(config, r.device));
  r.model->train();

  r.flat = std::make_unique<FlatParameters>(*r.model);
  torch::Tensor flat_params = r.flat->params();
  flat_params.mutable_grad() = r.flat->grads();
  r.adam = std::make_unique<model::KerasAdam>(
      flat_params, model::AdamOptions{config.train.adam_beta1, config.train.adam_beta2,
                                      config.train.adam_epsilon});
  r.state.world_size = env.world;
  r.state.config_hash = config_result_hash(config);
  r.state.inputs = result_inputs(config);
  r.state.best_val_loss = kInf;

  // Resume: rank 0 picks and reads the checkpoint; connect() hands it to the others.
  if (lead) {
    resume_path = pick_checkpoint(config, options, r.state, checkpoint);
    if (!resume_path.empty()) {
      load_params(*r.model, checkpoint.params, resume_path);
      r.adam->m().copy_(checkpoint.adam_m.to(r.device));
      r.adam->v().copy_(checkpoint.adam_v.to(r.device));
    }
  }
  // Make sure the communicator's combination of backend and device is possible before any
  // rank starts the collective that creates it.
  if (config.dist.backend == "nccl" && !r.device.is_cuda())
    throw UserError("dist.backend: nccl needs the replica on a GPU (model.device); use mpi on CPU");
  if (config.dist.backend == "mpi" && r.device.is_cuda())
    throw UserError("dist.backend: mpi all-reduces CPU tensors, but the replica is on " +
                    r.device.str() + "; use nccl or auto");
}

// The CUDA graphs of train.cuda_graphs, or null (with a warning saying why when they were asked
// for but cannot run here).
std::unique_ptr<StepGraphs> make_step_graphs(const Config& config, const dist::MpiEnv& env,
                                             const model::SiameseEncoder& model,
                                             const torch::Device& device) {
  if (!config.train.cuda_graphs) return nullptr;
  if (config.train.accumulation_steps > 1) {  // a graph replays one batch from zeroed gradients
    if (env.rank == 0)
      spdlog::warn("train.cuda_graphs: not used with train.accumulation_steps > 1");
    return nullptr;
  }
  const std::string why =
      StepGraphs::unsupported_reason(model, device, config.model.layout == "packed");
  if (!why.empty()) {
    if (env.rank == 0) spdlog::warn("train.cuda_graphs: not used, {}", why);
    return nullptr;
  }
  StepGraphs::use_own_stream(device);
  return std::make_unique<StepGraphs>(config.tokenizer.max_len, data::XlmrTokenizer::kPad);
}

// data.share_node: the builder's corpora and pairs published once per node; every rank of the
// node (the builder too) then reads them from the node's memory.
void share_data(const Config& config, const dist::MpiEnv& env, Replica& r) {
  if (!shares_data(config, env)) return;
  const auto t0 = Clock::now();
  r.node_memory = dist::make_node_memory();
  if (r.node_memory->builder() != (env.local_rank == 0))
    throw std::logic_error("the node's builder is not its local rank 0");
  data::share_corpora(r.split, r.datasets.test, *r.node_memory);
  r.train_pairs = data::share_pairs(r.train_pairs, *r.node_memory);
  r.val_pairs = data::share_pairs(r.val_pairs, *r.node_memory);
  if (!r.node_memory->builder())
    log_pair_sequences(r, data::pairs_fingerprint(r.split.train, r.train_pairs),
                       data::pairs_fingerprint(r.split.validation, r.val_pairs));
  if (env.rank == 0)
    spdlog::info(
        "corpora and pairs built once per node ({} ranks share them) and published in {:.1f} s",
        env.local_world, std::chrono::duration<double>(Clock::now() - t0).count());
}

// The token stores. By default each rank tokenizes lazily what it consumes. With
// tokenizer.share_node and several ranks on a node, every text is tokenized once, on the
// node's first rank, into a shared-memory window the others map: more memory and set-up time
// up front (the whole corpus, ~0.8 GiB for 1.9M texts), but with balanced ranks each rank
// would otherwise tokenize and keep every text of every global batch it sees, which over many
// epochs approaches the whole pair sequence per rank. The ids are the same either way.
void make_token_stores(const Config& config, const dist::MpiEnv& env, Replica& r) {
  const size_t threads = static_cast<size_t>(config.tokenizer.threads);
  if (!config.tokenizer.share_node || env.local_world == 1) {
    r.train_tokens = std::make_unique<data::TokenStore>(*r.tokenizer, r.split.train.texts, threads);
    r.val_tokens =
        std::make_unique<data::TokenStore>(*r.tokenizer, r.split.validation.texts, threads);
    return;
  }
  const auto t0 = Clock::now();
  if (!r.node_memory) r.node_memory = dist::make_node_memory();
  r.train_tokens = std::make_unique<data::TokenStore>(*r.tokenizer, r.split.train.texts, threads,
                                                      *r.node_memory);
  r.val_tokens = std::make_unique<data::TokenStore>(*r.tokenizer, r.split.validation.texts, threads,
                                                    *r.node_memory);
  if (env.rank == 0)
    spdlog::info(
        "token ids of {} texts tokenized once per node ({} ranks share {:.0f} MiB) in {:.1f} s",
        r.split.train.size() + r.split.validation.size(), env.local_world,
        double(r.train_tokens->bytes() + r.val_tokens->bytes()) / (1 << 20),
        std::chrono::duration<double>(Clock::now() - t0).count());
}

// The collective part of set-up: the shared token ids, the communicator, the resumed state,
// identical replicas.
void connect(const Config& config, const dist::MpiEnv& env, Replica& r, std::string& path,
             const Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  share_data(config, env, r);
  make_token_stores(config, env, r);
  r.comm = dist::make_communicator(config.dist.backend, r.device, env);
  ReducerOptions reducer_options;
  reducer_options.bucket_mb = config.train.bucket_mb;
  reducer_options.wire = dist::parse_wire_type(config.dist.grad_dtype);
  r.graphs = make_step_graphs(config, env, r.model, r.device);  // before the reducer's hooks
  if (env.world == 1) {  // no reducer hooks wait on autograd's accumulators
    model::ComputeOptions compute = r.model->compute();
    compute.direct_weight_grads = true;
    r.model->set_compute(compute);
  }
  r.reducer = std::make_unique<GradientReducer>(*r.flat, *r.comm, env, reducer_options);
  if (lead)
    spdlog::info(
        "replica on {}, {} parameters in {} all-reduce buckets over {} ({} ranks, {} on the wire)",
        r.device.str(), r.flat->size(), r.reducer->bucket_ranges().size(), r.comm->name(),
        env.world, config.dist.grad_dtype);
  dist::broadcast(path, 0, "broadcast of the checkpoint to resume from");
  if (!path.empty()) {
    const TrainState now = r.state;  // this run's own settings and inputs
    if (lead) r.state = checkpoint.state;
    broadcast_state(r.state, 0);
    r.comm->broadcast(r.adam->m(), 0);
    r.comm->broadcast(r.adam->v(), 0);
    r.adam->set_iterations(r.state.adam_iterations);
    if (lead)
      spdlog::info("resumed from {}: step {}, epoch {}, pair {} of the global sequence", path,
                   r.state.step, r.state.epoch, r.state.pairs_consumed);
    r.state.config_hash = now.config_hash;
    r.state.inputs = now.inputs;
  }
  // Replicas start identical: rank 0's parameters everywhere.
  torch::Tensor params = r.flat->params();
  r.comm->broadcast(params, 0);
}

// Mean DBL loss over the validation pairs; each rank evaluates its share, sums meet on all.
double validation_loss(const Config& config, const dist::MpiEnv& env, Replica& r) {
  torch::NoGradGuard no_grad;
  r.model->eval();
  const uint64_t n = r.val_pairs.size();
  const uint64_t begin = n * env.rank / env.world, end = n * (env.rank + 1) / env.world;
  const uint64_t chunk = static_cast<uint64_t>(config.export_.batch_size);
  double sum = 0;
  for (uint64_t start = begin; start < end; start += chunk) {
    data::PairBatch batch = data::make_pair_batch(
        r.val_pairs, {start, std::min(chunk, end - start)}, *r.val_tokens, r.tokenizer->max_len());
    torch::Tensor labels =
        torch::from_blob(batch.labels.data(), {static_cast<int64_t>(batch.count)}, torch::kFloat)
            .to(r.device);
    torch::Tensor d = pair_distances(r.model, batch, r.device);
    sum += model::dbl_loss(d, labels, config.train.margin).item<double>() *
           static_cast<double>(batch.count);
  }
  r.model->train();
  auto total =
      dist::allreduce_sum({sum, static_cast<double>(end - begin)}, "sum of the validation loss");
  return total[0] / std::max(1.0, total[1]);
}

Checkpoint snapshot(Replica& r, bool with_optimizer) {
  Checkpoint c;
  c.state = r.state;
  c.state.adam_iterations = r.adam->iterations();
  c.params = model::named_parameters(*r.model);
  if (with_optimizer) {
    c.adam_m = r.adam->m();
    c.adam_v = r.adam->v();
  }
  return c;
}

// The training loop's state beyond TrainState (what a checkpoint does not need).
struct Loop {
  const Config& config;
  const dist::MpiEnv& env;
  Replica& r;
  int64_t global_batch;         // pairs per optimizer step (the plan itself is r.state.plan)
  model::Triangular2 schedule;  // over pairs: r.state.lr_pairs in half-cycles of lr_step_pairs
  EarlyStopping early;
  MetricsLog metrics;
  Prefetcher<std::vector<HostBatch>> batches;
  Trainee trainee;
  JobBudget budget;  // run.max_duration over the whole job (stopping.h)
  Clock::time_point started = Clock::now();
  double seconds_before = 0;  // training time of the runs this one resumes
  double last_step_seconds = 0;
  int64_t consecutive_bad = 0, last_checkpoint_step = -1;
  bool reduction_logged = false;
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  TrainingProgress progress{};  // rank 0's bar or periodic line

  StepsOrDuration checkpoint_every{};              // train.checkpoint_every
  int64_t first_step = 0;                          // the step this run started (or resumed) at
  Clock::time_point last_checkpoint_at = started;  // rank 0: when the last step checkpoint was

  bool lead() const { return env.rank == 0; }
  double elapsed() const {
    return seconds_before + std::chrono::duration<double>(Clock::now() - started).count();
  }
};

int64_t global_batch_of(const Config& config, int64_t ranks, int64_t accumulation_steps) {
  return config.train.pairs_per_rank * ranks * accumulation_steps;
}

// This rank's micro-batches of the global batch at `consumed` (any thread: the prefetcher's).
// The global batch is A consecutive blocks of W x P pairs (A accumulation steps, W ranks, P
// pairs per rank); micro-batch a is this rank's share of block a, dealt out as without
// accumulation. So W ranks x A micro-batches take the same global batch as W x A ranks.
std::vector<HostBatch> training_batches(const Config& config, const dist::MpiEnv& env, Replica& r,
                                        uint64_t consumed) {
  const size_t max_len = r.tokenizer->max_len();
  const auto block = static_cast<uint64_t>(global_batch_of(config, env.world, 1));
  std::vector<HostBatch> micro;
  for (int64_t a = 0; a < config.train.accumulation_steps; ++a) {
    const uint64_t at = consumed + static_cast<uint64_t>(a) * block;
    auto positions =
        data::rank_positions(r.train_pairs, at, env.rank, env.world, config.train.pairs_per_rank,
                             config.train.balance_ranks, *r.train_tokens, max_len);
    micro.push_back(make_host_batch(
        data::make_text_batch(r.train_pairs, positions, *r.train_tokens, max_len),
        /*packed=*/config.model.layout == "packed", r.device, data::XlmrTokenizer::kPad));
    micro.back().consumed = at;
  }
  return micro;
}

void write_step_checkpoint(Loop& l) {
  if (!l.lead() || l.last_checkpoint_step == l.r.state.step) return;
  l.r.state.train_seconds = l.elapsed();
  write_checkpoint(step_checkpoint_path(l.config.run.dir, l.r.state.step), snapshot(l.r, true));
  prune_step_checkpoints(l.config.run.dir, l.config.train.keep_checkpoints, l.r.state.lineage);
  l.last_checkpoint_step = l.r.state.step;
  l.last_checkpoint_at = Clock::now();
}

// train.checkpoint_every: whether rank 0's clock says an interval checkpoint is due (rank 0
// alone decides; stop_check shares the decision), and whether the step count does.
bool checkpoint_time_due(const Loop& l) {
  return l.lead() && l.checkpoint_every.seconds > 0 &&
         std::chrono::duration<double>(Clock::now() - l.last_checkpoint_at).count() >=
             l.checkpoint_every.seconds;
}
bool checkpoint_steps_due(const Loop& l) {
  const int64_t step = l.r.state.step;
  return l.checkpoint_every.steps > 0 && step > l.first_step &&
         step % l.checkpoint_every.steps == 0;
}

// Whether rank 0 is out of time before the next step. (Rank 0 alone decides; stop_check
// shares the decision.)
bool out_of_time(const Loop& l) {
  return l.lead() && l.budget.should_stop(program_seconds(), l.last_step_seconds);
}

// Step boundary: the step and epoch caps (in pairs, r.state.plan), and one collective through
// which every rank learns of any signal and of rank 0's decisions on time and on a
// train.checkpoint_every checkpoint by duration; writes an interval checkpoint when one is
// due. It runs while the GPU still executes the last step's optimizer (train_step returns
// without waiting for it).
StopReason stop_check(Loop& l) {
  const TrainState& s = l.r.state;
  if (s.plan().steps_done(s.pairs_consumed, l.config.train.max_steps)) return StopReason::kMaxSteps;
  if (s.plan().epochs_done(s.pairs_consumed)) return StopReason::kMaxEpochs;
  dist::set_step(s.step + 1);  // deadline messages name the step
  auto flags = dist::allreduce_max(
      {stop_requested() ? 1 : 0, out_of_time(l) ? 1 : 0, checkpoint_time_due(l) ? 1 : 0},
      "stop-flag reduction");
  if (flags[0]) return StopReason::kSignal;
  if (flags[1]) return StopReason::kTime;
  if ((flags[2] || checkpoint_steps_due(l)) && l.last_checkpoint_step != s.step) {
    if (l.lead())
      spdlog::info("step {}: checkpoint (train.checkpoint_every {})", s.step,
                   l.config.train.checkpoint_every);
    write_step_checkpoint(l);
  }
  return StopReason::kNone;
}

// Where the last step lies in its epoch (1-based), in steps of this run's global batch.
int64_t step_in_epoch(const Loop& l) {
  const TrainState& s = l.r.state;
  const int64_t into = s.pairs_consumed - s.epoch * s.plan().pairs_per_epoch;
  return (into + l.global_batch - 1) / l.global_batch;
}

// One step: this rank's batch, the replica step, the bookkeeping and the metrics line.
// Returns kNonFinite when too many steps in a row were skipped.
StopReason step(Loop& l) {
  Replica& r = l.r;
  const auto step_start = Clock::now();
  const std::vector<HostBatch> micro_batches =
      l.batches.take(static_cast<uint64_t>(r.state.pairs_consumed));
  StepSettings settings;
  settings.step = r.state.step + 1;
  settings.margin = l.config.train.margin;
  settings.dropout_seed =
      mix_seed({static_cast<uint64_t>(l.config.run.seed), static_cast<uint64_t>(l.env.rank),
                static_cast<uint64_t>(r.state.step)});
  settings.lr = l.schedule(static_cast<double>(r.state.lr_pairs));
  const StepResult s = train_step(l.trainee, micro_batches, settings);
  if (l.lead() && l.env.world > 1 && !l.reduction_logged) {  // what the reducer does, once
    spdlog::info("all-reduce of step {}: {}", settings.step, describe(r.reducer->stats()));
    l.reduction_logged = true;
  }
  if (s.applied) {
    l.consecutive_bad = 0;
    l.epoch_loss_sum += s.loss;
    ++l.epoch_loss_count;
    r.state.lr_pairs += l.global_batch;  // the rate moves with applied updates only
  } else {
    ++r.state.bad_steps;
    ++l.consecutive_bad;
    if (l.lead())
      spdlog::warn("step {}: non-finite loss or gradient; update skipped ({} in a row, {} in all)",
                   settings.step, l.consecutive_bad, r.state.bad_steps);
  }
  ++r.state.step;
  r.state.pairs_consumed += l.global_batch;
  l.last_step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
  if (l.lead()) {
    const double pairs_per_s = l.global_batch / l.last_step_seconds;
    l.metrics.step(r.state.step, r.state.epoch, s.loss, s.lr, pairs_per_s,
                   s.tokens / l.last_step_seconds, !s.applied, l.last_step_seconds, s.allreduce_s);
    if (r.state.step % l.config.train.log_every == 0)
      spdlog::info("step {} (epoch {}, {}/{}): loss {:.5f} lr {:.3g}, {:.1f} pairs/s", r.state.step,
                   r.state.epoch + 1, step_in_epoch(l),
                   r.state.plan().steps_per_epoch(l.global_batch), s.loss, s.lr, pairs_per_s);
    l.progress.step(r.state.step, r.state.epoch, s.applied ? s.loss : NAN, l.last_step_seconds,
                    l.budget.limited() ? std::max(0.0, l.budget.budget() - program_seconds()) : -1);
  }
  return l.consecutive_bad >= l.config.train.max_bad_steps ? StopReason::kNonFinite
                                                           : StopReason::kNone;
}

// Epoch end: validation, rank 0's early-stopping decision (broadcast), best and step
// checkpoints. Returns kEarlyStopping when patience ran out.
StopReason end_epoch(Loop& l) {
  Replica& r = l.r;
  ++r.state.epoch;
  const double val_loss = validation_loss(l.config, l.env, r);
  const bool with_auc = l.config.train.epoch_auc;
  CentroidAuc auc;
  if (with_auc)
    auc = epoch_centroid_auc(r.model, *r.tokenizer, r.split.multilingual,
                             static_cast<size_t>(l.config.export_.batch_size), l.env);
  std::vector<int64_t> decision{0, 0};  // improved, stop
  if (l.lead()) {
    decision[0] = l.early.update(val_loss);
    decision[1] = l.early.should_stop();
  }
  dist::broadcast(decision, 0, "broadcast of the early-stopping decision");
  r.state.best_val_loss = l.early.best;
  r.state.epochs_without_improvement = l.early.epochs_without_improvement;
  if (l.lead()) {
    const double train_loss = l.epoch_loss_count ? l.epoch_loss_sum / l.epoch_loss_count : NAN;
    spdlog::info("epoch {}: loss {:.5f}, val_loss {:.5f}{} (best {:.5f}), {}{}", r.state.epoch,
                 train_loss, val_loss, decision[0] ? " improved" : "", l.early.best,
                 format_duration(l.elapsed()), with_auc ? ", centroid AUC " + auc_text(auc) : "");
    l.metrics.epoch(r.state.epoch, r.state.step, val_loss, l.early.best, decision[0], l.elapsed(),
                    train_loss, with_auc ? &auc : nullptr);
    if (decision[0]) {
      r.state.train_seconds = l.elapsed();
      write_checkpoint(best_checkpoint_path(l.config.run.dir), snapshot(r, false));
    }
    write_step_checkpoint(l);
  }
  l.epoch_loss_sum = 0;
  l.epoch_loss_count = 0;
  return decision[1] ? StopReason::kEarlyStopping : StopReason::kNone;
}

// After the loop: the exit code, and for a finished run the best weights and the features.
int finish(Loop& l, StopReason reason) {
  Replica& r = l.r;
  const bool lead = l.lead();
  l.budget.end_of(JobBudget::kTraining, program_seconds());
  l.progress.finish();
  spdlog::info("training stopped at step {} (epoch {}): {}", r.state.step, r.state.epoch,
               describe(reason));
  flush_logs();
  if (lead) l.metrics.event("stop", r.state.step, describe(reason));
  dist::set_step(r.state.step);
  write_step_checkpoint(l);
  dist::barrier("barrier after the last checkpoint");
  if (reason == StopReason::kSignal) {
    if (lead)
      spdlog::warn(
          "stopped by signal {}; checkpoint written, exiting with {} so the job can be requeued "
          "(resume with --resume auto)",
          stop_signal_number(), kExitRequeue);
    return kExitRequeue;
  }
  if (reason == StopReason::kNonFinite) {
    if (lead)
      spdlog::error(
          "training stopped: {} non-finite steps in a row; the last checkpoint holds the last "
          "good weights",
          l.consecutive_bad);
    return kExitNonFinite;
  }
  // The notebook's load_weights: continue with the best weights seen by validation.
  const std::string& dir = l.config.run.dir;
  std::string best =
      lead && files::exists(best_checkpoint_path(dir)) ? best_checkpoint_path(dir) : "";
  dist::broadcast(best, 0, "broadcast of the best checkpoint's path");
  if (!best.empty()) {
    if (lead) load_params(*r.model, read_checkpoint(best, false).params, best);
    torch::Tensor params = r.flat->params();
    r.comm->broadcast(params, 0);
    if (lead)
      spdlog::info("reloaded the best weights (val_loss {:.5f}) from {}", r.state.best_val_loss,
                   best);
  }
  export_run_features(l.config, l.env, r, "features.h5");
  l.budget.end_of(JobBudget::kWrapUp, program_seconds());
  if (lead) {
    spdlog::info("{}", l.budget.summary());
    l.metrics.event("job_time", r.state.step, l.budget.summary());
  }
  return kExitOk;
}

// Rank 0, before any rank writes to run.dir: it locks run.dir for this run (refused while
// another training uses it), a fresh run claims it (run_dir.h), then the checkpoint folder and
// the resolved configuration. Returns where --force moved an earlier run's files, or "".
std::string prepare_run_dir(const Config& config, const TrainOptions& options, Replica& r) {
  r.run_dir_lock = std::make_unique<RunDirLock>(config.run.dir);
  const std::string moved = options.resume.empty()
                                ? claim_run_dir(config.run.dir, options.force, /*with_logs=*/true)
                                : "";
  check_run_outputs_are_files(config.run.dir);  // else the training fails only when it ends
  files::create_directories(checkpoint_dir(config.run.dir));
  write_resolved_config(config);
  return moved;
}

// Set-up on every rank, in phases that every rank ends, failed or not, before all learn how
// all did (dist::agree; rank 0 prints each failure): no rank goes on into a collective that a
// failed one will never join. Rank 0 prepares run.dir, then every rank sets itself up.
// Returns 0, or the exit code every rank returns.
int set_up(const Config& config, const dist::MpiEnv& env, const TrainOptions& options, Replica& r,
           std::string& resume_path, Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  std::string moved;
  auto prepare = [&] {
    if (!lead) return;
    try {
      moved = prepare_run_dir(config, options, r);
    } catch (const std::runtime_error& e) {
      if (dynamic_cast<const UserError*>(&e)) throw;
      throw UserError(std::string("run.dir: ") + e.what());
    }
  };
  auto set_up_rank = [&] {
    // Each rank's file keeps info and above; the terminal shows other ranks at their quieter level.
    add_rank_log_file(config.run.dir, env.rank, env.world, config.run.log_level);
    if (!moved.empty()) spdlog::warn("--force: the earlier run's files were moved into {}", moved);
    install_stop_handlers(config.dist.stop_signal);
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    spdlog::info("rank {}/{} (local {}/{}) pid {} on {}", env.rank, env.world, env.local_rank,
                 env.local_world, static_cast<long>(getpid()), host);
    flush_logs();  // operators (and tests) look for the pid while the run is young
    set_up_locally(config, env, options, r, resume_path, checkpoint);
  };
  const int code = dist::agree(dist::attempt(prepare), "the run directory");
  if (code != kExitOk) return code;
  return dist::agree(dist::attempt(set_up_rank), "set-up");
}

PairPlan pair_plan(const Config& config, const Replica& r, int64_t global_batch) {
  return plan_in_pairs(plan_epochs(static_cast<int64_t>(r.train_pairs.size()),
                                   static_cast<int64_t>(r.val_pairs.size()), global_batch,
                                   config.train.steps_per_epoch, config.train.max_epochs),
                       config.train.lr_step_epochs);
}

// The schedule in pairs (stopping.h): a fresh run makes it at its global batch; a resumed run
// keeps its checkpoint's (that of a format 1 or 2 checkpoint is made again at the global
// batch that wrote it) and, when the global batch changed, says in one line what changed and
// what is kept. Every rank does the same from the same (broadcast) state.
void settle_plan(const Config& config, const dist::MpiEnv& env, Replica& r, bool resumed) {
  TrainState& s = r.state;
  const int64_t batch = global_batch_of(config, env.world, config.train.accumulation_steps);
  if (!resumed) {
    s.set_plan(pair_plan(config, r, batch));
  } else {
    if (s.plan().empty())
      complete_legacy_state(
          s, pair_plan(config, r, global_batch_of(config, s.world_size, s.accumulation_steps)));
    const int64_t before = global_batch_of(config, s.world_size, s.accumulation_steps);
    if (env.rank == 0 && before != batch)
      spdlog::warn(
          "resuming with a global batch of {} pairs ({} ranks x {} pairs x {} accumulation "
          "steps) instead of the checkpoint's {} ({} x {} x {}): the pair sequence continues at "
          "pair {} and the schedule is kept in pairs: epochs of {} pairs ({} steps now), a "
          "learning-rate half-cycle of {} pairs (at pair {} of it), at most {} epochs{}",
          batch, env.world, config.train.pairs_per_rank, config.train.accumulation_steps, before,
          s.world_size, config.train.pairs_per_rank, s.accumulation_steps, s.pairs_consumed,
          s.plan().pairs_per_epoch, s.plan().steps_per_epoch(batch), s.plan().lr_step_pairs,
          s.lr_pairs, s.plan().max_epochs,
          config.train.max_steps > 0 ? ", train.max_steps counted in steps of " +
                                           std::to_string(s.plan().global_batch) + " pairs"
                                     : "");
  }
  s.world_size = env.world;
  s.accumulation_steps = config.train.accumulation_steps;
}

}  // namespace

int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options) {
  Replica r;
  std::string resume_path;
  Checkpoint checkpoint;
  if (const int code = set_up(config, env, options, r, resume_path, checkpoint); code != kExitOk)
    return code;
  try {
    connect(config, env, r, resume_path, checkpoint);
    checkpoint = {};  // its tensors are in the replica now
    const size_t export_texts =
        r.split.multilingual.size() + (r.datasets.test ? r.datasets.test->size() : 0);
    JobBudget budget(config.run.max_duration, static_cast<double>(export_texts) / env.world,
                     2.0 * config.train.pairs_per_rank * config.train.accumulation_steps);
    budget.end_of(JobBudget::kSetUp, program_seconds());
    // The notebook projects the data before training too: the untrained encoder's features.
    if (config.export_.before_training && resume_path.empty()) {
      export_run_features(config, env, r, "features_before.h5");
      budget.end_of(JobBudget::kExportBefore, program_seconds());
    }
    settle_plan(config, env, r, !resume_path.empty());
    const PairPlan plan = r.state.plan();
    const int64_t global_batch =
        global_batch_of(config, env.world, config.train.accumulation_steps);
    const model::Triangular2 schedule{config.train.lr_min, config.train.lr_max, plan.lr_step_pairs};
    Loop l{config,
           env,
           r,
           global_batch,
           schedule,
           EarlyStopping{config.train.patience, r.state.best_val_loss,
                         r.state.epochs_without_improvement},
           env.rank == 0 ? MetricsLog(files::join(config.run.dir, "metrics.jsonl"),
                                      resume_path.empty() ? -1 : r.state.step)
                         : MetricsLog(),
           Prefetcher<std::vector<HostBatch>>(
               [&](uint64_t consumed) { return training_batches(config, env, r, consumed); },
               static_cast<uint64_t>(global_batch)),
           Trainee{r.model, r.flat.get(), r.adam.get(), env.world > 1 ? r.reducer.get() : nullptr,
                   r.device, env.world, r.graphs.get()},
           budget};
    l.seconds_before = r.state.train_seconds;
    l.checkpoint_every = parse_steps_or_duration(config.train.checkpoint_every);
    l.first_step = r.state.step;
    if (l.lead()) {
      l.metrics.start({r.state.step, resume_path, env.world, global_batch, r.state.config_hash});
      l.progress.start(plan.steps_per_epoch(global_batch), plan.max_epochs, global_batch);
    }
    if (l.lead())
      spdlog::info(
          "training: global batch {} ({} ranks x {}{}), {} steps per epoch, at most {} epochs{}{}",
          global_batch, env.world, config.train.pairs_per_rank,
          config.train.accumulation_steps > 1
              ? " x " + std::to_string(config.train.accumulation_steps) + " accumulation steps"
              : "",
          plan.steps_per_epoch(global_batch), plan.max_epochs,
          config.train.max_steps ? ", at most " + std::to_string(config.train.max_steps) + " steps"
                                 : "",
          l.budget.limited() ? ", whole-job time budget " + format_duration(l.budget.budget()) +
                                   " from the program's start"
                             : "");

    StopReason reason = StopReason::kNone;
    while ((reason = stop_check(l)) == StopReason::kNone) {
      if ((reason = step(l)) != StopReason::kNone) break;
      if (plan.ends_epoch(r.state.pairs_consumed, r.state.epoch) &&
          (reason = end_epoch(l)) != StopReason::kNone)
        break;
    }
    return finish(l, reason);
  } catch (const std::exception& e) {
    spdlog::critical("rank {}: {}", env.rank, e.what());
    flush_logs();
    std::fprintf(stderr, "siamese-xlmr: error: [rank %d] %s\n", env.rank, e.what());
    dist::abort_job(dynamic_cast<const UserError*>(&e) ? kExitUserError : kExitInternal);
  }
}

}  // namespace sx::train

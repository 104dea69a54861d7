#include "train/replica.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <limits>
#include <thread>

#include <unistd.h>

#include "core/config_rules.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/strings.h"
#include "data/node_memory.h"
#include "data/node_share.h"
#include "dist/communicator.h"
#include "dist/deadline.h"
#include "dist/node_memory.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "train/run_inputs.h"
#include "train/signals.h"

namespace sx::train {

Replica::Replica() = default;
Replica::~Replica() = default;

// ---- the trainee

Trainee build_trainee(const Config& config, const dist::MpiEnv& env,
                      model::SiameseEncoder encoder) {
  Trainee t;
  t.model = std::move(encoder);
  t.world = env.world;
  t.device = model::place_encoder(t.model, config, env.local_rank);
  Platform platform = model::platform_of(t.model->config(), t.model->compute(), t.device);
  platform.nccl = dist::nccl_compiled();
  platform.cuda_graphs = StepGraphs::compiled();
  platform.world = env.world;
  for (const std::string& warning : check_platform_rules(config, platform, /*training=*/true))
    if (env.rank == 0) spdlog::warn("{}", warning);
  t.model->train();
  t.flat = std::make_unique<FlatParameters>(*t.model, t.model->adjacent_parameters());
  torch::Tensor params = t.flat->params();
  params.mutable_grad() = t.flat->grads();
  t.adam = std::make_unique<model::KerasAdam>(
      params, model::AdamOptions{config.train.adam_beta1, config.train.adam_beta2,
                                 config.train.adam_epsilon});
  // The reducer's row-sparse parameter; train.embedding_adam_overlap consumes its record.
  const bool overlap = embedding_adam_overlap_usable(config, platform);
  if (config.train.touched_rows_only || overlap)
    t.touched_rows = TouchedRows::find(*t.flat, ReducerOptions{}.sparse_rows_param);
  if (overlap && t.touched_rows) {
    // The join may wait until after backward where the embeddings' gradient goes straight into
    // the rows a step looks up (model/embedding_grad.h: the fused kernels with one replica, whose
    // direct gradients connect_trainee turns on), not autograd's dense gradient.
    const bool rows_only = t.model->compute().fused_kernels && env.world == 1;
    t.rows_adam = std::make_unique<RowsAdamOverlap>(*t.flat, *t.touched_rows, *t.adam, rows_only);
  }
  if (cuda_graphs_usable(config, platform)) {
    StepGraphs::use_own_stream(t.device);  // before anything registers gradient hooks
    t.graphs = std::make_unique<StepGraphs>(config.tokenizer.max_len, data::XlmrTokenizer::kPad,
                                            graph_allreduce_inside(config, platform),
                                            config.train.graph_bucket_tokens);
  }
  return t;
}

void connect_trainee(Trainee& t, const Config& config, const dist::MpiEnv& env) {
  t.comm = dist::make_communicator(config.dist.backend, t.device, env);
  if (env.world == 1) {  // no reducer, so no hooks wait on autograd's accumulators
    model::ComputeOptions compute = t.model->compute();
    compute.direct_weight_grads = true;
    t.model->set_compute(compute);
  } else {
    ReducerOptions options;
    options.bucket_mb = config.train.bucket_mb;
    options.wire = config.dist.grad_dtype;
    t.reducer = std::make_unique<GradientReducer>(*t.flat, *t.comm, env, options);
  }
  if (env.rank == 0)
    spdlog::info(
        "replica on {}, {} parameters in {} all-reduce buckets over {} ({}, {} on the wire)",
        t.device.str(), t.flat->size(), t.reducer ? t.reducer->bucket_ranges().size() : 0,
        t.comm->name(), count_of(env.world, "rank"), name_of(config.dist.grad_dtype));
  torch::Tensor params = t.flat->params();  // replicas start identical: rank 0's parameters
  t.comm->broadcast(params, 0);
}

// ---- the replica's local set-up

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int64_t threads_for(const Config& config, const dist::MpiEnv& env) {
  if (config.run.threads > 0) return config.run.threads;
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  return std::max<int64_t>(1, cores / std::max(1, env.local_world));
}

// Throws a UserError when the checkpoint at `path` comes from a run whose results would differ
// from this one's (`now`, of `config`): another configuration, or other data, tokenizer or model
// files.
void check_same_results(const TrainState& then, const TrainState& now, const Config& config,
                        const std::string& path) {
  if (!config_hash_matches(then, config) && !same_results_but_max_epochs(then, config)) {
    std::vector<std::string> changes;  // train.max_epochs alone may change: not a reason
    for (const std::string& change : config_changes_since(path, then, config))
      if (change.rfind("train.max_epochs:", 0) != 0) changes.push_back(change);
    throw UserError("checkpoint " + path +
                    " was written with a different configuration of the keys that change "
                    "results (" +
                    (changes.empty() ? "hash " + then.config_hash + ", now " + now.config_hash
                                     : join(changes, "; ")) +
                    "); resume with the same configuration or use another run.dir");
  }
  const std::string change = describe_inputs_change(then.inputs, now.inputs);
  if (!change.empty())
    throw UserError("checkpoint " + path + " was written with other inputs: " + change +
                    "; resume with the same files or use another run.dir");
}

// --resume auto: the newest step checkpoint that reads, into `checkpoint`, or "" (the reasons
// the others are unusable logged).
std::string newest_usable_checkpoint(const std::string& run_dir, Checkpoint& checkpoint) {
  for (const auto& candidate : list_step_checkpoints(run_dir)) {
    try {
      checkpoint = read_checkpoint(candidate);
      check_resumable(checkpoint, candidate);
      return candidate;
    } catch (const UserError& e) {  // "checkpoint <path> is unusable: <why>"
      spdlog::warn("{}; trying the previous one", e.what());
    } catch (const std::exception& e) {  // anything else that makes it unusable (memory, torch)
      const std::string why = e.what();
      spdlog::warn("checkpoint {} is unusable: {}; trying the previous one", candidate,
                   why.substr(0, why.find('\n')));
    }
  }
  return "";
}

// claim_run_dir, but first, where --force will move an earlier run's files aside, the checks
// of the inputs' starts (check_input_starts): a wrong file named in the configuration is
// refused while run.dir is still as it was. (A bad row deep in a CSV is found after the move.)
std::string claim(const Config& config, bool force, Claimant claimant) {
  if (force && !earlier_run_results(config.run.dir).empty()) check_input_starts(config);
  return claim_run_dir(config.run.dir, force, claimant);
}

// Rank 0: the checkpoint to resume from, read into `checkpoint`, or "" for a fresh start, which
// claims run.dir (run_dir.h; --resume auto finding no usable checkpoint is one too) and gets a
// new lineage in `state`.
std::string pick_checkpoint(const Config& config, const TrainOptions& options, TrainState& state,
                            Checkpoint& checkpoint) {
  std::string path;
  if (options.resume == "auto") {
    path = newest_usable_checkpoint(config.run.dir, checkpoint);
    const size_t unusable = path.empty() ? list_step_checkpoints(config.run.dir).size() : 0;
    if (unusable > 0 && !options.force)
      throw UserError("--resume auto: none of the " + std::to_string(unusable) +
                      " step checkpoints in " + checkpoint_dir(config.run.dir) +
                      " is usable (their reasons are logged above): pass --resume PATH to "
                      "resume from another checkpoint, or --force as well to move them into " +
                      files::join(config.run.dir, "previous-<time>/") + " and start afresh");
    if (path.empty()) {
      const std::string moved = claim(config, options.force, Claimant::kResumeFoundNothing);
      spdlog::info("--resume auto: no usable checkpoint in {}; starting fresh{}", config.run.dir,
                   moved.empty() ? "" : " (the earlier run's files moved into " + moved + ")");
    }
  } else if (!options.resume.empty()) {
    checkpoint = read_checkpoint(options.resume);
    check_resumable(checkpoint, options.resume);
    path = options.resume;
  }
  if (path.empty()) {
    state.lineage = new_lineage_id();
    return path;
  }
  check_same_results(checkpoint.state, state, config, path);
  if (const auto changed = number_changes_since(path, checkpoint.state, config); !changed.empty())
    spdlog::warn(
        "resuming from {} with {}: keys that change the numbers but not what is computed "
        "(rounding, or which rank's dropout stream a pair gets), so the run continues no "
        "longer bit for bit as it would have",
        path, join(changed, "; "));
  return path;
}

// Rank 0, once every rank has set up: --resume PATH starts another history at PATH's step;
// run.dir's checkpoints of the one it abandons go aside (run_dir.h).
void set_aside_after_branch(const Config& config, const TrainOptions& options, const Replica& r,
                            const Checkpoint& checkpoint) {
  if (r.resumed_from.empty() || options.resume == "auto") return;
  const std::string aside =
      set_aside_abandoned_history(config.run.dir, r.resumed_from, checkpoint.state);
  if (!aside.empty())
    spdlog::warn(
        "--resume {}: the checkpoints of {} past its step {} (or of another run) belong to "
        "another history; moved into {} with that history's outputs (features.h5, "
        "classifier.json, ...) and its metrics.jsonl (a copy, or another run's file), so that "
        "--resume auto (a requeue) continues this one",
        r.resumed_from, checkpoint_dir(config.run.dir), checkpoint.state.step, aside);
  const std::string best =
      restore_best_of_history(config.run.dir, r.resumed_from, checkpoint.state);
  if (!best.empty())
    spdlog::info("{}: the best weights of this history (val_loss {:.5f}), from {}",
                 best_checkpoint_path(config.run.dir), checkpoint.state.best_val_loss, best);
}

// With data.share_node and several ranks on this node, the node's first rank (local rank 0,
// the builder of dist::make_node_memory) loads, splits and builds the pairs; connect_replica()
// shares them with the others.
bool shares_data(const Config& config, const dist::MpiEnv& env) {
  return config.data.share_node && env.local_world > 1;
}

void log_pair_sequences(const Replica& r, const std::string& train_fingerprint,
                        const std::string& val_fingerprint) {
  // On every rank: the ranks (and `data pairs`) agree on the sequences.
  spdlog::info("pair sequences: training {} fingerprint {}, validation {} fingerprint {}",
               r.train_pairs.size(), train_fingerprint, r.val_pairs.size(), val_fingerprint);
}

// The notebook's assertion n_steps >= 50 (stopping.h), where its epoch rule applies: the
// notebook sampler, train.steps_per_epoch 0. Counted at this run's global batch.
void check_notebook_batches(const Config& config, const dist::MpiEnv& env, size_t train_pairs) {
  if (config.data.pair_sampler != PairSampler::kNotebook || config.train.steps_per_epoch != 0)
    return;
  const int64_t batch = config.train.pairs_per_rank * env.world * config.train.accumulation_steps;
  const int64_t batches = static_cast<int64_t>(train_pairs) / batch;
  if (batches < kNotebookMinTrainBatches)
    throw UserError(
        "data.train_pairs: the " + std::to_string(train_pairs) + " training pairs make " +
        std::to_string(batches) + " global batches of " + std::to_string(batch) +
        " pairs, expected at least " + std::to_string(kNotebookMinTrainBatches) +
        ": with data.pair_sampler: notebook and its epoch rule (train.steps_per_epoch: 0) the "
        "notebook asserts n_steps >= 50; ask for more pairs, use smaller batches "
        "(train.pairs_per_rank) or set train.steps_per_epoch");
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
  check_notebook_batches(config, env, r.train_pairs.size());
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

// A resumed run's best.h5 is read back when training ends (the notebook's load_weights): an
// unusable one is refused now, not after the whole run (reading it costs one file read),
// naming the step checkpoint of the best epoch (`resumed`.best_step) where it is still there.
void check_best_checkpoint(const std::string& run_dir, model::SiameseEncoder& model,
                           const std::string& resumed_path, const TrainState& resumed) {
  const std::string path = best_checkpoint_path(run_dir);
  if (!files::exists(path)) return;
  try {
    const Checkpoint best = read_checkpoint(path, false);
    for (const auto& [name, p] : model::named_parameters(*model)) {
      const auto it = best.params.find(name);
      if (it == best.params.end() || it->second.sizes() != p.sizes())
        throw UserError("checkpoint " + path + " is unusable: its parameter " + name +
                        (it == best.params.end() ? " is missing" : " has another shape"));
    }
  } catch (const UserError& e) {
    const std::string same = best_step_checkpoint(resumed_path, resumed);
    throw UserError(std::string(e.what()) +
                    "; the run would fail when it ends, reloading its best weights: restore the "
                    "file" +
                    (!same.empty() ? ", or copy " + same +
                                         " over it (the best epoch's step checkpoint, the "
                                         "same weights)"
                                   : "") +
                    "; deleting it ends the run with the weights of its next improved epoch, or "
                    "its last");
  }
}

// Rank 0, once the run is accepted (a resume checked against its checkpoint): the checkpoint
// folder and the resolved configuration. Nothing in run.dir changes before (a refused resume
// leaves the run's config.resolved.yaml as it was).
void write_run_files(const Config& config) {
  files::create_directories(checkpoint_dir(config.run.dir));
  write_resolved_config(config);
}

// Adam's moments from `checkpoint` (read from `path`), by parameter name: the file's layout
// may differ from this build's (files without a recorded layout have the plain reverse
// registration order).
void load_moments(const Checkpoint& checkpoint, const std::string& path, Trainee& t) {
  const std::vector<std::string>& order =
      checkpoint.moment_layout.empty() ? t.flat->registration_order() : checkpoint.moment_layout;
  const bool same = order == t.flat->names();  // then no rearranged copy (1 GB for XLM-R base)
  auto in_layout = [&](const torch::Tensor& v) { return same ? v : t.flat->rearranged(v, order); };
  try {
    t.adam->m().copy_(in_layout(checkpoint.adam_m).to(t.device));
    t.adam->v().copy_(in_layout(checkpoint.adam_v).to(t.device));
  } catch (const UserError& e) {
    throw UserError("checkpoint " + path +
                    ": its optimizer state does not fit the model: " + e.what());
  }
}

// One rank without any collective: data, tokenizer, trainee, and on rank 0 the checkpoint to
// resume from. A mistake here is reported after all ranks agree on success (a collective
// inside would deadlock against a rank that already failed).
void set_up_locally(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                    Replica& r, Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  torch::set_num_threads(static_cast<int>(threads_for(config, env)));

  if (!shares_data(config, env) || env.local_rank == 0) load_data(config, env, r);
  r.tokenizer = std::make_unique<data::XlmrTokenizer>(data::tokenizer_options(config));

  model::BuiltEncoder built = model::build_encoder(config);
  r.model_description = built.description;
  if (lead) spdlog::info("model: {}", built.description);
  model::check_tokenizer_fits(config, built.encoder->config(), r.tokenizer->vocab_size());
  r.trainee = build_trainee(config, env, built.encoder);
  r.state.world_size = env.world;
  r.state.config_hash = config_result_hash(config);
  r.state.config_hash_form = kConfigHashOfExactNumbers;
  r.state.inputs = result_inputs(config);
  r.state.best_val_loss = kInf;

  // Resume: rank 0 picks and reads the checkpoint; connect_replica() hands it to the others.
  if (!lead) return;
  r.resumed_from = pick_checkpoint(config, options, r.state, checkpoint);
  if (!r.resumed_from.empty()) {
    check_best_checkpoint(config.run.dir, r.trainee.model, r.resumed_from, checkpoint.state);
    model::load_state(*r.trainee.model, checkpoint.params, "checkpoint " + r.resumed_from);
    load_moments(checkpoint, r.resumed_from, r.trainee);
  }
  write_run_files(config);
}

// Rank 0, before any rank writes to run.dir: it locks run.dir for this run (refused while
// another training uses it) and a fresh run claims it (run_dir.h). Returns where --force moved
// an earlier run's files, or "".
std::string prepare_run_dir(const Config& config, const TrainOptions& options, Replica& r) {
  r.run_dir_lock = std::make_unique<RunDirLock>(config.run.dir, "train");
  const std::string moved =
      options.resume.empty() ? claim(config, options.force, Claimant::kFreshStart) : "";
  check_run_outputs_are_files(config.run.dir);  // else the training fails only when it ends
  for (const std::string& path : remove_stale_temporaries(config.run.dir))
    spdlog::info("removed {}, left by a writer that was killed", path);
  return moved;
}

}  // namespace

int set_up_replica(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                   Replica& r, Checkpoint& checkpoint) {
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
    if (!moved.empty()) spdlog::warn("the earlier run's files were moved into {}", moved);
    install_stop_handlers();
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    spdlog::info("rank {}/{} (local {}/{}) pid {} on {}", env.rank, env.world, env.local_rank,
                 env.local_world, static_cast<long>(getpid()), host);
    flush_logs();  // operators (and tests) look for the pid while the run is young
    set_up_locally(config, env, options, r, checkpoint);
  };
  auto set_aside = [&] {
    if (lead) set_aside_after_branch(config, options, r, checkpoint);
  };
  int code = dist::agree(dist::attempt(prepare), "the run directory");
  if (code != kExitOk) return code;
  code = dist::agree(dist::attempt(set_up_rank), "set-up");
  if (code != kExitOk) return code;
  return dist::agree(dist::attempt(set_aside), "setting the abandoned checkpoints aside");
}

// ---- the collective phase

namespace {

using Clock = std::chrono::steady_clock;

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

// Rank 0's resumed state, Adam moments and iteration count on every rank; this run's own
// settings and inputs kept.
void share_resumed_state(const dist::MpiEnv& env, Replica& r, const Checkpoint& checkpoint) {
  dist::broadcast(r.resumed_from, 0, "broadcast of the checkpoint to resume from");
  if (r.resumed_from.empty()) return;
  const TrainState now = r.state;
  if (env.rank == 0) r.state = checkpoint.state;
  broadcast_state(r.state, 0);
  Trainee& t = r.trainee;
  t.comm->broadcast(t.adam->m(), 0);
  t.comm->broadcast(t.adam->v(), 0);
  t.adam->set_iterations(r.state.adam_iterations);
  if (env.rank == 0)
    spdlog::info("resumed from {}: step {}, epoch {}, pair {} of the global sequence",
                 r.resumed_from, r.state.step, r.state.epoch, r.state.pairs_consumed);
  r.state.config_hash = now.config_hash;
  r.state.config_hash_form = now.config_hash_form;
  r.state.inputs = now.inputs;
}

int64_t global_batch_of(const Config& config, int64_t ranks, int64_t accumulation_steps) {
  return config.train.pairs_per_rank * ranks * accumulation_steps;
}

// A resumed run with another train.max_epochs (check_same_results lets it through) trains to
// that cap: a finished run continues for more epochs. 0 is the notebook's rule as the first run
// computed it (the same pairs, its global batch). A run early stopping ended stops again at
// once, and so does one past the new cap: said so.
void settle_max_epochs(const Config& config, const dist::MpiEnv& env, const Replica& r,
                       TrainState& s) {
  const int64_t cap = config.train.max_epochs > 0
                          ? config.train.max_epochs
                          : plan_epochs(static_cast<int64_t>(r.train_pairs.size()),
                                        static_cast<int64_t>(r.val_pairs.size()),
                                        s.plan_global_batch, config.train.steps_per_epoch, 0)
                                .max_epochs;
  if (cap == s.max_epochs) return;
  if (env.rank == 0) {
    const std::string then = " (its checkpoint planned " + std::to_string(s.max_epochs) + "; " +
                             std::to_string(s.epoch) + " completed)";
    if (s.epochs_without_improvement >= config.train.patience)
      spdlog::warn(
          "train.max_epochs {}{}: early stopping ended this run ({} epochs without a "
          "lower validation loss, train.patience {}), so it stops again at once",
          cap, then, s.epochs_without_improvement, config.train.patience);
    else if (s.epoch >= cap)
      spdlog::warn("train.max_epochs {}{}: the run is past it and stops at once", cap, then);
    else
      spdlog::info("train.max_epochs {}{}: the run continues to epoch {}", cap, then, cap);
  }
  s.max_epochs = cap;
}

// Rank 0, when the global batch differs from the checkpoint's: what changed and what is kept.
void warn_of_another_batch(const Config& config, const dist::MpiEnv& env, const TrainState& s,
                           int64_t before, int64_t batch) {
  spdlog::warn(
      "resuming with a global batch of {} pairs ({} x {} pairs x {} accumulation "
      "steps) instead of the checkpoint's {} ({} x {} x {}): the pair sequence continues at "
      "pair {} and the schedule is kept in pairs: epochs of {} pairs ({} steps now), a "
      "learning-rate half-cycle of {} pairs (at pair {} of it), at most {} epochs{}",
      batch, count_of(env.world, "rank"), config.train.pairs_per_rank,
      config.train.accumulation_steps, before, s.world_size, config.train.pairs_per_rank,
      s.accumulation_steps, s.pairs_consumed, s.plan().pairs_per_epoch,
      s.plan().steps_per_epoch(batch), s.plan().lr_step_pairs, s.lr_pairs, s.plan().max_epochs,
      config.train.max_steps > 0 ? ", train.max_steps counted in steps of " +
                                       std::to_string(s.plan().global_batch) + " pairs"
                                 : "");
}

// The schedule in pairs (stopping.h): a fresh run makes it at its global batch; a resumed run
// keeps its checkpoint's (but for a new train.max_epochs) and, when the global batch changed,
// says in one line what changed and what is kept. Every rank does the same from the same
// (broadcast) state.
void settle_plan(const Config& config, const dist::MpiEnv& env, Replica& r) {
  TrainState& s = r.state;
  const int64_t batch = r.global_batch;
  if (r.resumed_from.empty()) {
    s.set_plan(plan_in_pairs(plan_epochs(static_cast<int64_t>(r.train_pairs.size()),
                                         static_cast<int64_t>(r.val_pairs.size()), batch,
                                         config.train.steps_per_epoch, config.train.max_epochs),
                             config.train.lr_step_epochs));
  } else {
    settle_max_epochs(config, env, r, s);
    const int64_t before = global_batch_of(config, s.world_size, s.accumulation_steps);
    if (env.rank == 0 && before != batch) warn_of_another_batch(config, env, s, before, batch);
  }
  s.world_size = env.world;
  s.accumulation_steps = config.train.accumulation_steps;
}

}  // namespace

void connect_replica(const Config& config, const dist::MpiEnv& env, Replica& r,
                     const Checkpoint& checkpoint) {
  share_data(config, env, r);
  const size_t threads = static_cast<size_t>(config.tokenizer.threads);
  r.train_tokens = std::make_unique<data::TokenStore>(*r.tokenizer, r.split.train.texts, threads);
  r.val_tokens =
      std::make_unique<data::TokenStore>(*r.tokenizer, r.split.validation.texts, threads);
  connect_trainee(r.trainee, config, env);
  share_resumed_state(env, r, checkpoint);
  r.global_batch = global_batch_of(config, env.world, config.train.accumulation_steps);
  settle_plan(config, env, r);
}

}  // namespace sx::train

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
#include "core/rng.h"
#include "core/strings.h"
#include "data/batches.h"
#include "data/datasets.h"
#include "dist/communicator.h"
#include "export/features.h"
#include "model/encoder_factory.h"
#include "model/keras_adam.h"
#include "model/schedule.h"
#include "model/siamese_loss.h"
#include "model/weights.h"
#include "train/checkpoint.h"
#include "train/flat_params.h"
#include "train/metrics.h"
#include "train/reducer.h"
#include "train/signals.h"
#include "train/stopping.h"

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
      return "run.max_duration reached (time-based stopping)";
    case StopReason::kSignal:
      return "a stop signal";
    case StopReason::kNonFinite:
      return "too many non-finite steps in a row";
  }
  return "?";
}

// Everything one rank holds for training.
struct Replica {
  data::Datasets datasets;
  data::CorpusSplit split;
  std::vector<data::Pair> train_pairs, val_pairs;
  std::unique_ptr<data::XlmrTokenizer> tokenizer;
  std::unique_ptr<data::TokenStore> train_tokens, val_tokens;
  model::SiameseEncoder model{nullptr};
  torch::Device device{torch::kCPU};
  std::unique_ptr<FlatParameters> flat;
  std::unique_ptr<model::KerasAdam> adam;
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<GradientReducer> reducer;  // averages flat's gradients over the ranks
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

void broadcast_state(TrainState& s, int root) {
  std::vector<double> v{double(s.step),           double(s.epoch),
                        double(s.pairs_consumed), double(s.adam_iterations),
                        s.best_val_loss,          double(s.epochs_without_improvement),
                        s.train_seconds,          double(s.bad_steps),
                        double(s.world_size),     s.lr_step_size};
  dist::broadcast(v, root);
  s.step = int64_t(v[0]), s.epoch = int64_t(v[1]), s.pairs_consumed = int64_t(v[2]);
  s.adam_iterations = int64_t(v[3]), s.best_val_loss = v[4],
  s.epochs_without_improvement = int64_t(v[5]);
  s.train_seconds = v[6], s.bad_steps = int64_t(v[7]), s.world_size = int64_t(v[8]),
  s.lr_step_size = v[9];
  dist::broadcast(s.config_hash, root);
}

// Sets up one rank without any collective: data, tokenizer, model, optimizer, and on rank 0
// the checkpoint to resume from. A mistake here is reported after all ranks agree on
// success (a collective inside would deadlock against a rank that already failed).
void set_up_locally(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                    Replica& r, std::string& resume_path, Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  torch::set_num_threads(static_cast<int>(threads_for(config, env)));

  r.datasets = data::load_datasets(config, /*with_test=*/true, /*progress=*/lead);
  r.split = data::split_corpus(r.datasets.english, r.datasets.multilingual,
                               static_cast<uint64_t>(config.run.seed), config.data.val_fraction);
  data::PairReport train_report, val_report;
  r.train_pairs = data::training_pairs(config, r.split, &train_report);
  r.val_pairs = data::validation_pairs(config, r.split, &val_report);
  if (lead) {
    spdlog::info(
        "split: multilingual set {} rows ({} English), validation corpus {}, training corpus {}",
        r.split.multilingual.size(), r.split.max_size, r.split.validation.size(),
        r.split.train.size());
    train_report.log("training");
    val_report.log("validation");
  }

  r.tokenizer = std::make_unique<data::XlmrTokenizer>(data::tokenizer_options(config));
  const size_t threads = static_cast<size_t>(config.tokenizer.threads);
  r.train_tokens = std::make_unique<data::TokenStore>(*r.tokenizer, r.split.train.texts, threads);
  r.val_tokens =
      std::make_unique<data::TokenStore>(*r.tokenizer, r.split.validation.texts, threads);

  model::BuiltEncoder built = model::build_encoder(config);
  r.model = built.encoder;
  r.model_description = built.description;
  if (lead) spdlog::info("model: {}", built.description);
  if (config.tokenizer.max_len + r.model->config().pad_token_id + 1 >
      r.model->config().max_position_embeddings)
    throw UserError("tokenizer.max_len " + std::to_string(config.tokenizer.max_len) +
                    " needs more positions than the model has (max_position_embeddings " +
                    std::to_string(r.model->config().max_position_embeddings) + ")");
  if (r.tokenizer->vocab_size() > r.model->config().vocab_size)
    throw UserError("tokenizer.model has " + std::to_string(r.tokenizer->vocab_size()) +
                    " ids but the model's vocabulary has " +
                    std::to_string(r.model->config().vocab_size));
  r.device = model::resolve_device(config.model.device, env.local_rank);
  r.model->to(r.device);
  r.model->set_compute(model::compute_options(config, r.device));
  r.model->train();

  r.flat = std::make_unique<FlatParameters>(*r.model);
  torch::Tensor flat_params = r.flat->params();
  flat_params.mutable_grad() = r.flat->grads();
  r.adam = std::make_unique<model::KerasAdam>(
      std::vector<torch::Tensor>{flat_params},
      model::AdamOptions{config.train.adam_beta1, config.train.adam_beta2,
                         config.train.adam_epsilon});
  r.state.world_size = env.world;
  r.state.config_hash = config_result_hash(config);
  r.state.best_val_loss = kInf;

  // Resume: rank 0 picks and reads the checkpoint; connect() hands it to the others.
  std::string& path = resume_path;
  if (lead && !options.resume.empty()) {
    if (options.resume == "auto") {
      for (const auto& candidate : list_step_checkpoints(config.run.dir)) {
        try {
          checkpoint = read_checkpoint(candidate);
          path = candidate;
          break;
        } catch (const UserError& e) {
          spdlog::warn("{}; trying the previous one", e.what());
        }
      }
      if (path.empty())
        spdlog::info("--resume auto: no usable checkpoint in {}; starting fresh", config.run.dir);
    } else {
      checkpoint = read_checkpoint(options.resume);
      path = options.resume;
    }
    if (!path.empty() && checkpoint.state.config_hash != r.state.config_hash)
      throw UserError("checkpoint " + path +
                      " was written with a different configuration of the keys that change "
                      "results (hash " +
                      checkpoint.state.config_hash + ", now " + r.state.config_hash +
                      "); resume with the same configuration or use another run.dir");
    if (!path.empty()) {
      load_params(*r.model, checkpoint.params, path);
      auto adam_state = r.adam->state();
      adam_state["m.0"].copy_(checkpoint.adam_m.to(r.device));
      adam_state["v.0"].copy_(checkpoint.adam_v.to(r.device));
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

// The collective part of set-up: the communicator, the resumed state, identical replicas.
void connect(const Config& config, const dist::MpiEnv& env, Replica& r, std::string& path,
             const Checkpoint& checkpoint) {
  const bool lead = env.rank == 0;
  r.comm =
      dist::make_communicator(config.dist.backend, r.device, env, config.dist.collective_timeout);
  ReducerOptions reducer_options;
  reducer_options.bucket_mb = config.train.bucket_mb;
  reducer_options.wire = dist::parse_wire_type(config.dist.grad_dtype);
  reducer_options.timeout_seconds = config.dist.collective_timeout;
  r.reducer = std::make_unique<GradientReducer>(*r.flat, *r.comm, env, reducer_options);
  if (lead)
    spdlog::info(
        "replica on {}, {} parameters in {} all-reduce buckets over {} ({} ranks, {} on the wire)",
        r.device.str(), r.flat->size(), r.reducer->bucket_ranges().size(), r.comm->name(),
        env.world, config.dist.grad_dtype);
  dist::broadcast(path, 0);
  if (!path.empty()) {
    if (lead) r.state = checkpoint.state;
    broadcast_state(r.state, 0);
    auto adam_state = r.adam->state();
    adam_state["iterations"] = torch::tensor({r.state.adam_iterations}, torch::kLong);
    r.comm->broadcast(adam_state["m.0"], 0);
    r.comm->broadcast(adam_state["v.0"], 0);
    r.adam->load_state(adam_state);
    if (lead) {
      spdlog::info("resumed from {}: step {}, epoch {}, pair {} of the global sequence", path,
                   r.state.step, r.state.epoch, r.state.pairs_consumed);
      if (r.state.world_size != env.world)
        spdlog::warn(
            "the checkpoint was written by {} ranks, this run has {}: the global pair sequence "
            "continues "
            "at pair {} with a global batch of {}",
            r.state.world_size, env.world, r.state.pairs_consumed,
            config.train.pairs_per_rank * env.world);
    }
    r.state.world_size = env.world;
    r.state.config_hash = config_result_hash(config);
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
  auto total = dist::allreduce_sum({sum, static_cast<double>(end - begin)});
  return total[0] / std::max(1.0, total[1]);
}

Checkpoint snapshot(Replica& r, bool with_optimizer) {
  Checkpoint c;
  c.state = r.state;
  c.state.adam_iterations = r.adam->iterations();
  c.params = model::named_parameters(*r.model);
  if (with_optimizer) {
    auto s = r.adam->state();
    c.adam_m = s["m.0"];
    c.adam_v = s["v.0"];
  }
  return c;
}

}  // namespace

int run_training(const Config& config, const dist::MpiEnv& env, const TrainOptions& options) {
  const bool lead = env.rank == 0;
  Replica r;
  std::string error, resume_path;
  Checkpoint checkpoint;
  bool ok = true;
  try {
    if (lead) {
      files::create_directories(checkpoint_dir(config.run.dir));
      write_resolved_config(config);
    }
    dist::barrier();
    // Each rank's file keeps info and above; the terminal shows other ranks at their quieter level.
    add_rank_log_file(config.run.dir, env.rank, env.world, config.run.log_level);
    install_stop_handlers(config.dist.stop_signal);
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    spdlog::info("rank {}/{} (local {}/{}) pid {} on {}", env.rank, env.world, env.local_rank,
                 env.local_world, static_cast<long>(getpid()), host);
    flush_logs();  // operators (and tests) look for the pid while the run is young
    set_up_locally(config, env, options, r, resume_path, checkpoint);
  } catch (const std::exception& e) {
    ok = false;
    error = e.what();
    if (!dynamic_cast<const UserError*>(&e)) error = "internal error during set-up: " + error;
  }
  if (!dist::all_succeeded(ok, error)) {
    if (lead) throw UserError(error);
    return kExitUserError;
  }

  try {
    connect(config, env, r, resume_path, checkpoint);
    checkpoint = {};  // its tensors are in the replica now
    // The notebook projects the data before training too: the untrained encoder's features.
    if (config.export_.before_training && resume_path.empty())
      export_run_features(config, env, r, "features_before.h5");
    const int64_t world = env.world;
    const int64_t per_rank = config.train.pairs_per_rank;
    const EpochPlan plan = plan_epochs(static_cast<int64_t>(r.train_pairs.size()),
                                       static_cast<int64_t>(r.val_pairs.size()), per_rank, world,
                                       config.train.steps_per_epoch, config.train.max_epochs);
    const model::Triangular2 schedule{
        config.train.lr_min, config.train.lr_max,
        config.train.lr_step_epochs * static_cast<double>(plan.steps_per_epoch)};
    r.state.lr_step_size = schedule.step_size;
    EarlyStopping early{config.train.patience, r.state.best_val_loss,
                        r.state.epochs_without_improvement};
    const int64_t step_cap = plan.max_epochs * plan.steps_per_epoch;
    MetricsLog metrics =
        lead ? MetricsLog(files::join(config.run.dir, "metrics.jsonl")) : MetricsLog();
    if (lead)
      spdlog::info(
          "training: global batch {} ({} ranks x {}), {} steps per epoch, at most {} epochs{}{}",
          plan.global_batch, world, per_rank, plan.steps_per_epoch, plan.max_epochs,
          config.train.max_steps ? ", at most " + std::to_string(config.train.max_steps) + " steps"
                                 : "",
          config.run.max_duration > 0 ? ", time budget " + format_duration(config.run.max_duration)
                                      : "");

    StopReason reason = StopReason::kNone;
    int64_t consecutive_bad = 0, last_checkpoint_step = -1;
    double last_step_seconds = 0, epoch_loss_sum = 0;
    int64_t epoch_loss_count = 0;
    const auto started = Clock::now();
    const double seconds_before = r.state.train_seconds;
    auto elapsed = [&] {
      return seconds_before + std::chrono::duration<double>(Clock::now() - started).count();
    };
    auto write_step_checkpoint = [&] {
      if (!lead || last_checkpoint_step == r.state.step) return;
      r.state.train_seconds = elapsed();
      write_checkpoint(step_checkpoint_path(config.run.dir, r.state.step), snapshot(r, true));
      prune_step_checkpoints(config.run.dir, config.train.keep_checkpoints);
      last_checkpoint_step = r.state.step;
    };
    const size_t max_len = r.tokenizer->max_len();
    const int64_t step_at_start = r.state.step;

    while (true) {
      if (config.train.max_steps > 0 && r.state.step >= config.train.max_steps) {
        reason = StopReason::kMaxSteps;
        break;
      }
      if (r.state.step >= step_cap) {
        reason = StopReason::kMaxEpochs;
        break;
      }
      // Step boundary: every rank learns of any signal, and of rank 0's time decision.
      const bool out_of_time = lead && config.run.max_duration > 0 &&
                               elapsed() + last_step_seconds >= config.run.max_duration;
      auto flags = dist::allreduce_max({stop_requested() ? 1 : 0, out_of_time ? 1 : 0});
      if (flags[0]) {
        reason = StopReason::kSignal;
        break;
      }
      if (flags[1]) {
        reason = StopReason::kTime;
        break;
      }

      const auto step_start = Clock::now();
      data::PairBatch batch = data::make_pair_batch(
          r.train_pairs, data::rank_range(r.state.pairs_consumed, env.rank, per_rank),
          *r.train_tokens, max_len);
      // Dropout randomness from (seed, rank, step) alone: a resumed run draws the same.
      torch::manual_seed(
          mix_seed({static_cast<uint64_t>(config.run.seed), static_cast<uint64_t>(env.rank),
                    static_cast<uint64_t>(r.state.step)}));
      torch::Tensor labels =
          torch::from_blob(batch.labels.data(), {per_rank}, torch::kFloat).to(r.device);
      r.reducer->begin_step(r.state.step + 1, {batch.left_ids, batch.right_ids});
      r.flat->zero_grads();
      torch::Tensor loss =
          model::dbl_loss(pair_distances(r.model, batch, r.device), labels, config.train.margin);
      loss.backward();  // the reducer's hooks launch the buckets' all-reduces meanwhile
      int64_t tokens = 0;
      for (int32_t id : batch.left_ids) tokens += id != data::XlmrTokenizer::kPad;
      for (int32_t id : batch.right_ids) tokens += id != data::XlmrTokenizer::kPad;
      {
        torch::NoGradGuard no_grad;
        r.flat->slot(StepSlot::kLoss).copy_(loss.detach());
        r.flat->slot(StepSlot::kTokens).fill_(static_cast<double>(tokens));
      }
      const auto comm_start = Clock::now();  // from here on only the wait is exposed
      r.reducer->finish_step();              // averaged gradients and slots
      const double comm_seconds = std::chrono::duration<double>(Clock::now() - comm_start).count();
      if (lead && r.state.step == step_at_start)
        spdlog::info("all-reduce of step {}: {}", r.state.step + 1, describe(r.reducer->stats()));
      torch::Tensor all = r.flat->grads();
      torch::Tensor slots = r.flat->slots().to(torch::kCPU);
      const double global_loss = slots[static_cast<int64_t>(StepSlot::kLoss)].item<double>();
      const double global_tokens = train::global_tokens(
          slots[static_cast<int64_t>(StepSlot::kTokens)].item<double>(), world);
      const bool finite = std::isfinite(global_loss) && torch::isfinite(all).all().item<bool>();
      double lr = schedule(r.adam->iterations());
      if (finite) {
        r.adam->step(lr);
        consecutive_bad = 0;
        epoch_loss_sum += global_loss;
        ++epoch_loss_count;
      } else {
        ++r.state.bad_steps;
        ++consecutive_bad;
        if (lead)
          spdlog::warn(
              "step {}: non-finite loss or gradient; update skipped ({} in a row, {} in all)",
              r.state.step + 1, consecutive_bad, r.state.bad_steps);
      }
      ++r.state.step;
      r.state.pairs_consumed += per_rank * world;
      last_step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
      if (lead) {
        metrics.step(r.state.step, r.state.epoch, global_loss, lr,
                     plan.global_batch / last_step_seconds, global_tokens / last_step_seconds,
                     !finite, last_step_seconds, comm_seconds);
        if (r.state.step % config.train.log_every == 0)
          spdlog::info("step {} (epoch {}, {}/{}): loss {:.5f} lr {:.3g}, {:.1f} pairs/s",
                       r.state.step, r.state.epoch + 1,
                       (r.state.step - 1) % plan.steps_per_epoch + 1, plan.steps_per_epoch,
                       global_loss, lr, plan.global_batch / last_step_seconds);
      }
      if (consecutive_bad >= config.train.max_bad_steps) {
        reason = StopReason::kNonFinite;
        break;
      }

      if (r.state.step % plan.steps_per_epoch == 0) {  // epoch end
        ++r.state.epoch;
        const double val_loss = validation_loss(config, env, r);
        std::vector<int64_t> decision{0, 0};  // improved, stop
        if (lead) {
          decision[0] = early.update(val_loss);
          decision[1] = early.should_stop();
        }
        dist::broadcast(decision, 0);
        r.state.best_val_loss = early.best;
        r.state.epochs_without_improvement = early.epochs_without_improvement;
        if (lead) {
          const double train_loss = epoch_loss_count ? epoch_loss_sum / epoch_loss_count : NAN;
          spdlog::info("epoch {}: loss {:.5f}, val_loss {:.5f}{} (best {:.5f}), {}", r.state.epoch,
                       train_loss, val_loss, decision[0] ? " improved" : "", early.best,
                       format_duration(elapsed()));
          metrics.epoch(r.state.epoch, r.state.step, val_loss, early.best, decision[0], elapsed(),
                        train_loss);
          if (decision[0]) {
            r.state.train_seconds = elapsed();
            write_checkpoint(best_checkpoint_path(config.run.dir), snapshot(r, false));
          }
          write_step_checkpoint();
        }
        epoch_loss_sum = 0;
        epoch_loss_count = 0;
        if (decision[1]) {
          reason = StopReason::kEarlyStopping;
          break;
        }
      }
    }

    spdlog::info("training stopped at step {} (epoch {}): {}", r.state.step, r.state.epoch,
                 describe(reason));
    flush_logs();
    if (lead) metrics.event("stop", r.state.step, describe(reason));
    write_step_checkpoint();
    dist::barrier();
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
            "good "
            "weights",
            consecutive_bad);
      return kExitNonFinite;
    }

    // The notebook's load_weights: continue with the best weights seen by validation.
    std::string best = lead && files::exists(best_checkpoint_path(config.run.dir))
                           ? best_checkpoint_path(config.run.dir)
                           : "";
    dist::broadcast(best, 0);
    if (!best.empty()) {
      if (lead) load_params(*r.model, read_checkpoint(best, false).params, best);
      torch::Tensor params = r.flat->params();
      r.comm->broadcast(params, 0);
      if (lead)
        spdlog::info("reloaded the best weights (val_loss {:.5f}) from {}", r.state.best_val_loss,
                     best);
    }
    export_run_features(config, env, r, "features.h5");
    return kExitOk;
  } catch (const std::exception& e) {
    spdlog::critical("rank {}: {}", env.rank, e.what());
    flush_logs();
    std::fprintf(stderr, "siamese-xlmr: error: [rank %d] %s\n", env.rank, e.what());
    dist::abort_job(dynamic_cast<const UserError*>(&e) ? kExitUserError : kExitInternal);
  }
}

}  // namespace sx::train

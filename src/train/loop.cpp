#include "train/loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/program_clock.h"
#include "core/rng.h"
#include "core/strings.h"
#include "data/rank_deal.h"
#include "data/text_batch.h"
#include "dist/deadline.h"
#include "encode/encode_texts.h"
#include "model/siamese_loss.h"
#include "model/weights.h"
#include "train/checkpoint.h"
#include "train/epoch_score.h"
#include "train/signals.h"

namespace sx::train {

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
    case StopReason::kNonFiniteValidation:
      return "a validation loss that is not finite";
  }
  return "?";
}

namespace {

Checkpoint snapshot(Replica& r, bool with_optimizer) {
  Checkpoint c;
  c.state = r.state;
  c.state.adam_iterations = r.trainee.adam->iterations();
  c.params = model::named_parameters(*r.trainee.model);
  if (with_optimizer) {
    c.adam_m = r.trainee.adam->m();
    c.adam_v = r.trainee.adam->v();
    c.moment_layout = r.trainee.flat->names();
  }
  return c;
}

}  // namespace

Loop::Loop(const Config& config, const dist::MpiEnv& env, Replica& replica, JobBudget budget)
    : config_(config),
      env_(env),
      r_(replica),
      schedule_{config.train.lr_min, config.train.lr_max, replica.state.plan().lr_step_pairs},
      early_{config.train.patience, replica.state.best_val_loss,
             replica.state.epochs_without_improvement},
      metrics_(env.rank == 0 ? MetricsLog(files::join(config.run.dir, "metrics.jsonl"),
                                          replica.resumed_from.empty() ? -1 : replica.state.step)
                             : MetricsLog()),
      batches_([this](uint64_t consumed) { return training_batches(consumed); },
               static_cast<uint64_t>(replica.global_batch)),
      budget_(budget),
      checkpoint_every_(parse_steps_or_duration(config.train.checkpoint_every)),
      seconds_before_(replica.state.train_seconds),
      first_step_(replica.state.step) {
  if (!lead()) return;
  const PairPlan plan = r_.state.plan();
  metrics_.start(
      {r_.state.step, r_.resumed_from, env.world, r_.global_batch, r_.state.config_hash});
  progress_.start(plan.steps_per_epoch(r_.global_batch), plan.max_epochs, r_.global_batch);
  log_start();
}

void Loop::log_start() const {
  const PairPlan plan = r_.state.plan();
  const int64_t accumulation = config_.train.accumulation_steps;
  spdlog::info("training: global batch {} ({} x {}{}), {} steps per epoch, at most {}{}{}",
               r_.global_batch, count_of(env_.world, "rank"), config_.train.pairs_per_rank,
               accumulation > 1 ? " x " + std::to_string(accumulation) + " accumulation steps" : "",
               plan.steps_per_epoch(r_.global_batch), count_of(plan.max_epochs, "epoch"),
               config_.train.max_steps
                   ? ", at most " + std::to_string(config_.train.max_steps) + " steps"
                   : "",
               budget_.limited() ? ", whole-job time budget " + format_budget(budget_.budget()) +
                                       " from the program's start"
                                 : "");
}

double Loop::elapsed() const {
  return seconds_before_ + std::chrono::duration<double>(Clock::now() - started_).count();
}

// This rank's micro-batches of the global batch at `consumed` (any thread: the prefetcher's).
// The global batch is A consecutive blocks of W x P pairs (A accumulation steps, W ranks, P
// pairs per rank); micro-batch a is this rank's share of block a, dealt out as without
// accumulation. So W ranks x A micro-batches take the same global batch as W x A ranks.
std::vector<HostBatch> Loop::training_batches(uint64_t consumed) const {
  const size_t max_len = r_.tokenizer->max_len();
  const int64_t per_rank = config_.train.pairs_per_rank;
  const auto block = static_cast<uint64_t>(per_rank * env_.world);
  // CUDA graphs on several ranks replay the bucket of the largest share, which the deal tells.
  const bool global_bucket = r_.trainee.graphs != nullptr && env_.world > 1;
  std::vector<HostBatch> micro;
  for (int64_t a = 0; a < config_.train.accumulation_steps; ++a) {
    const uint64_t at = consumed + static_cast<uint64_t>(a) * block;
    data::DealSummary deal;
    auto positions = data::rank_positions(r_.train_pairs, at, env_.rank, env_.world, per_rank,
                                          config_.train.balance_ranks, *r_.train_tokens, max_len,
                                          global_bucket ? &deal : nullptr);
    micro.push_back(
        make_host_batch(data::make_text_batch(r_.train_pairs, positions, *r_.train_tokens, max_len),
                        r_.trainee.device));
    micro.back().consumed = at;
    micro.back().imbalance = deal.imbalance;
    micro.back().most_rank_tokens = deal.most_tokens;
  }
  return micro;
}

// train.embedding_adam_overlap: the last step's deferred embedding rows are done before
// anything but the next step reads the parameters or the moments.
void Loop::settle_optimizer() {
  if (r_.trainee.rows_adam) r_.trainee.rows_adam->join();
}

void Loop::write_step_checkpoint() {
  settle_optimizer();
  if (!lead() || last_checkpoint_step_ == r_.state.step) return;
  r_.state.train_seconds = elapsed();
  write_checkpoint(step_checkpoint_path(config_.run.dir, r_.state.step), snapshot(r_, true));
  prune_step_checkpoints(config_.run.dir, config_.train.keep_checkpoints, r_.state.lineage);
  last_checkpoint_step_ = r_.state.step;
  last_checkpoint_at_ = Clock::now();
}

// train.checkpoint_every: whether rank 0's clock says an interval checkpoint is due (rank 0
// alone decides; stop_check shares the decision), and whether the step count does.
bool Loop::checkpoint_time_due() const {
  return lead() && checkpoint_every_.seconds > 0 &&
         std::chrono::duration<double>(Clock::now() - last_checkpoint_at_).count() >=
             checkpoint_every_.seconds;
}
bool Loop::checkpoint_steps_due() const {
  const int64_t step = r_.state.step;
  return checkpoint_every_.steps > 0 && step > first_step_ && step % checkpoint_every_.steps == 0;
}

// It runs while the GPU still executes the last step's optimizer (train_step returns without
// waiting for it).
StopReason Loop::stop_check() {
  const TrainState& s = r_.state;
  if (s.plan().steps_done(s.pairs_consumed, config_.train.max_steps)) return StopReason::kMaxSteps;
  if (s.plan().epochs_done(s.pairs_consumed)) return StopReason::kMaxEpochs;
  dist::set_step(s.step + 1);  // deadline messages name the step
  // Whether rank 0 is out of time before the next step: rank 0 alone decides.
  const bool out_of_time = lead() && budget_.should_stop(program_seconds(), last_step_seconds_);
  // A resumed run that early stopping had ended (rank 0 keeps the decision): it stops again.
  const bool early_stop = lead() && early_.should_stop();
  auto flags =
      dist::allreduce_max({stop_requested() ? std::max(1, stop_signal_number()) : 0,
                           out_of_time ? 1 : 0, checkpoint_time_due() ? 1 : 0, early_stop ? 1 : 0},
                          "stop-flag reduction");
  if (flags[0]) {
    stop_signal_ = static_cast<int>(flags[0]);  // from whichever rank was signalled
    return StopReason::kSignal;
  }
  if (flags[3]) return StopReason::kEarlyStopping;
  if (flags[1]) return StopReason::kTime;
  if ((flags[2] || checkpoint_steps_due()) && last_checkpoint_step_ != s.step) {
    if (lead())
      spdlog::info("step {}: checkpoint (train.checkpoint_every {})", s.step,
                   config_.train.checkpoint_every);
    write_step_checkpoint();
  }
  return StopReason::kNone;
}

// Where the last step lies in its epoch (1-based), in steps of this run's global batch.
int64_t Loop::step_in_epoch() const {
  const TrainState& s = r_.state;
  const int64_t into = s.pairs_consumed - saturated_product(s.epoch, s.plan().pairs_per_epoch);
  return (into + r_.global_batch - 1) / r_.global_batch;
}

StopReason Loop::step() {
  at_epoch_end_ = false;
  const auto step_start = Clock::now();
  const std::vector<HostBatch> micro_batches =
      batches_.take(static_cast<uint64_t>(r_.state.pairs_consumed));
  StepSettings settings;
  settings.step = r_.state.step + 1;
  settings.margin = config_.train.margin;
  settings.dropout_seed =
      mix_seed({static_cast<uint64_t>(config_.run.seed), static_cast<uint64_t>(env_.rank),
                static_cast<uint64_t>(r_.state.step)});
  settings.lr = schedule_(static_cast<double>(r_.state.lr_pairs));
  if (r_.trainee.rows_adam) settings.next_batches = [this] { return batches_.ready_next(); };
  const StepResult s = train_step(r_.trainee, micro_batches, settings);
  if (lead() && r_.trainee.reducer && !reduction_logged_) {  // what the reducer does, once
    spdlog::info("all-reduce of step {}: {}", settings.step, describe(r_.trainee.reducer->stats()));
    reduction_logged_ = true;
  }
  account(s, settings.step);
  report_step(s, std::chrono::duration<double>(Clock::now() - step_start).count());
  return consecutive_bad_ >= config_.train.max_bad_steps ? StopReason::kNonFinite
                                                         : StopReason::kNone;
}

// The state after step `step_number`: the rate moves with applied updates only.
void Loop::account(const StepResult& s, int64_t step_number) {
  if (s.applied) {
    consecutive_bad_ = 0;
    r_.state.epoch_loss_sum += s.loss;
    ++r_.state.epoch_loss_steps;
    r_.state.lr_pairs += r_.global_batch;
  } else {
    ++r_.state.bad_steps;
    ++consecutive_bad_;
    if (lead())
      spdlog::warn("step {}: non-finite loss or gradient; update skipped ({} in a row, {} in all)",
                   step_number, consecutive_bad_, r_.state.bad_steps);
  }
  ++r_.state.step;
  r_.state.pairs_consumed += r_.global_batch;
}

// Rank 0: the metrics line, the log line every train.log_every steps, the progress display.
void Loop::report_step(const StepResult& s, double seconds) {
  last_step_seconds_ = seconds;
  if (!lead()) return;
  const TrainState& st = r_.state;
  const double pairs_per_s = static_cast<double>(r_.global_batch) / seconds;
  metrics_.step(st.step, st.epoch, s.loss, s.lr, pairs_per_s, s.tokens / seconds, !s.applied,
                seconds, s.allreduce_s);
  if (st.step % config_.train.log_every == 0)
    spdlog::info("step {} (epoch {}, {}/{}): loss {:.5f} lr {:.3g}, {:.1f} pairs/s", st.step,
                 st.epoch + 1, step_in_epoch(), st.plan().steps_per_epoch(r_.global_batch), s.loss,
                 s.lr, pairs_per_s);
  progress_.step(st.step, st.epoch, s.applied ? s.loss : NAN, seconds,
                 budget_.limited() ? std::max(0.0, budget_.budget() - program_seconds()) : -1);
}

// "in epoch 2, 60/500" (the step log's 1-based count), "after epoch 3" once an epoch ended
// (its last step may have gone past its end, or the time budget ended the first one early),
// "before the first step".
std::string Loop::where_in_training() const {
  const TrainState& s = r_.state;
  const int64_t in_epoch = step_in_epoch(), steps = s.plan().steps_per_epoch(r_.global_batch);
  if (at_epoch_end_ || in_epoch <= 0)
    return s.step == 0 ? "before the first step" : "after epoch " + std::to_string(s.epoch);
  return "in epoch " + std::to_string(s.epoch + 1) + ", " +
         std::to_string(std::min(in_epoch, steps)) + "/" + std::to_string(steps);
}

bool Loop::epoch_ended() const {
  return r_.state.plan().ends_epoch(r_.state.pairs_consumed, r_.state.epoch);
}

double Loop::validation_loss() {
  torch::NoGradGuard no_grad;
  model::SiameseEncoder& model = r_.trainee.model;
  model->eval();
  const uint64_t n = r_.val_pairs.size();
  const uint64_t begin = n * env_.rank / env_.world, end = n * (env_.rank + 1) / env_.world;
  // Batches of a training step's pairs (which fit, with their backward): a batch's shape moves
  // the last bits of the forward (the GEMMs' blocking), so export.batch_size, not a key that
  // changes results, changed the loss's eighth digit and could tip early stopping in a tie.
  const uint64_t chunk = static_cast<uint64_t>(config_.train.pairs_per_rank);
  double sum = 0;
  std::vector<uint64_t> positions;
  for (uint64_t start = begin; start < end; start += chunk) {
    positions.clear();
    for (uint64_t p = start; p < std::min(end, start + chunk); ++p) positions.push_back(p);
    const data::TextBatch batch =
        data::make_text_batch(r_.val_pairs, positions, *r_.val_tokens, r_.tokenizer->max_len());
    torch::Tensor labels = torch::tensor(batch.labels, torch::kFloat).to(r_.trainee.device);
    torch::Tensor loss = model::pair_loss(*model, encode::packed_ids(batch, r_.trainee.device),
                                          labels, config_.train.margin);
    sum += loss.item<double>() * static_cast<double>(batch.pairs);
  }
  model->train();
  auto total =
      dist::allreduce_sum({sum, static_cast<double>(end - begin)}, "sum of the validation loss");
  return total[0] / std::max(1.0, total[1]);
}

StopReason Loop::end_epoch() {
  settle_optimizer();
  TrainState& s = r_.state;
  ++s.epoch;
  at_epoch_end_ = true;
  const double val_loss = validation_loss();  // the same on every rank
  // Finite steps can still leave weights that are not (an overflowing update): early stopping
  // would count it as no improvement and the run would export NaN features.
  if (!std::isfinite(val_loss)) {
    if (lead())
      spdlog::error("epoch {}: val_loss {}: the weights no longer give a finite loss", s.epoch,
                    val_loss);
    return StopReason::kNonFiniteValidation;
  }
  const bool with_auc = config_.train.epoch_auc;
  CentroidAuc auc;
  if (with_auc)
    auc = epoch_centroid_auc(r_.trainee.model, *r_.tokenizer, r_.split.multilingual,
                             static_cast<size_t>(config_.export_.batch_size), env_);
  std::vector<int64_t> decision{0, 0};  // improved, stop
  if (lead()) {
    decision[0] = early_.update(val_loss);
    decision[1] = early_.should_stop();
  }
  dist::broadcast(decision, 0, "broadcast of the early-stopping decision");
  s.best_val_loss = early_.best;
  s.epochs_without_improvement = early_.epochs_without_improvement;
  if (decision[0]) s.best_step = s.step;  // best.h5 and this epoch-end checkpoint hold its weights
  // The next epoch's sum starts here, before the epoch-end checkpoint that a resume reads.
  const double train_loss =
      s.epoch_loss_steps ? s.epoch_loss_sum / static_cast<double>(s.epoch_loss_steps) : NAN;
  s.epoch_loss_sum = 0;
  s.epoch_loss_steps = 0;
  if (lead()) {
    spdlog::info("epoch {}: loss {:.5f}, val_loss {:.5f}{} (best {:.5f}), {}{}", s.epoch,
                 train_loss, val_loss, decision[0] ? " improved" : "", early_.best,
                 format_duration(elapsed()), with_auc ? ", centroid AUC " + auc_text(auc) : "");
    metrics_.epoch(s.epoch, s.step, val_loss, early_.best, decision[0], elapsed(), train_loss,
                   with_auc ? &auc : nullptr);
    if (decision[0]) {
      s.train_seconds = elapsed();
      write_checkpoint(best_checkpoint_path(config_.run.dir), snapshot(r_, false));
    }
    write_step_checkpoint();
  }
  return decision[1] ? StopReason::kEarlyStopping : StopReason::kNone;
}

// The notebook's load_weights: continue with the best weights seen by validation.
void Loop::reload_best_weights() {
  const std::string& dir = config_.run.dir;
  std::string best =
      lead() && files::exists(best_checkpoint_path(dir)) ? best_checkpoint_path(dir) : "";
  dist::broadcast(best, 0, "broadcast of the best checkpoint's path");
  if (best.empty()) {
    // The features come from the weights trained so far: their "model" attribute said the
    // initial encoder (a random initialisation, or model.pretrained).
    if (r_.state.step > 0)
      r_.model_description = "the last weights, step " + std::to_string(r_.state.step) + " (no " +
                             best_checkpoint_path(dir) + ")";
    if (lead() && std::isfinite(r_.state.best_val_loss))
      spdlog::warn(
          "{} is missing, though validation recorded a best val_loss of {:.5f}: the features "
          "are exported from the last weights (step {}), not the best ones",
          best_checkpoint_path(dir), r_.state.best_val_loss, r_.state.step);
    else if (lead() && r_.state.step > 0)
      spdlog::warn(
          "no validation ran before training stopped: the features are exported from the last "
          "weights (step {}), which no validation has scored",
          r_.state.step);
    return;
  }
  Trainee& t = r_.trainee;
  if (lead())
    model::load_state(*t.model, read_checkpoint(best, false).params, "checkpoint " + best);
  torch::Tensor params = t.flat->params();
  t.comm->broadcast(params, 0);
  r_.model_description = "weights of " + best;  // what the features say they come from
  if (lead())
    spdlog::info("reloaded the best weights (val_loss {:.5f}) from {}", r_.state.best_val_loss,
                 best);
}

void Loop::record_stop(StopReason reason, const std::string& detail) {
  if (lead()) metrics_.event("stop", r_.state.step, detail.empty() ? describe(reason) : detail);
}

int Loop::finish(StopReason reason, const FeatureExport& export_features) {
  settle_optimizer();
  budget_.end_of(JobBudget::kTraining, program_seconds());
  progress_.finish();
  spdlog::info("training stopped at step {} ({}): {}", r_.state.step, where_in_training(),
               describe(reason));
  flush_logs();
  record_stop(reason, "");
  dist::set_step(r_.state.step);
  if (reason == StopReason::kNonFiniteValidation) {
    // Weights that give no finite loss are worth no checkpoint.
    if (lead())
      spdlog::error(
          "training stopped at epoch {}: its validation loss is not finite, so its weights are "
          "not saved; the step checkpoints written since the last epoch end (train.checkpoint_"
          "every) may hold such weights too: resume from an epoch-end one, or start afresh with "
          "a lower train.lr_max",
          r_.state.epoch);
    return kExitNonFinite;
  }
  write_step_checkpoint();
  dist::barrier("barrier after the last checkpoint");
  if (reason == StopReason::kSignal) {
    if (lead())
      log_for_launcher(LogLevel::kWarn,
                       fmt::format("stopped by signal {}; checkpoint written, exiting with {} so "
                                   "the job can be requeued (resume with --resume auto)",
                                   stop_signal_, kExitRequeue));
    return kExitRequeue;
  }
  if (reason == StopReason::kNonFinite) {
    if (lead())
      spdlog::error(
          "training stopped: {} non-finite steps in a row; the last checkpoint holds the last "
          "good weights",
          consecutive_bad_);
    return kExitNonFinite;
  }
  reload_best_weights();
  export_features(files::join(config_.run.dir, "features.h5"));
  budget_.end_of(JobBudget::kWrapUp, program_seconds());
  if (lead()) {  // the job time line last: launch/run.sh takes it for a job with every file
    metrics_.event("job_time", r_.state.step, budget_.summary());
    log_for_launcher(LogLevel::kInfo, budget_.summary());
  }
  return kExitOk;
}

StopReason run_until_stop(Loop& loop) {
  StopReason reason = StopReason::kNone;
  while ((reason = loop.stop_check()) == StopReason::kNone) {
    if ((reason = loop.step()) != StopReason::kNone) break;
    if (loop.epoch_ended() && (reason = loop.end_epoch()) != StopReason::kNone) break;
  }
  return reason;
}

}  // namespace sx::train

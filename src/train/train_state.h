// The training state a checkpoint carries and rank 0 broadcasts on resume. Its fields are kept
// in one list, SX_TRAIN_STATE_FIELDS, that declares the members and drives the checkpoint
// writer, reader and checksum (train/checkpoint.cpp) and the broadcast (broadcast_state): a
// field added to the list reaches all of them, and one left out of the list does not exist.
#pragma once

#include <cstdint>
#include <string>

#include "train/stopping.h"

namespace sx::train {

// X(type, name, initial value, first checkpoint format holding it). A file of an older format
// leaves the newer fields at their initial value. Append new fields at the end: the checksum of
// formats 1 and 2 covers the first eleven in this order. Types: int64_t, double, std::string.
#define SX_TRAIN_STATE_FIELDS(X)                                                                   \
  X(int64_t, step, 0, 1)           /* global optimizer steps taken (skipped ones included) */      \
  X(int64_t, epoch, 0, 1)          /* epochs completed */                                          \
  X(int64_t, pairs_consumed, 0, 1) /* position in the global pair sequence */                      \
  X(int64_t, adam_iterations, 0, 1)                                                                \
  X(double, best_val_loss, 0, 1) /* +inf before the first validation */                            \
  X(int64_t, epochs_without_improvement, 0, 1)                                                     \
  X(double, train_seconds, 0, 1)                                                                   \
  X(int64_t, bad_steps, 0, 1) /* non-finite steps skipped so far */                                \
  X(int64_t, world_size, 1, 1)                                                                     \
  X(std::string, config_hash, "", 1) /* of the configuration keys that change results */           \
  X(double, lr_step_size, 0, 1)                                                                    \
  X(std::string, inputs, "", 3)  /* identities of the data, tokenizer and model files */           \
  X(std::string, lineage, "", 3) /* id of the fresh run this one continues (pruning's owner) */    \
  X(int64_t, accumulation_steps, 1, 3) /* of the run that wrote it (with world_size: its batch) */ \
  /* the schedule in pairs (PairPlan, stopping.h); all 0 from formats 1 and 2 */                   \
  X(int64_t, plan_global_batch, 0, 3)                                                              \
  X(int64_t, pairs_per_epoch, 0, 3)                                                                \
  X(int64_t, max_epochs, 0, 3)                                                                     \
  X(double, lr_step_pairs, 0, 3)                                                                   \
  X(int64_t, lr_pairs, 0, 3) /* pairs of the updates applied so far: the rate's position */        \
  /* the epoch's training loss so far (a resume mid-epoch continues its mean) */                   \
  X(double, epoch_loss_sum, 0, 5)                                                                  \
  X(int64_t, epoch_loss_steps, 0, 5)                                                               \
  X(int64_t, best_step, 0, 5) /* the step whose weights best.h5 holds (0: none or unknown) */      \
  /* config_hash of exact numbers (2), or of 6 significant digits (1: files before format 6) */    \
  X(int64_t, config_hash_form, 1, 6)

struct TrainState {
#define SX_DECLARE_STATE_FIELD(type, name, initial, since) type name = initial;
  SX_TRAIN_STATE_FIELDS(SX_DECLARE_STATE_FIELD)
#undef SX_DECLARE_STATE_FIELD

  // The schedule in pairs, as its four fields above (empty from formats 1 and 2).
  PairPlan plan() const {
    return {plan_global_batch, pairs_per_epoch, max_epochs, lr_step_pairs};
  }
  void set_plan(const PairPlan& p) {
    plan_global_batch = p.global_batch;
    pairs_per_epoch = p.pairs_per_epoch;
    max_epochs = p.max_epochs;
    lr_step_pairs = p.lr_step_pairs;
  }
};

// Calls f(name, member, since) for every field of `state` (a TrainState or a const one), in the
// list's order; `since` is the first checkpoint format that holds the field.
template <class State, class F>
void for_each_field(State& state, F&& f) {
#define SX_VISIT_STATE_FIELD(type, name, initial, since) f(#name, state.name, since);
  SX_TRAIN_STATE_FIELDS(SX_VISIT_STATE_FIELD)
#undef SX_VISIT_STATE_FIELD
}

// Rank `root`'s state on every rank (every rank must call it): the integers (exactly, not
// through doubles), the doubles and each text.
void broadcast_state(TrainState& state, int root);

}  // namespace sx::train

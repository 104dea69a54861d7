// One rank's training set-up, everything before the loop (train/loop.h):
//
//   build_trainee     the encoder on this rank's device with its flat buffers and Keras Adam,
//                     the platform rules of training applied (core/config_rules.h); no
//                     collective. `bench train` builds its replica with it too.
//   connect_trainee   the collective part: communicator, CUDA graphs, the gradient reducer
//                     (only with several ranks), rank 0's parameters on every rank.
//   set_up_replica    what train adds: run.dir, data, pairs, tokenizer, the checkpoint to
//                     resume from, in phases every rank ends before all agree how all did;
//   connect_replica   then the node-shared data, the token stores, the connected trainee and
//                     the resumed state on every rank, and the schedule in pairs.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/run_dir_lock.h"
#include "data/corpus.h"
#include "data/datasets.h"
#include "data/pairs.h"
#include "data/token_store.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "model/xlmr.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/step.h"
#include "train/train_state.h"
#include "train/trainer.h"

namespace sx::data {
class NodeMemory;
}

namespace sx::train {

// `encoder` (model.device, this rank's local rank) as a trainee in training mode, with its
// flat buffers, Keras Adam and, where train.cuda_graphs can run, its CUDA graphs (a warning on
// rank 0 says why not where they cannot). A combination this platform cannot run is a
// UserError. No collective.
Trainee build_trainee(const Config& config, const dist::MpiEnv& env, model::SiameseEncoder encoder);

// The collective part: the communicator, the reducer when there are several ranks, rank 0's
// parameters on every rank. Every rank calls it, once build_trainee succeeded on every rank.
void connect_trainee(Trainee& t, const Config& config, const dist::MpiEnv& env);

// Everything one rank holds for training.
struct Replica {
  std::unique_ptr<RunDirLock> run_dir_lock;  // rank 0: run.dir is this run's while it lives
  data::Datasets datasets;
  data::CorpusSplit split;
  data::PairList train_pairs, val_pairs;
  std::unique_ptr<data::XlmrTokenizer> tokenizer;
  std::unique_ptr<data::NodeMemory> node_memory;  // what the ranks of this node share
  std::unique_ptr<data::TokenStore> train_tokens, val_tokens;
  Trainee trainee;
  TrainState state;
  std::string model_description;
  std::string resumed_from;  // the checkpoint this run continues, or "" (a fresh start)
  int64_t global_batch = 0;  // pairs per optimizer step: ranks x train.pairs_per_rank x A

  Replica();
  ~Replica();
};

// The local phases (rank 0's run directory, then every rank's data, model and optimizer, and
// on rank 0 the checkpoint to resume from, read into `checkpoint`), each ended by every rank
// before all learn how all did (dist::agree). Returns 0, or the exit code every rank returns.
int set_up_replica(const Config& config, const dist::MpiEnv& env, const TrainOptions& options,
                   Replica& r, Checkpoint& checkpoint);

// The collective phase; then the resumed state and the schedule are the same on every rank.
void connect_replica(const Config& config, const dist::MpiEnv& env, Replica& r,
                     const Checkpoint& checkpoint);

}  // namespace sx::train

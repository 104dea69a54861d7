// The cross-lingual score of an epoch (train.epoch_auc): the multilingual labeled set, the
// one `export` writes and `evaluate` scores, embedded with the current weights and scored by
// evaluate's centroid ROC-AUC per held-out language. Cheap next to an epoch: forward passes
// only, over a set the size of the Jigsaw validation file.
#pragma once

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "model/xlmr.h"
#include "train/metrics.h"

namespace sx::train {

// Call on every rank: each embeds its contiguous share (eval mode, no gradients, no random
// numbers drawn; the model is back in training mode after), rank 0 gathers the rows and
// scores them. Only rank 0's result is filled (the others get an empty one).
CentroidAuc epoch_centroid_auc(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                               const data::LabeledCorpus& labeled, size_t batch_size,
                               const dist::MpiEnv& env);

// "0.7123 (de 0.70, es 0.72, ...)" for the epoch's log line.
std::string auc_text(const CentroidAuc& auc);

}  // namespace sx::train

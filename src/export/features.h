// Feature export for the final classifier, as the notebook's generate_featured_data: the
// embeddings of the multilingual labeled set (other languages plus the English share) and of
// the test set, per language, with cross-validation folds by language. Every rank embeds a
// share of the texts; rank 0 gathers them and writes one HDF5 file (layout: docs/formats.md).
#pragma once

#include <string>

#include "core/config.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "model/xlmr.h"

namespace sx::exporting {

struct ExportInputs {
  const data::LabeledCorpus* multilingual = nullptr;  // split.multilingual
  const data::TestCorpus* test = nullptr;             // may be null
  std::string model_description;                      // stored as an attribute
};

// The checkpoint a model description names ("weights of PATH", as export and training write
// it), or "" for weights of no checkpoint (pretrained ones, a run's last weights).
std::string weights_file_of(const std::string& model_description);

// How the checkpoint file at `path` relates to the weights that features (or an evaluation of
// them) came from, given their "model" description and recorded XXH3 ("" when not recorded).
struct WeightsMatch {
  // kSame: the recorded content, wherever the file lies now (without a record: the same file);
  // kChanged: the file the description names, with other content since (a run continued);
  // kOther: other weights; kUnknown: the file could not be read, so no verdict.
  enum Kind { kSame, kChanged, kOther, kUnknown } kind = kUnknown;
  std::string now_xxh3;  // the file's XXH3, where it was read
};
WeightsMatch match_weights(const std::string& model, const std::string& recorded_xxh3,
                           const std::string& path);

// Writes `path` on rank 0 (temporary file + rename). Must be called on every rank.
void export_features(const Config& config, const dist::MpiEnv& env, model::SiameseEncoder& model,
                     const data::XlmrTokenizer& tokenizer, const ExportInputs& inputs,
                     const std::string& path);

// Embeddings of every text [n x hidden] on rank 0 (others get {}): each rank embeds its
// contiguous share of the rows, rank 0 gathers them in order. Every rank must call it.
std::vector<float> embed_distributed(model::SiameseEncoder& model,
                                     const data::XlmrTokenizer& tokenizer,
                                     const std::vector<std::string_view>& texts, size_t batch_size,
                                     const dist::MpiEnv& env, const std::string& label);

}  // namespace sx::exporting

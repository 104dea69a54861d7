// What `embed` and `predict` share: the weights they embed with and how they read texts.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "core/config.h"
#include "model/xlmr.h"
#include "train/train_state.h"

namespace sx::app {

// The run's trained weights: best.h5, else its newest step checkpoint, else "".
std::string run_checkpoint(const std::string& run_dir);

struct InferenceEncoder {
  model::SiameseEncoder encoder{nullptr};
  std::string weights;  // where the weights came from, as logged
};

// The encoder on its device in eval mode. Weights: --checkpoint; else the run's (see
// run_checkpoint) unless --pretrained; else model.pretrained; a random initialisation
// (model.config alone) is a UserError unless allow_random. Logs the weights (info, rank 0),
// and warns on rank 0 when run.dir has no checkpoint and model.pretrained's are used.
InferenceEncoder load_inference_encoder(const Config& config, const WeightsChoice& choice, int rank,
                                        int local_rank);

// The settings that make embeddings from trained weights (tokenizer.max_len, keep_eos and
// pretokenize, model.pool_ln_eps, and the tokenizer.model file by its content) where they
// differ from those of the training that wrote the checkpoint at `path` (of state `then`; see
// train::config_changes_since, train::tokenizer_change): "tokenizer.max_len: 128 then, 64 now;
// tokenizer.model differs: ...", or "" (the same, or not known).
std::string embedding_settings_changed(const Config& config, const std::string& path,
                                       const train::TrainState& then);

// A text as the Jigsaw loaders read one: invalid UTF-8 dropped, then Python's str.strip().
std::string clean_text(std::string line);
// Every line of `in` (a final '\r' dropped), cleaned.
std::vector<std::string> read_lines(std::istream& in);

// A file the command will write at `path` (given by option `key`): not a directory, in a
// directory that exists; else a UserError, before any work is done (write_atomically would
// fail only at its end, naming its temporary file).
void check_output_file(const std::string& key, const std::string& path);

// `command` (predict, export-hf) runs as one process: under `mpirun -np 2` each rank ran it
// whole, one wrote, the other failed on the lock or the output. A UserError when a launcher
// started several (OMPI_COMM_WORLD_SIZE, PMI_SIZE).
void refuse_several_processes(const std::string& command);

}  // namespace sx::app

#include "app/inference.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "core/error.h"
#include "core/files.h"
#include "data/text.h"
#include "export/embedding_settings.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/run_inputs.h"

namespace sx::app {

std::string run_checkpoint(const std::string& run_dir) {
  const std::string best = train::best_checkpoint_path(run_dir);
  if (files::exists(best)) return best;
  auto steps = train::list_step_checkpoints(run_dir);
  return steps.empty() ? "" : steps.front();
}

namespace {

// The checkpoint to load over the configured model, or "" for the model's own weights.
std::string checkpoint_to_load(const Config& config, const WeightsChoice& choice, bool lead) {
  if (!choice.checkpoint.empty()) {
    if (!files::exists(choice.checkpoint))
      throw UserError("--checkpoint: file not found: " + choice.checkpoint);
    return choice.checkpoint;
  }
  if (choice.pretrained) {
    if (config.model.pretrained.empty())
      throw UserError("--pretrained: model.pretrained is empty; name an HF model directory");
    return "";
  }
  const std::string trained = run_checkpoint(config.run.dir);
  if (!trained.empty()) return trained;
  if (config.model.pretrained.empty() && !choice.allow_random)
    throw UserError("no trained weights: run.dir " + config.run.dir +
                    " has no checkpoint and model.pretrained is empty, so the encoder would be "
                    "model.config's random initialisation; train first, pass --checkpoint PATH, "
                    "set model.pretrained, or pass --allow-random");
  // After `train --force` moved the run aside, this was an info line only.
  if (lead && !config.model.pretrained.empty())
    spdlog::warn(
        "run.dir {} has no checkpoint: using model.pretrained's weights ({}), not "
        "fine-tuned ones (--pretrained says this is meant)",
        config.run.dir, config.model.pretrained);
  return "";
}

}  // namespace

std::string embedding_settings_changed(const Config& config, const std::string& path,
                                       const train::TrainState& then) {
  std::string out;
  for (const std::string& change : train::config_changes_since(path, then, config))
    for (const std::string& key : exporting::embedding_setting_keys())
      if (change.rfind(key + ":", 0) == 0) out += (out.empty() ? "" : "; ") + change;
  // Another file's ids are other tokens for every row; its path alone changing is no change.
  if (const std::string tokenizer = train::tokenizer_change(then.inputs, config);
      !tokenizer.empty())
    out += (out.empty() ? "" : "; ") + tokenizer;
  return out;
}

InferenceEncoder load_inference_encoder(const Config& config, const WeightsChoice& choice, int rank,
                                        int local_rank) {
  const std::string checkpoint = checkpoint_to_load(config, choice, rank == 0);
  model::BuiltEncoder built = model::build_encoder(config);
  InferenceEncoder out{built.encoder, built.description};
  if (!checkpoint.empty()) {
    const train::Checkpoint read = train::read_checkpoint(checkpoint, false);
    model::load_state(*built.encoder, read.params, "checkpoint " + checkpoint);
    out.weights = "checkpoint " + checkpoint;
    const std::string changed = embedding_settings_changed(config, checkpoint, read.state);
    if (rank == 0 && !changed.empty())
      spdlog::warn(
          "the settings that make embeddings differ from the training of {} ({}): the "
          "embeddings are not those it was trained and validated with",
          checkpoint, changed);
  }
  spdlog::info("weights: {}", out.weights);
  model::place_encoder(out.encoder, config, local_rank);
  out.encoder->eval();
  return out;
}

std::string clean_text(std::string line) {
  data::sanitize_utf8(line);
  return std::string(data::strip_python(line));
}

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(clean_text(std::move(line)));
  }
  return lines;
}

void refuse_several_processes(const std::string& command) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* value = std::getenv(name);
    if (value && std::atoi(value) > 1)
      throw UserError(command + " runs as one process, found " + name + "=" + value +
                      ": run it without mpirun (train, export, embed and bench are the commands "
                      "that spread over ranks)");
  }
}

void check_output_file(const std::string& key, const std::string& path) {
  if (files::is_directory(path))
    throw UserError(key + " " + path + " is a directory, expected a file to write");
  const std::string dir = files::parent(path).empty() ? "." : files::parent(path);
  if (!files::is_directory(dir))
    throw UserError(key + " " + path + ": the directory " + dir + " does not exist");
}

}  // namespace sx::app

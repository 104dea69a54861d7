// embed and version: the model layer from the command line.
#include <mpi.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "data/datasets.h"
#include "data/text.h"
#include "data/tokenizer.h"
#include "export/features.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "train/checkpoint.h"

namespace sx::app {

int cmd_embed(const ConfigArgs& args, const std::string& checkpoint) {
  Config config = load_config(args.config_path, args.overrides);
  check_inputs(config, {"tokenizer", "model"});
  init_logging({0, 1, "warn", "warn", ""});  // stdout carries the embeddings
  data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  model::BuiltEncoder built = model::build_encoder(config);
  if (!checkpoint.empty())  // a training checkpoint's weights over the configured model
    model::load_state(*built.encoder, train::read_checkpoint(checkpoint, false).params,
                      "checkpoint " + checkpoint);
  torch::Device device = model::resolve_device(config.model.device, 0);
  model::SiameseEncoder encoder = built.encoder;
  encoder->to(device);
  encoder->set_compute(model::compute_options(config, device));

  // Streams: each batch of export.batch_size lines is embedded and printed before reading on.
  const size_t batch_size = static_cast<size_t>(config.export_.batch_size);
  const int64_t hidden = encoder->config().hidden_size;
  std::vector<std::string> texts;
  auto flush = [&] {
    if (texts.empty()) return;
    std::vector<float> e =
        exporting::embed_texts(encoder, tokenizer, texts, 0, texts.size(), batch_size,
                               /*progress=*/false, "embed");
    std::string line;
    char buf[32];
    for (size_t r = 0; r < texts.size(); ++r) {
      line.clear();
      for (int64_t j = 0; j < hidden; ++j) {
        std::snprintf(buf, sizeof buf, j ? " %.9g" : "%.9g",
                      static_cast<double>(e[r * hidden + j]));
        line += buf;
      }
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
    texts.clear();
  };
  std::string text;
  while (std::getline(std::cin, text)) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    data::sanitize_utf8(text);
    texts.push_back(text);
    if (texts.size() == batch_size) flush();
  }
  flush();
  return 0;
}

std::string program_version() {
  return std::string("siamese-xlmr ") + SX_VERSION + ", libtorch " + TORCH_VERSION;
}

int cmd_version() {
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(mpi_version, &length);
  std::string mpi(mpi_version, static_cast<size_t>(length));
  if (auto nl = mpi.find('\n'); nl != std::string::npos) mpi.resize(nl);
  std::printf("siamese-xlmr %s\nlibtorch %s (CUDA %s, sdpa %s)\nMPI %s\n", SX_VERSION,
              TORCH_VERSION, torch::cuda::is_available() ? "available" : "not available",
              model::sdpa_available() ? "yes" : "no", mpi.c_str());
  return 0;
}

}  // namespace sx::app

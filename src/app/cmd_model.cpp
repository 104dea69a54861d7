// embed and version: the model layer from the command line.
#include <mpi.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include "app/commands.h"
#include "app/inference.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "data/datasets.h"
#include "data/jigsaw.h"
#include "data/text.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "encode/encode_texts.h"
#include "export/embedding_settings.h"
#include "export/features.h"
#include "io/hdf5.h"
#include "io/npy.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "train/checkpoint.h"

namespace sx::app {

namespace {

// Rows of floats as text, one row a line (embed's stdout format).
void print_rows(const std::vector<float>& e, size_t rows, int64_t hidden) {
  std::string line;
  char buf[32];
  for (size_t r = 0; r < rows; ++r) {
    line.clear();
    for (int64_t j = 0; j < hidden; ++j) {
      std::snprintf(buf, sizeof buf, j ? " %.9g" : "%.9g", static_cast<double>(e[r * hidden + j]));
      line += buf;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
}

// One process, stdin to stdout: each batch of export.batch_size lines is embedded and printed
// before reading on (today's `embed`, so a pipe sees results as they come).
void stream_stdin(model::SiameseEncoder& encoder, const data::XlmrTokenizer& tokenizer,
                  size_t batch_size) {
  const int64_t hidden = encoder->config().hidden_size;
  std::vector<std::string> texts;
  auto flush = [&] {
    if (texts.empty()) return;
    print_rows(encode::encode_texts(encoder, tokenizer, texts, 0, texts.size(), batch_size,
                                    /*progress=*/false, "embed"),
               texts.size(), hidden);
    texts.clear();
  };
  std::string text;
  while (std::getline(std::cin, text)) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    texts.push_back(clean_text(std::move(text)));
    if (texts.size() == batch_size) flush();
  }
  flush();
}

enum class OutFormat { kText, kHdf5, kNpy };

OutFormat out_format(const std::string& out) {
  auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return out.size() > s.size() && out.compare(out.size() - s.size(), s.size(), s) == 0;
  };
  if (out.empty() || out == "-") return OutFormat::kText;
  if (ends_with(".h5") || ends_with(".hdf5")) return OutFormat::kHdf5;
  if (ends_with(".npy")) return OutFormat::kNpy;
  throw UserError("--out " + out + ": expected a file ending in .h5, .hdf5 or .npy, or - (text)");
}

// The CSV's texts to embed, on every rank (every rank maps the file).
data::TextTable read_csv_texts(const Config& config, const EmbedArgs& a, int rank) {
  data::LoadOptions options;
  options.key = "--csv";
  options.bad_rows = config.data.bad_rows;
  options.progress = rank == 0;
  options.progress_interval = config.run.progress_interval;
  data::LoadReport report;
  data::TextTable table =
      data::load_text_csv(a.csv, {a.text_column, a.id_column}, options, &report);
  if (rank == 0) report.log();
  return table;
}

// Stdin's lines (`all`, read by rank 0) on every rank.
data::TextTable share_stdin_texts(std::string all) {
  dist::broadcast(all, 0, "broadcast of the texts from stdin");
  data::TextTable table;
  size_t row = 0;
  for (size_t start = 0; start < all.size(); ++row) {
    const size_t nl = all.find('\n', start);
    table.texts.push_back(std::string_view(all).substr(start, nl - start));
    table.rows.push_back(static_cast<int64_t>(row));
    start = nl + 1;
  }
  return table;
}

void write_embeddings(const Config& config, const EmbedArgs& a, const data::TextTable& table,
                      const std::vector<float>& e, int64_t hidden, const std::string& weights) {
  const OutFormat format = out_format(a.out);
  if (format == OutFormat::kText) return print_rows(e, table.size(), hidden);
  // Without --force, an --out that another process wrote meanwhile is left as it is.
  const auto replace =
      a.force ? files::FileSet::Replace::kAllowed : files::FileSet::Replace::kRefuse;
  files::write_atomically(
      a.out,
      [&](const std::string& tmp) {
        if (format == OutFormat::kNpy)
          return io::write_npy(tmp, e.data(), table.size(), static_cast<uint64_t>(hidden));
        io::H5File f = io::H5File::create(tmp);
        f.set_attr("format", std::string("siamese-xlmr embeddings 1"));
        f.set_attr("hidden_size", hidden);
        f.set_attr("model", weights);
        f.set_attr("source", a.csv.empty() ? std::string("stdin") : a.csv);
        f.set_attr("config_hash", config_result_hash(config));
        exporting::write_embedding_settings(f, exporting::embedding_settings_of(config));
        f.write("embeddings", e.data(), {table.size(), static_cast<uint64_t>(hidden)});
        f.write("rows", table.rows.data(), {table.rows.size()});
        if (!a.id_column.empty()) f.write_strings("ids", table.ids);
        f.flush();
        f.close();
      },
      replace);
  spdlog::info("written: {} ({} rows x {})", a.out, table.size(), hidden);
}

void check_embed_args(const EmbedArgs& a, int rank) {
  if (!a.csv.empty() && a.text_column.empty())
    throw UserError("--csv " + a.csv + ": name the column to embed with --text-column");
  if (a.csv.empty() && (!a.text_column.empty() || !a.id_column.empty()))
    throw UserError("--text-column and --id-column read a CSV file: give it with --csv");
  // The ids were dropped silently; refusing would break scripts that work, so it is said.
  if (!a.id_column.empty() && out_format(a.out) != OutFormat::kHdf5 && rank == 0)
    spdlog::warn(
        "--id-column: only an HDF5 --out (FILE.h5, FILE.hdf5) keeps the ids; {} has "
        "no place for them",
        a.out.empty() || a.out == "-" ? std::string("text on stdout") : a.out);
  if (out_format(a.out) == OutFormat::kText) return;
  // Rank 0 writes the file (its directory may be local to its node).
  if (rank == 0) check_output_file("--out", a.out);
  if (files::exists(a.out) && !a.force)
    throw UserError("--out " + a.out + " exists; pass --force to overwrite it");
}

}  // namespace

int cmd_embed(const ConfigArgs& args, const EmbedArgs& a) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;
  if (const int code = load_job_config(args, {"tokenizer", "model"}, env, config); code != kExitOk)
    return code;
  // stderr carries the log (the weights used, at info); stdout only the embeddings.
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  std::optional<data::XlmrTokenizer> tokenizer;
  InferenceEncoder loaded;
  if (const int code = set_up_phase(
          env, "the set-up of embed",
          [&] {
            check_embed_args(a, env.rank);
            tokenizer.emplace(data::tokenizer_options(config));
            loaded = load_inference_encoder(config, a.weights, env.rank, env.local_rank);
            model::check_tokenizer_fits(config, loaded.encoder->config(), tokenizer->vocab_size());
          });
      code != kExitOk)
    return code;
  const size_t batch_size = static_cast<size_t>(config.export_.batch_size);
  if (env.world == 1 && a.csv.empty() && a.out.empty()) {
    stream_stdin(loaded.encoder, *tokenizer, batch_size);
    return 0;
  }
  data::TextTable table;
  std::string stdin_text;  // rank 0's
  if (const int code = set_up_phase(env, "reading the texts",
                                    [&] {
                                      if (!a.csv.empty())
                                        table = read_csv_texts(config, a, env.rank);
                                      else if (env.rank == 0)
                                        for (const auto& line : read_lines(std::cin))
                                          stdin_text += line + '\n';
                                    });
      code != kExitOk)
    return code;
  if (a.csv.empty()) table = share_stdin_texts(std::move(stdin_text));
  try {
    std::vector<float> e =
        exporting::embed_distributed(loaded.encoder, *tokenizer, table.texts.views(), batch_size,
                                     env, "embedding " + std::to_string(table.size()) + " texts");
    if (env.rank == 0)
      write_embeddings(config, a, table, e, loaded.encoder->config().hidden_size, loaded.weights);
  } catch (const std::exception& e) {
    if (env.world == 1) throw;
    dist::abort_job_for(e, env.rank);
  }
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

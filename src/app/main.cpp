// siamese-xlmr: one binary, one subcommand per stage of the pipeline.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include <unistd.h>

#include "app/commands.h"
#include "core/error.h"
#include "core/program_clock.h"
#include "train/signals.h"

namespace {

using sx::app::ConfigArgs;

// --config FILE plus trailing dotted.key=value overrides, as every stage takes them.
void add_config_args(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("--config,-c", args.config_path, "YAML configuration file");
  cmd->add_option("overrides", args.overrides,
                  "dotted.key=value overrides applied after the file (Hydra style)");
}

// Which weights embed and predict --texts embed with (app/inference.h).
void add_weights_args(CLI::App* cmd, sx::app::WeightsChoice& weights) {
  auto* checkpoint = cmd->add_option("--checkpoint", weights.checkpoint,
                                     "checkpoint to load (default: best.h5 in run.dir, else its "
                                     "newest step checkpoint, else model.pretrained)");
  cmd->add_flag("--pretrained", weights.pretrained,
                "the weights of model.pretrained even when run.dir has checkpoints")
      ->excludes(checkpoint);
  cmd->add_flag("--allow-random", weights.allow_random,
                "accept model.config's random initialisation when there are no trained weights");
}

// An empty --out named the current directory (export-hf replaced files there; data synth
// wrote its CSVs there).
const CLI::Validator kNotEmpty(
    [](const std::string& value) {
      return value.empty() ? std::string("expected a path, found an empty value") : std::string();
    },
    "PATH");

// "unknown command 'X'; expected one of ..." when the first word after the deepest command
// given is no option and no subcommand of it; "" otherwise.
std::string unknown_subcommand(const CLI::App& app, int argc, char** argv) {
  const CLI::App* at = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') return "";
    const auto subs = at->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return "";
    const auto found = std::find_if(subs.begin(), subs.end(),
                                    [&](const CLI::App* s) { return s->get_name() == word; });
    if (found == subs.end()) {
      std::string names;
      for (const CLI::App* s : subs) names += (names.empty() ? "" : ", ") + s->get_name();
      const std::string parent = at == &app ? "" : at->get_name() + " ";
      return "unknown command '" + parent + word + "'; expected one of " + names;
    }
    at = *found;
  }
  return "";
}

// Whether closing a duplicate of `stream`'s descriptor succeeds (a closed or bad descriptor
// counts as success: nothing was written through it).
bool close_reports_no_error(std::FILE* stream) {
  const int fd = ::dup(::fileno(stream));
  if (fd < 0) return true;
  return ::close(fd) == 0 || errno == EINTR;
}

// `train` takes a stop signal as a request from its first instant: a function of the ELF
// .preinit_array runs before the shared libraries' initializers, which take about half a second
// (libtorch's registrations), and a SIGUSR1 or SIGTERM then ended the process instead of
// stopping it with a checkpoint. (The dynamic loader's own few milliseconds stay before it.)
// Other commands keep the default actions.
void install_train_stop_handlers_first(int argc, char** argv, char**) {
  if (argc > 1 && std::strcmp(argv[1], "train") == 0) sx::train::install_stop_handlers();
}
__attribute__((section(".preinit_array"), used)) void (*const preinit_stop_handlers)(
    int, char**, char**) = &install_train_stop_handlers_first;

}  // namespace

int main(int argc, char** argv) {
  sx::mark_program_start();  // run.max_duration counts from here
  CLI::App app{
      "siamese-xlmr: distributed Siamese XLM-RoBERTa fine-tuning for cross-lingual "
      "toxic-comment classification"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");

  std::function<int()> action;
  ConfigArgs cfg;

  auto* train = app.add_subcommand("train", "Train the Siamese model (MPI ranks, one per GPU)");
  std::string resume;
  add_config_args(train, cfg);
  train->add_option("--resume", resume, "auto (newest valid checkpoint in run.dir) or a PATH");
  bool train_force = false;
  train->add_flag("--force", train_force,
                  "start afresh in a run.dir holding an earlier run: move its files into "
                  "run.dir/previous-<time>/");
  train->callback([&] { action = [&] { return sx::app::cmd_train(cfg, resume, train_force); }; });

  auto* exp = app.add_subcommand("export", "Export embeddings of the labeled and test sets (HDF5)");
  std::string checkpoint;
  add_config_args(exp, cfg);
  exp->add_option("--checkpoint", checkpoint,
                  "checkpoint to load (default: best.h5 in run.dir, else its newest step "
                  "checkpoint)");
  bool export_force = false;
  exp->add_flag("--force", export_force, "overwrite an existing run.dir/features.h5");
  exp->callback(
      [&] { action = [&] { return sx::app::cmd_export(cfg, checkpoint, export_force); }; });

  auto* export_hf = app.add_subcommand(
      "export-hf", "The trained encoder as an HF transformers / sentence-transformers directory");
  sx::app::HfExportArgs hf_args;
  add_config_args(export_hf, cfg);
  export_hf->add_option("--checkpoint", hf_args.checkpoint,
                        "checkpoint to export (default: best.h5 in run.dir, else its newest step "
                        "checkpoint)");
  export_hf->add_option("--out", hf_args.out, "output directory")->required()->check(kNotEmpty);
  export_hf->add_option("--dtype", hf_args.dtype, "weights in model.safetensors")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  export_hf->add_flag("--force", hf_args.force, "overwrite the files of a non-empty --out");
  export_hf->callback([&] { action = [&] { return sx::app::cmd_export_hf(cfg, hf_args); }; });

  auto* evaluate = app.add_subcommand("evaluate", "Per-language ROC-AUC of exported features");
  std::vector<std::string> feature_files;
  std::string before_file;
  evaluate->add_option("features", feature_files, "features.h5 written by train or export")
      ->required();
  evaluate->add_option("--before", before_file,
                       "features of the untrained encoder (default: features_before.h5 beside it)");
  evaluate->callback(
      [&] { action = [&] { return sx::app::cmd_evaluate(feature_files, before_file); }; });

  auto* embed = app.add_subcommand(
      "embed", "Embed texts from stdin (one per line) or a CSV column; text, HDF5 or .npy out");
  sx::app::EmbedArgs embed_args;
  add_config_args(embed, cfg);
  add_weights_args(embed, embed_args.weights);
  embed->add_option("--csv", embed_args.csv, "CSV file to embed instead of stdin's lines");
  embed->add_option("--text-column", embed_args.text_column, "--csv: the column of texts");
  embed->add_option("--id-column", embed_args.id_column,
                    "--csv: a column of ids, kept beside the embeddings (HDF5 `ids`)");
  embed->add_option("--out", embed_args.out,
                    "FILE.h5, FILE.hdf5 or FILE.npy (by extension); - or none: text on stdout");
  embed->add_flag("--force", embed_args.force, "overwrite an existing --out file");
  embed->callback([&] { action = [&] { return sx::app::cmd_embed(cfg, embed_args); }; });

  auto* predict = app.add_subcommand(
      "predict", "Fit the final classifier on the run's features; submission.csv for the test set");
  sx::app::PredictArgs predict_args;
  add_config_args(predict, cfg);
  predict->add_option("--features", predict_args.features,
                      "features file to fit on (default: features.h5 in run.dir)");
  predict->add_option("--out", predict_args.out,
                      "submission file (default: submission.csv in run.dir)");
  predict->add_option("--texts", predict_args.texts,
                      "- (stdin) or FILE: one text a line; print p(toxic) of each, write nothing");
  predict->add_flag("--force", predict_args.force,
                    "overwrite an existing classifier.json and submission file");
  add_weights_args(predict, predict_args.weights);
  predict->callback([&] { action = [&] { return sx::app::cmd_predict(cfg, predict_args); }; });

  auto* tokenize = app.add_subcommand("tokenize", "Token ids of texts from stdin, one per line");
  add_config_args(tokenize, cfg);
  tokenize->callback([&] { action = [&] { return sx::app::cmd_tokenize(cfg); }; });

  auto* data = app.add_subcommand("data", "Inspect or synthesize Jigsaw-shaped data");
  data->require_subcommand(1);
  auto* stats = data->add_subcommand("stats", "Rows, languages, labels, lengths, split and pairs");
  add_config_args(stats, cfg);
  stats->callback([&] { action = [&] { return sx::app::cmd_data_stats(cfg); }; });
  auto* pairs = data->add_subcommand(
      "pairs", "Write the training or validation pair sequence the trainer consumes (CSV)");
  std::string pairs_split = "train", pairs_out;
  add_config_args(pairs, cfg);
  pairs->add_option("--split", pairs_split, "train or val")->check(CLI::IsMember({"train", "val"}));
  pairs->add_option("--out", pairs_out, "output CSV file (replaced if it exists), or - for stdout")
      ->required()
      ->check(kNotEmpty);
  pairs->callback(
      [&] { action = [&] { return sx::app::cmd_data_pairs(cfg, pairs_split, pairs_out); }; });
  auto* synth = data->add_subcommand("synth", "Write synthetic Jigsaw-shaped CSV files");
  std::string synth_out;
  long long synth_rows = 0, synth_seed = 42;
  synth->add_option("--out", synth_out, "output directory")->required()->check(kNotEmpty);
  synth
      ->add_option("--rows", synth_rows,
                   "rows of the English training file (the multilingual file gets max(20, N/100) "
                   "rows per language, Turkish 20% more; training needs 10 English rows for each "
                   "row of the largest language, so N >= 240)")
      ->required()
      ->check(CLI::Range(1LL, 100000000LL));
  // CLI11 clamps a value past long long to its maximum, which the range's end (one less) refuses
  // rather than seeding with a number the user did not give (NonNegativeNumber printed a
  // 300-digit bound).
  synth->add_option("--seed", synth_seed, "random seed")
      ->check(CLI::Range(0LL, std::numeric_limits<long long>::max() - 1));
  int synth_toxic_percent = 12;
  bool synth_force = false;
  synth->add_flag("--force", synth_force, "overwrite the CSV files already in --out");
  synth
      ->add_option("--toxic-percent", synth_toxic_percent,
                   "percentage of toxic English rows (Jigsaw's: about 8)")
      ->check(CLI::Range(0, 100));
  synth->callback([&] {
    action = [&] {
      return sx::app::cmd_data_synth(synth_out, synth_rows, synth_seed, synth_toxic_percent,
                                     synth_force);
    };
  });

  auto* bench = app.add_subcommand("bench", "Benchmarks (tools/ has the training and Python ones)");
  bench->require_subcommand(1);
  auto* bench_data =
      bench->add_subcommand("data", "CSV load and tokenization throughput on Jigsaw-sized data");
  sx::app::BenchDataArgs bench_args;
  bench_data->add_option("--tokenizer", bench_args.tokenizer, "sentencepiece model (XLM-R's)")
      ->required()
      ->check(CLI::ExistingFile);
  bench_data->add_option("--dir", bench_args.dir,
                         "where the benchmark's CSV files are (written if missing; default "
                         "runs/bench-data-text, or runs/bench-data with --synthetic)");
  bench_data
      ->add_option("--corpus", bench_args.corpus,
                   "the real texts (lang,text CSV) the files are written from, made by "
                   "tools/make_text_corpus.py")
      ->capture_default_str();
  bench_data->add_flag("--synthetic", bench_args.synthetic,
                       "write the synthesizer's texts instead (148 distinct words: every word "
                       "cache lookup hits)");
  bench_data
      ->add_option("--rows", bench_args.rows,
                   "rows to write (default: each corpus text once; 1,900,000 with "
                   "--synthetic)")
      ->check(CLI::Range(1LL, 100000000LL));
  bench_data->add_option("--compare", bench_args.compare,
                         "a python (with sentencepiece; tokenizers and transformers for the HF "
                         "ratio, e.g. .venv/bin/python) to run tools/bench_data_python.py with "
                         "after this program's measures; prints the ratios");
  bench_data
      ->add_option("--python-script", bench_args.python_script, "--compare: the Python benchmark")
      ->capture_default_str();
  bench_data->add_option("--texts", bench_args.texts, "texts to tokenize")
      ->check(CLI::Range(1LL, 100000000LL));
  bench_data->add_option("--threads", bench_args.threads, "CSV parsing and tokenizer threads")
      ->check(CLI::Range(1LL, 1024LL));
  bench_data
      ->add_option("--load-repeats", bench_args.load_repeats,
                   "times the CSV load is timed (here and in --compare's Python); the fastest "
                   "is reported, as timeit does")
      ->check(CLI::Range(1LL, 100LL))
      ->capture_default_str();
  bench_data->add_flag("--setup", bench_args.setup,
                       "time the data set-up of `train` phase by phase (load the three files, "
                       "split, pairs, tokenize the first epoch), with memory");
  bench_data->add_flag("--share", bench_args.share,
                       "retired (refused): token ids are no longer shared per node; see "
                       "docs/performance.md");
  bench_data->add_flag("--share-data", bench_args.share_data,
                       "--setup (run it under mpirun): the node's first rank loads, splits and "
                       "builds the pairs once into memory the node's ranks share, as `train` "
                       "does with data.share_node");
  bench_data->add_option("--pairs", bench_args.pairs, "--setup: training pairs (data.train_pairs)")
      ->check(CLI::Range(1LL, 100000000LL));
  bench_data->add_flag("--no-word-cache", bench_args.no_word_cache,
                       "tokenize without the word cache (for comparison)");
  bench_data->callback([&] { action = [&] { return sx::app::cmd_bench_data(bench_args); }; });
  auto* bench_checkpoint = bench->add_subcommand(
      "checkpoint", "Write and read an XLM-R-base-sized checkpoint; checksum cost");
  std::string bench_checkpoint_dir = "runs/bench-checkpoint";
  long long bench_checkpoint_params = 277454592;  // XLM-R base encoder + pooling LayerNorm
  bench_checkpoint->add_option("--dir", bench_checkpoint_dir, "where to write it (removed after)");
  bench_checkpoint->add_option("--params", bench_checkpoint_params, "parameters")
      ->check(CLI::Range(1LL, 4000000000LL));
  bench_checkpoint->callback([&] {
    action = [&] {
      return sx::app::cmd_bench_checkpoint(bench_checkpoint_dir, bench_checkpoint_params);
    };
  });
  sx::app::BenchTrainArgs bench_train_args;
  sx::app::add_bench_train(bench, bench_train_args, action);

  auto* config = app.add_subcommand("config", "Print the resolved configuration, or --docs");
  bool docs = false;
  add_config_args(config, cfg);
  auto* docs_flag = config->add_flag("--docs", docs, "print the reference of every key (Markdown)");
  std::string get_key;
  config->add_option("--get", get_key, "print only the value of this key (e.g. run.dir)")
      ->excludes(docs_flag);
  config->callback([&] { action = [&] { return sx::app::cmd_config(cfg, docs, get_key); }; });

  auto* version = app.add_subcommand("version", "Versions of siamese-xlmr and its libraries");
  version->callback([&] { action = [] { return sx::app::cmd_version(); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "A subcommand is required" for a mistyped one (`predcit`): name it and the choices.
    if (const std::string unknown = unknown_subcommand(app, argc, argv); !unknown.empty()) {
      std::fprintf(stderr, "siamese-xlmr: error: %s\n", unknown.c_str());
      return sx::kExitUserError;
    }
    app.exit(e);
    return sx::kExitUserError;
  }

  try {
    const int code = action();
    // Text on stdout (tokenize, embed, predict --texts, data pairs --out -) that did not all
    // reach its file, a full disk for instance, must not end as a success.
    // Closing a duplicate of its descriptor also reports what a file system says only at
    // close (NFS write-back, quota), with stdout itself left open for whatever prints later.
    errno = 0;
    if (std::fflush(stdout) != 0 || std::ferror(stdout) || !close_reports_no_error(stdout)) {
      const int error = errno;
      std::fprintf(stderr, "siamese-xlmr: error: writing to stdout failed%s%s\n", error ? ": " : "",
                   error ? std::strerror(error) : "");
      return code == 0 ? sx::kExitUserError : code;
    }
    return code;
  } catch (const sx::UserError& e) {
    std::fprintf(stderr, "siamese-xlmr: error: %s\n", e.what());
    return sx::kExitUserError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "siamese-xlmr: internal error: %s\n", e.what());
    return sx::kExitInternal;
  }
}

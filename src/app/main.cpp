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
#include <vector>

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

// Every command's arguments, bound to their options, and the action the parsed command chose.
struct TrainArgs {
  std::string resume;
  bool force = false;
};
struct ExportArgs {
  std::string checkpoint;
  bool force = false;
};
struct EvaluateArgs {
  std::vector<std::string> features;
  sx::app::EvaluateChoice choice;
};
struct DataPairsArgs {
  std::string split = "train", out;
};
struct DataSynthArgs {
  std::string out;
  long long rows = 0, seed = 42;
  int toxic_percent = 12;
  bool force = false;
};
struct BenchCheckpointArgs {
  std::string dir = "runs/bench-checkpoint";
  long long params = 277454592;  // XLM-R base encoder + pooling LayerNorm
};
struct ConfigCommandArgs {
  bool docs = false, check_inputs = false;
  std::string get_key;
};
struct CommandLine {
  ConfigArgs cfg;
  TrainArgs train;
  ExportArgs exp;
  sx::app::HfExportArgs hf;
  EvaluateArgs evaluate;
  sx::app::EmbedArgs embed;
  sx::app::PredictArgs predict;
  DataPairsArgs pairs;
  DataSynthArgs synth;
  sx::app::BenchDataArgs bench_data;
  BenchCheckpointArgs bench_checkpoint;
  sx::app::BenchTrainArgs bench_train;
  ConfigCommandArgs config;
  std::function<int()> action;
};

void add_train(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand("train", "Train the Siamese model (MPI ranks, one per GPU)");
  add_config_args(cmd, cl.cfg);
  cmd->add_option("--resume", cl.train.resume,
                  "auto (newest valid checkpoint in run.dir) or a PATH")
      ->check(kNotEmpty);
  cmd->add_flag("--force", cl.train.force,
                "start afresh in a run.dir holding an earlier run: move its files into "
                "run.dir/previous-<time>/");
  cmd->callback([&cl] {
    cl.action = [&cl] { return sx::app::cmd_train(cl.cfg, cl.train.resume, cl.train.force); };
  });
}

void add_export(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand("export", "Export embeddings of the labeled and test sets (HDF5)");
  add_config_args(cmd, cl.cfg);
  cmd->add_option("--checkpoint", cl.exp.checkpoint,
                  "checkpoint to load (default: best.h5 in run.dir, else its newest step "
                  "checkpoint)");
  cmd->add_flag("--force", cl.exp.force, "overwrite an existing run.dir/features.h5");
  cmd->callback([&cl] {
    cl.action = [&cl] { return sx::app::cmd_export(cl.cfg, cl.exp.checkpoint, cl.exp.force); };
  });
}

void add_export_hf(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand(
      "export-hf", "The trained encoder as an HF transformers / sentence-transformers directory");
  add_config_args(cmd, cl.cfg);
  cmd->add_option("--checkpoint", cl.hf.checkpoint,
                  "checkpoint to export (default: best.h5 in run.dir, else its newest step "
                  "checkpoint)");
  cmd->add_option("--out", cl.hf.out, "output directory")->required()->check(kNotEmpty);
  cmd->add_option("--dtype", cl.hf.dtype, "weights in model.safetensors")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_flag("--force", cl.hf.force, "overwrite the files of a non-empty --out");
  cmd->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_export_hf(cl.cfg, cl.hf); }; });
}

void add_evaluate(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand("evaluate", "Per-language ROC-AUC of exported features");
  cmd->add_option("features", cl.evaluate.features, "features.h5 written by train or export")
      ->required();
  auto* before =
      cmd->add_option("--before", cl.evaluate.choice.before,
                      "features of the untrained encoder (default: features_before.h5 beside it)");
  cmd->add_flag("--no-before", cl.evaluate.choice.no_before,
                "evaluate the features alone, whatever lies beside them")
      ->excludes(before);
  cmd->callback([&cl] {
    cl.action = [&cl] { return sx::app::cmd_evaluate(cl.evaluate.features, cl.evaluate.choice); };
  });
}

void add_embed(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand(
      "embed", "Embed texts from stdin (one per line) or a CSV column; text, HDF5 or .npy out");
  add_config_args(cmd, cl.cfg);
  add_weights_args(cmd, cl.embed.weights);
  cmd->add_option("--csv", cl.embed.csv, "CSV file to embed instead of stdin's lines");
  cmd->add_option("--text-column", cl.embed.text_column, "--csv: the column of texts");
  cmd->add_option("--id-column", cl.embed.id_column,
                  "--csv: a column of ids, kept beside the embeddings (HDF5 `ids`)");
  cmd->add_option("--out", cl.embed.out,
                  "FILE.h5, FILE.hdf5 or FILE.npy (by extension); - or none: text on stdout");
  cmd->add_flag("--force", cl.embed.force, "overwrite an existing --out file");
  cmd->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_embed(cl.cfg, cl.embed); }; });
}

void add_predict(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand(
      "predict", "Fit the final classifier on the run's features; submission.csv for the test set");
  add_config_args(cmd, cl.cfg);
  cmd->add_option("--features", cl.predict.features,
                  "features file to fit on (default: features.h5 in run.dir)");
  cmd->add_option("--out", cl.predict.out, "submission file (default: submission.csv in run.dir)");
  cmd->add_option("--texts", cl.predict.texts,
                  "- (stdin) or FILE: one text a line; print p(toxic) of each, write nothing");
  cmd->add_flag("--force", cl.predict.force,
                "overwrite an existing classifier.json and submission file");
  add_weights_args(cmd, cl.predict.weights);
  cmd->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_predict(cl.cfg, cl.predict); }; });
}

void add_tokenize(CLI::App& app, CommandLine& cl) {
  auto* cmd = app.add_subcommand("tokenize", "Token ids of texts from stdin, one per line");
  add_config_args(cmd, cl.cfg);
  cmd->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_tokenize(cl.cfg); }; });
}

void add_data_synth(CLI::App* data, CommandLine& cl) {
  DataSynthArgs& a = cl.synth;
  auto* cmd = data->add_subcommand("synth", "Write synthetic Jigsaw-shaped CSV files");
  cmd->add_option("--out", a.out, "output directory")->required()->check(kNotEmpty);
  cmd->add_option("--rows", a.rows,
                  "rows of the English training file (the multilingual file gets max(20, N/100) "
                  "rows per language, Turkish 20% more; training needs 10 English rows for each "
                  "row of the largest language, so N >= 240)")
      ->required()
      ->check(CLI::Range(1LL, 100000000LL));
  // CLI11 clamps a value past long long to its maximum, which the range's end (one less) refuses
  // rather than seeding with a number the user did not give (NonNegativeNumber printed a
  // 300-digit bound).
  cmd->add_option("--seed", a.seed, "random seed")
      ->check(CLI::Range(0LL, std::numeric_limits<long long>::max() - 1));
  cmd->add_flag("--force", a.force, "overwrite the CSV files already in --out");
  cmd->add_option("--toxic-percent", a.toxic_percent,
                  "percentage of toxic English rows (Jigsaw's: about 8)")
      ->check(CLI::Range(0, 100));
  cmd->callback([&cl] {
    cl.action = [&a = cl.synth] {
      return sx::app::cmd_data_synth(a.out, a.rows, a.seed, a.toxic_percent, a.force);
    };
  });
}

void add_data(CLI::App& app, CommandLine& cl) {
  auto* data = app.add_subcommand("data", "Inspect or synthesize Jigsaw-shaped data");
  data->require_subcommand(1);
  auto* stats = data->add_subcommand("stats", "Rows, languages, labels, lengths, split and pairs");
  add_config_args(stats, cl.cfg);
  stats->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_data_stats(cl.cfg); }; });
  auto* pairs = data->add_subcommand(
      "pairs", "Write the training or validation pair sequence the trainer consumes (CSV)");
  add_config_args(pairs, cl.cfg);
  pairs->add_option("--split", cl.pairs.split, "train or val")
      ->check(CLI::IsMember({"train", "val"}));
  pairs
      ->add_option("--out", cl.pairs.out,
                   "output CSV file (replaced if it exists), or - for stdout")
      ->required()
      ->check(kNotEmpty);
  pairs->callback([&cl] {
    cl.action = [&cl] { return sx::app::cmd_data_pairs(cl.cfg, cl.pairs.split, cl.pairs.out); };
  });
  add_data_synth(data, cl);
}

void add_bench_data_setup_options(CLI::App* cmd, sx::app::BenchDataArgs& a) {
  cmd->add_flag("--setup", a.setup,
                "time the data set-up of `train` phase by phase (load the three files, "
                "split, pairs, tokenize the first epoch), with memory");
  cmd->add_flag("--share", a.share,
                "retired (refused): token ids are no longer shared per node; see "
                "docs/performance.md");
  cmd->add_flag("--share-data", a.share_data,
                "--setup (run it under mpirun): the node's first rank loads, splits and "
                "builds the pairs once into memory the node's ranks share, as `train` "
                "does with data.share_node");
  cmd->add_option("--pairs", a.pairs, "--setup: training pairs (data.train_pairs)")
      ->check(CLI::Range(1LL, 100000000LL));
  cmd->add_flag("--no-word-cache", a.no_word_cache,
                "tokenize without the word cache (for comparison)");
}

void add_bench_data(CLI::App* bench, CommandLine& cl) {
  sx::app::BenchDataArgs& a = cl.bench_data;
  auto* cmd =
      bench->add_subcommand("data", "CSV load and tokenization throughput on Jigsaw-sized data");
  cmd->add_option("--tokenizer", a.tokenizer, "sentencepiece model (XLM-R's)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--dir", a.dir,
                  "where the benchmark's CSV files are (written if missing; default "
                  "runs/bench-data-text, or runs/bench-data with --synthetic)");
  cmd->add_option("--corpus", a.corpus,
                  "the real texts (lang,text CSV) the files are written from, made by "
                  "tools/make_text_corpus.py")
      ->capture_default_str();
  cmd->add_flag("--synthetic", a.synthetic,
                "write the synthesizer's texts instead (148 distinct words: every word "
                "cache lookup hits)");
  cmd->add_option("--rows", a.rows,
                  "rows to write (default: each corpus text once; 1,900,000 with "
                  "--synthetic)")
      ->check(CLI::Range(1LL, 100000000LL));
  cmd->add_option("--compare", a.compare,
                  "a python (with sentencepiece; tokenizers and transformers for the HF "
                  "ratio, e.g. .venv/bin/python) to run tools/bench_data_python.py with "
                  "after this program's measures; prints the ratios");
  cmd->add_option("--python-script", a.python_script, "--compare: the Python benchmark")
      ->capture_default_str();
  cmd->add_option("--texts", a.texts, "texts to tokenize")->check(CLI::Range(1LL, 100000000LL));
  cmd->add_option("--threads", a.threads, "CSV parsing and tokenizer threads")
      ->check(CLI::Range(1LL, 1024LL));
  cmd->add_option("--load-repeats", a.load_repeats,
                  "times the CSV load is timed (here and in --compare's Python); the fastest "
                  "is reported, as timeit does")
      ->check(CLI::Range(1LL, 100LL))
      ->capture_default_str();
  add_bench_data_setup_options(cmd, a);
  cmd->callback([&cl] { cl.action = [&cl] { return sx::app::cmd_bench_data(cl.bench_data); }; });
}

void add_bench(CLI::App& app, CommandLine& cl) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (tools/ has the training and Python ones)");
  bench->require_subcommand(1);
  add_bench_data(bench, cl);
  auto* checkpoint = bench->add_subcommand(
      "checkpoint", "Write and read an XLM-R-base-sized checkpoint; checksum cost");
  checkpoint->add_option("--dir", cl.bench_checkpoint.dir, "where to write it (removed after)");
  checkpoint->add_option("--params", cl.bench_checkpoint.params, "parameters")
      ->check(CLI::Range(1LL, 4000000000LL));
  checkpoint->callback([&cl] {
    cl.action = [&a = cl.bench_checkpoint] {
      return sx::app::cmd_bench_checkpoint(a.dir, a.params);
    };
  });
  sx::app::add_bench_train(bench, cl.bench_train, cl.action);
}

void add_config_and_version(CLI::App& app, CommandLine& cl) {
  auto* config = app.add_subcommand("config", "Print the resolved configuration, or --docs");
  add_config_args(config, cl.cfg);
  auto* docs_flag =
      config->add_flag("--docs", cl.config.docs, "print the reference of every key (Markdown)");
  config->add_option("--get", cl.config.get_key, "print only the value of this key (e.g. run.dir)")
      ->excludes(docs_flag);
  config
      ->add_flag("--check-inputs", cl.config.check_inputs,
                 "also check the files and folders it names for train: they exist, and their "
                 "starts (CSV headers, the model's config.json, the tokenizer against it) are "
                 "right (one line naming the key, exit 2, where not)")
      ->excludes(docs_flag);
  config->callback([&cl] {
    cl.action = [&cl] {
      return sx::app::cmd_config(cl.cfg, cl.config.docs, cl.config.get_key, cl.config.check_inputs);
    };
  });
  auto* version = app.add_subcommand("version", "Versions of siamese-xlmr and its libraries");
  version->callback([&cl] { cl.action = [] { return sx::app::cmd_version(); }; });
}

// Parses argv into `cl.action`; a return value other than -1 is the exit code (help, or a
// mistake on the command line).
int parse_command_line(CLI::App& app, int argc, char** argv) {
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
  return -1;
}

// Runs the chosen command: its exit code, with errors turned into one line each.
int run_action(const std::function<int()>& action) {
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
  } catch (const std::exception& e) {
    const sx::Failure failure = sx::failure_of(e);
    std::fprintf(stderr, "siamese-xlmr: %s: %s\n",
                 failure.code == sx::kExitInternal ? "internal error" : "error",
                 failure.text.c_str());
    return failure.code;
  }
}

}  // namespace

int main(int argc, char** argv) {
  sx::mark_program_start();  // run.max_duration counts from here
  CLI::App app{
      "siamese-xlmr: distributed Siamese XLM-RoBERTa fine-tuning for cross-lingual "
      "toxic-comment classification"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  CommandLine cl;
  add_train(app, cl);
  add_export(app, cl);
  add_export_hf(app, cl);
  add_evaluate(app, cl);
  add_embed(app, cl);
  add_predict(app, cl);
  add_tokenize(app, cl);
  add_data(app, cl);
  add_bench(app, cl);
  add_config_and_version(app, cl);
  if (const int code = parse_command_line(app, argc, argv); code != -1) return code;
  return run_action(cl.action);
}

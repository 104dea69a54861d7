// The CLI's subcommands. main.cpp parses the command line with CLI11 and calls one of
// these; each loads and validates the configuration sections it uses and returns an exit
// code. UserError escapes to main, which prints its one line.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "dist/mpi_env.h"

namespace CLI {
class App;
}

namespace sx::app {

// What every config-taking subcommand receives: --config FILE and dotted.key=value overrides.
struct ConfigArgs {
  std::string config_path;
  std::vector<std::string> overrides;
};

// For the MPI subcommands (train, export, bench train), before any work: every rank loads
// and checks the configuration, and all learn whether all could (a rank failing alone would
// leave the others waiting); then every rank compares what it will work on with rank 0's:
// the program version, every resolved key, and the input files and model that `sections`
// name (size and XXH3 of the first and last MiB, so copies on different nodes match).
// Returns 0, or the exit code every rank returns, rank 0 having printed each failing or
// differing rank's message once ("rank 1: config key train.lr_max differs from rank 0's ...").
// Sets the collective deadline (dist.collective_timeout) from the configuration.
int load_job_config(const ConfigArgs& args, const std::vector<std::string>& sections,
                    const dist::MpiEnv& env, Config& config);
// A set-up phase of an MPI subcommand (embed, export): alone, run as it is (a UserError escapes
// to main); under several ranks, agreed by every rank (dist::attempt, dist::agree), so that a
// mistake is one line from rank 0 and the same exit code everywhere, where each rank printed
// it and MPI_Abort its banner. Returns 0 or that code. `phase` must join no collective.
int set_up_phase(const dist::MpiEnv& env, const std::string& what,
                 const std::function<void()>& phase);
// "siamese-xlmr 1.2.0, libtorch 2.4.0": what ranks of one job must run alike.
std::string program_version();

// Prints the resolved configuration (YAML), the key reference (--docs), or one key's value.
// `check_inputs`: also the files and folders the configuration names for train (as train
// checks them before it starts, and train::check_input_starts), and run.dir is no file.
int cmd_config(const ConfigArgs& args, bool docs, const std::string& get_key, bool check_inputs);
int cmd_tokenize(const ConfigArgs& args);
int cmd_data_stats(const ConfigArgs& args);
// Writes the training (split "train") or validation ("val") pair sequence as CSV.
int cmd_data_pairs(const ConfigArgs& args, const std::string& split_name,
                   const std::string& out_path);
// Refuses to overwrite files in out_dir unless `force`.
int cmd_data_synth(const std::string& out_dir, long long rows, long long seed, int toxic_percent,
                   bool force);
// Which weights embed and predict --texts use (app/inference.h).
struct WeightsChoice {
  std::string checkpoint;     // --checkpoint PATH
  bool pretrained = false;    // --pretrained: model.pretrained even when the run has weights
  bool allow_random = false;  // --allow-random: accept model.config's random initialisation
};
// embed: texts from stdin or a CSV column, on every rank a share, to text/HDF5/.npy.
struct EmbedArgs {
  WeightsChoice weights;
  std::string csv, text_column, id_column;
  std::string out;  // "" or "-": text on stdout; else .h5/.hdf5/.npy by extension
  bool force = false;
};
int cmd_embed(const ConfigArgs& args, const EmbedArgs& embed);
// predict: the final classifier on the run's features and submission.csv, or with `texts`
// (a file or - for stdin) one probability per line.
struct PredictArgs {
  WeightsChoice weights;  // for --texts
  std::string features;   // "" = run.dir/features.h5
  std::string out;        // "" = run.dir/submission.csv
  std::string texts;
  bool force = false;
};
int cmd_predict(const ConfigArgs& args, const PredictArgs& predict);
int cmd_version();
// `force`: a fresh start into a used run.dir moves the earlier run's files aside.
int cmd_train(const ConfigArgs& args, const std::string& resume, bool force);

struct BenchDataArgs {
  std::string dir;  // "": runs/bench-data-text, or runs/bench-data with --synthetic
  std::string tokenizer;
  std::string corpus = "runs/text-corpus/texts.csv";  // tools/make_text_corpus.py's texts
  bool synthetic = false;  // the synthesizer's texts (148 distinct words) instead
  long long rows = 0;      // rows to write: 0 = each corpus text once / 1.9M synthesized
  std::string compare;     // a python to run tools/bench_data_python.py with; "" = none
  std::string python_script = "tools/bench_data_python.py";
  long long texts = 200000;
  long long threads = 2;
  long long load_repeats = 3;  // the CSV load is timed this many times, the fastest kept
  long long pairs = 500000;    // --setup: data.train_pairs
  bool setup = false;          // time the data set-up of `train` instead
  bool no_word_cache = false;  // tokenize without the word cache (for comparison)
  bool share = false;          // --setup under mpirun: token ids shared by the node's ranks
  bool share_data = false;     // --setup under mpirun: corpora and pairs shared likewise
};
int cmd_bench_data(const BenchDataArgs& args);
// Writes and reads an XLM-R-base-sized checkpoint in `dir`, timing the checksums too.
int cmd_bench_checkpoint(const std::string& dir, long long params);
// bench train: the trainer's step on synthetic batches (see cmd_bench_train.cpp).
struct BenchTrainArgs {
  ConfigArgs config;
  std::string model = "configs/models/xlmr-base/config.json";
  std::string pairs = "32,128";
  long long warmup = 3;
  long long steps = 10;
  long long max_len = 128;
  std::string layout = "packed";
  std::string json;
  std::string profile;  // "" = none; else a folder for the kineto traces (libtorch 2.x)
  long long profile_steps = 3;
};
int cmd_bench_train(const BenchTrainArgs& args);
// Registers `bench train` and its options under `bench`; its callback sets `action`.
void add_bench_train(CLI::App* bench, BenchTrainArgs& args, std::function<int()>& action);
// Writes run.dir/features.h5; refuses to overwrite one unless `force`.
int cmd_export(const ConfigArgs& args, const std::string& checkpoint, bool force);
struct HfExportArgs {
  std::string checkpoint;  // "" = the run's best.h5 (else its newest step checkpoint)
  std::string out;
  std::string dtype = "fp32";
  bool force = false;
};
// The trained encoder as an HF transformers / sentence-transformers model directory.
int cmd_export_hf(const ConfigArgs& args, const HfExportArgs& hf);
struct EvaluateChoice {
  std::string before;      // --before: the untrained encoder's features to compare with
  bool no_before = false;  // --no-before: not features_before.h5 beside the features either
};
int cmd_evaluate(const std::vector<std::string>& features, const EvaluateChoice& choice);

}  // namespace sx::app

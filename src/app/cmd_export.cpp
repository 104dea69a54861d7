// export and evaluate: the final classifier's inputs and its per-language scores.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <optional>

#include "app/commands.h"
#include "app/inference.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/run_dir_lock.h"
#include "core/strings.h"
#include "data/datasets.h"
#include "data/tokenizer.h"
#include "dist/mpi_env.h"
#include "evaluate/evaluate.h"
#include "export/features.h"
#include "export/hf_export.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "train/checkpoint.h"

namespace sx::app {
namespace {

// --checkpoint, or the run's best weights, or its newest step checkpoint.
std::string choose_checkpoint(const Config& config, const std::string& given) {
  if (!given.empty()) return given;
  std::string trained = run_checkpoint(config.run.dir);
  if (!trained.empty()) return trained;
  throw UserError("no checkpoint in " + train::checkpoint_dir(config.run.dir) +
                  " (run.dir); train first or pass --checkpoint PATH");
}

// Rank 0 holds run.dir while the export works (no training or other export writes there) and
// decides whether an earlier features.h5 may be replaced.
std::unique_ptr<RunDirLock> claim_features_file(const Config& config, const std::string& checkpoint,
                                                const std::string& out, bool force, int rank) {
  // A mistyped run.dir was made, .lock and all, and the data read, before "no checkpoint".
  if (checkpoint.empty() && !files::is_directory(config.run.dir))
    throw UserError("run.dir: " + config.run.dir +
                    (files::exists(config.run.dir) ? " is a file, expected a run directory"
                                                   : " does not exist") +
                    ", so it holds no checkpoint to export; train first or pass --checkpoint "
                    "PATH");
  if (rank != 0) return nullptr;
  auto lock = std::make_unique<RunDirLock>(config.run.dir, "export");
  if (files::is_directory(out))  // else an internal error after the export
    throw UserError("export: " + out + " is a directory, expected the features file to write");
  if (!force && files::exists(out))
    throw UserError("export: " + out + " exists; pass --force to overwrite it");
  return lock;
}

// What the export embeds (the labeled and test sets), with what (the checkpoint's weights).
struct ExportSetUp {
  data::Datasets datasets;
  data::CorpusSplit split;
  std::optional<data::XlmrTokenizer> tokenizer;
  model::BuiltEncoder built;
  std::string checkpoint;
};

void set_up_export(const Config& config, const std::string& checkpoint, const dist::MpiEnv& env,
                   ExportSetUp& s) {
  s.datasets = data::load_datasets(config, /*with_test=*/true, env.rank == 0);
  s.split = data::split_corpus(s.datasets.english, s.datasets.multilingual,
                               static_cast<uint64_t>(config.run.seed), config.data.val_fraction);
  s.tokenizer.emplace(data::tokenizer_options(config));
  s.built = model::build_encoder(config);
  model::check_tokenizer_fits(config, s.built.encoder->config(), s.tokenizer->vocab_size());
  s.checkpoint = choose_checkpoint(config, checkpoint);
  const train::Checkpoint read = train::read_checkpoint(s.checkpoint, false);
  model::load_state(*s.built.encoder, read.params, "checkpoint " + s.checkpoint);
  const std::string changed = embedding_settings_changed(config, s.checkpoint, read.state);
  if (env.rank == 0 && !changed.empty())
    spdlog::warn(
        "export: the settings that make embeddings differ from the training of {} ({}): the "
        "features are not those of the encoder it validated; set them as in its run's "
        "config.resolved.yaml",
        s.checkpoint, changed);
  model::place_encoder(s.built.encoder, config, env.local_rank);
  files::create_directories(config.run.dir);
}

}  // namespace

int cmd_export(const ConfigArgs& args, const std::string& checkpoint, bool force) {
  dist::MpiSession mpi(nullptr, nullptr);
  const auto& env = mpi.env();
  Config config;
  if (const int code = load_job_config(args, {"data", "tokenizer", "model"}, env, config);
      code != kExitOk)
    return code;
  init_logging({env.rank, env.world, config.run.log_level, config.run.other_ranks_log_level, ""});
  set_progress_options(config.run.progress, config.run.progress_interval);
  const std::string out = files::join(config.run.dir, "features.h5");
  std::unique_ptr<RunDirLock> lock;  // every rank learns whether rank 0 could claim `out`
  const dist::Outcome checked =
      dist::attempt([&] { lock = claim_features_file(config, checkpoint, out, force, env.rank); });
  if (const int code = dist::agree(checked, "the output file"); code != kExitOk) return code;
  ExportSetUp s;
  if (const int code = set_up_phase(env, "the set-up of export",
                                    [&] { set_up_export(config, checkpoint, env, s); });
      code != kExitOk)
    return code;
  try {
    exporting::ExportInputs inputs{&s.split.multilingual,
                                   s.datasets.test ? &*s.datasets.test : nullptr,
                                   "weights of " + s.checkpoint};
    exporting::export_features(config, env, s.built.encoder, *s.tokenizer, inputs, out);
  } catch (const std::exception& e) {
    if (env.world == 1) throw;
    dist::abort_job_for(e, env.rank);
  }
  return 0;
}

int cmd_export_hf(const ConfigArgs& args, const HfExportArgs& hf) {
  refuse_several_processes("export-hf");
  Config config = load_config(args.config_path, args.overrides);
  check_inputs(config, {"tokenizer", "model"});
  init_logging({0, 1, config.run.log_level, config.run.log_level, ""});
  if (files::exists(hf.out) && !files::list(hf.out).empty() && !hf.force)
    throw UserError("export-hf: " + hf.out +
                    " exists and is not empty; choose another --out or pass --force to overwrite "
                    "its files");
  if (const auto foreign = exporting::files_loaded_with_an_export(hf.out); !foreign.empty())
    throw UserError("export-hf: " + hf.out + " holds " + join(foreign, ", ") +
                    ", which export-hf does not write but transformers or sentence-transformers "
                    "may load with its files (another tokenizer, weights or adapter than the "
                    "exported ones); "
                    "remove " +
                    (foreign.size() == 1 ? "it" : "them") + " or choose another --out");
  // The run's own weights are final once no training writes run.dir: its best.h5 mid-run
  // would be published without a word. (--checkpoint PATH exports what the user names.)
  std::unique_ptr<RunDirLock> reading;
  if (hf.checkpoint.empty())
    reading = std::make_unique<RunDirLock>(
        RunDirLock::Reading{}, config.run.dir,
        "pass --checkpoint PATH to export one of its checkpoints as it is now");
  model::BuiltEncoder built = model::build_encoder(config);
  // The directory's tokenizer and max_seq_length are this configuration's.
  model::check_tokenizer_fits(config, built.encoder->config(),
                              data::XlmrTokenizer(data::tokenizer_options(config)).vocab_size());
  const std::string path = choose_checkpoint(config, hf.checkpoint);
  const train::Checkpoint read = train::read_checkpoint(path, false);
  // The directory says how to embed as the training did (its max_seq_length, pooling
  // LayerNorm, the model card's "training used"): from this configuration, so it must be the
  // training's.
  if (const std::string changed = embedding_settings_changed(config, path, read.state);
      !changed.empty())
    throw UserError("export-hf: the settings that make embeddings differ from the training of " +
                    path + " (" + changed +
                    "): the directory and its model card would describe another model than the "
                    "trained one; set them as in its run's config.resolved.yaml");
  model::load_state(*built.encoder, read.params, "checkpoint " + path);
  exporting::HfExportInputs in;
  in.out_dir = hf.out;
  in.dtype = hf.dtype;
  in.overwrite = hf.force;
  in.tokenizer_model = data::tokenizer_options(config).model_path;
  in.max_len = config.tokenizer.max_len;
  in.pretokenize = config.tokenizer.pretokenize;
  in.keep_eos = config.tokenizer.keep_eos;
  in.pool_ln_eps = config.model.pool_ln_eps;
  in.weights_description = "checkpoint " + path;
  in.weights_path = path;
  const std::string evaluation = files::join(config.run.dir, "evaluation.json");
  if (files::exists(evaluation)) in.evaluation_json = evaluation;
  exporting::export_hf(*built.encoder, in);
  std::printf("written: %s (HF transformers + sentence-transformers; weights of %s)\n",
              hf.out.c_str(), path.c_str());
  return 0;
}

namespace {

// evaluation.json beside the features: one of the run's files (train --force moves it aside),
// written while no training, export or predict works in the directory. The table is printed
// before, so a refusal (the directory in use, read-only or full) costs the file only, and says so.
void write_evaluation_json(const std::string& path, const std::string& json) {
  const std::string dir = files::parent(path);
  try {
    const RunDirLock lock(dir, "evaluate",
                          "copy the features files to another folder and evaluate them there");
    files::write_file_atomically(path, json);
  } catch (const std::runtime_error& e) {
    throw UserError("evaluate: the table above is complete, but " + path +
                    " was not written: " + e.what());
  }
  std::printf("written: %s\n", path.c_str());
}

// Why `before` cannot be compared with `after` ("" when it can).
std::string mismatch(const evaluate::Evaluation& before, const std::string& before_file,
                     const evaluate::Evaluation& after, const std::string& after_path) {
  if (before.hidden_size != after.hidden_size)
    return before_file + " holds " + std::to_string(before.hidden_size) +
           "-dimensional embeddings but " + after_path + " holds " +
           std::to_string(after.hidden_size) + ": they come from different models";
  if (const std::string differs = evaluate::labeled_rows_difference(before, after);
      !differs.empty())
    return before_file + " and " + after_path + " hold the features of different labeled sets (" +
           differs + ")";
  return "";
}

// What `after` is compared with, in `before_file`: --before, else features_before.h5 beside it
// unless --no-before; none (nullptr) else. A --before that cannot be compared is refused; a
// features_before.h5 that cannot (features exported again on other data) is left out, said.
std::unique_ptr<evaluate::Evaluation> evaluate_before(const std::string& after_path,
                                                      const evaluate::Evaluation& after,
                                                      const EvaluateChoice& choice,
                                                      std::string& before_file) {
  before_file = choice.before;
  const std::string dir = files::parent(after_path).empty() ? "." : files::parent(after_path);
  const std::string sibling = files::join(dir, "features_before.h5");
  const bool beside =
      before_file.empty() && !choice.no_before && files::exists(sibling) && sibling != after_path;
  if (beside) before_file = sibling;
  if (before_file.empty()) return nullptr;
  auto before = std::make_unique<evaluate::Evaluation>(evaluate::evaluate_features(before_file));
  const std::string why = mismatch(*before, before_file, after, after_path);
  if (why.empty()) {
    if (const std::string differs =
            evaluate::embedding_difference(before->embedding, after.embedding);
        !differs.empty())
      spdlog::warn(
          "evaluate: {} and {} were embedded with other settings ({}, before vs after): the "
          "before -> after change is not the training's alone",
          before_file, after_path, differs);
    return before;
  }
  if (!beside) throw UserError("evaluate: " + why + "; evaluate each file alone (--no-before)");
  spdlog::warn("evaluate: {}; {} is evaluated alone (--no-before leaves {} out without a word)",
               why, after_path, before_file);
  before_file.clear();
  return nullptr;
}

}  // namespace

int cmd_evaluate(const std::vector<std::string>& features, const EvaluateChoice& choice) {
  refuse_several_processes("evaluate");
  if (features.size() != 1)
    throw UserError("evaluate: give one features file (features.h5); --before for the other");
  init_logging({0, 1, LogLevel::kWarn, LogLevel::kWarn, ""});
  const std::string& after_path = features.front();
  const std::string dir = files::parent(after_path).empty() ? "." : files::parent(after_path);
  evaluate::Evaluation after = evaluate::evaluate_features(after_path);
  std::string before_file;
  const std::unique_ptr<evaluate::Evaluation> before =
      evaluate_before(after_path, after, choice, before_file);
  if (before) std::printf("before: %s\nafter:  %s\n", before_file.c_str(), after_path.c_str());
  std::fputs(evaluate::to_table(after, before.get()).c_str(), stdout);
  std::fflush(stdout);
  // features_before.h5 scored alone does not replace the run's evaluation of features.h5 (the
  // one the model card reads): evaluation_before.json.
  const bool untrained =
      after_path.substr(after_path.find_last_of('/') + 1) == "features_before.h5";
  write_evaluation_json(files::join(dir, untrained ? "evaluation_before.json" : "evaluation.json"),
                        evaluate::to_json(after, before.get()));
  return 0;
}

}  // namespace sx::app

// predict: the final classifier (evaluate's logistic regression, fitted on every labeled row of
// the run's features) and its probabilities for the test set (submission.csv) or for texts.
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/commands.h"
#include "app/inference.h"
#include "core/checksum.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/run_dir_lock.h"
#include "data/datasets.h"
#include "data/tokenizer.h"
#include "encode/encode_texts.h"
#include "evaluate/classifier.h"
#include "export/embedding_settings.h"
#include "export/features.h"
#include "io/hdf5.h"
#include "model/encoder_factory.h"

namespace sx::app {
namespace {

std::string features_path(const Config& config, const PredictArgs& a) {
  const std::string path =
      a.features.empty() ? files::join(config.run.dir, "features.h5") : a.features;
  if (!files::exists(path)) {
    // A training or an export at work in run.dir writes features.h5 at its end: name it (other
    // holders, predict or evaluate, will write none).
    if (a.features.empty())
      if (const auto holder = RunDirLock::writer(config.run.dir);
          holder && (holder->command == "train" || holder->command == "export"))
        throw UserError(holder->refusal(config.run.dir,
                                        "pass --features FILE to use the features of another run"));
    throw UserError((a.features.empty() ? "run.dir: " : "--features: ") + path +
                    " not found; train the run or run `siamese-xlmr export` first");
  }
  return path;
}

// The run's classifier.json when it was fitted on these features (same size and XXH3), else a
// fit in memory.
evaluate::Classifier classifier_for(const Config& config, const std::string& features) {
  const std::string saved = files::join(config.run.dir, "classifier.json");
  if (files::exists(saved)) {
    evaluate::Classifier c = evaluate::read_classifier(saved);
    uint64_t bytes = 0;
    std::string xxh3;
    evaluate::fingerprint(features, bytes, xxh3);
    if (bytes == c.fitted_on.features_bytes && xxh3 == c.fitted_on.features_xxh3) {
      spdlog::info("classifier: {} (fitted on {})", saved, features);
      return c;
    }
    spdlog::warn("{} was fitted on another features file than {}; fitting again in memory", saved,
                 features);
  }
  spdlog::info("classifier: fitted on {} (not saved; `predict` without --texts saves it)",
               features);
  return evaluate::fit_classifier(features, config.data.multilingual_csv);
}

// The tokenizer and pooling settings the features were made with must be this configuration's,
// or texts would not be embedded as the classifier's training rows were.
void check_tokenizer_matches(const Config& config, const std::string& features) {
  const auto differences = exporting::embedding_differences(
      exporting::read_embedding_settings(io::H5File::open(features)),
      exporting::embedding_settings_of(config));
  if (!differences.empty()) {
    const exporting::SettingDifference& d = differences.front();
    throw UserError(features + " was exported with " + d.key + " = " + d.a +
                    " but the configuration has " + d.b +
                    "; use the run's configuration so texts are embedded alike");
  }
}

// The classifier was fitted on features of some weights; texts embedded with others get
// probabilities that are not the submission's (a run's encoder with another run's features).
// `features_model` is the features' "model" attribute ("weights of PATH" or the model's
// description), `weights` the encoder's ("checkpoint PATH" or the same description).
void warn_if_other_weights(const std::string& features, const std::string& weights) {
  std::string model, model_xxh3;
  {
    const io::H5File f = io::H5File::open(features);
    if (!f.has_attr("model")) return;
    model = f.attr_string("model");
    if (f.has_attr("model_xxh3")) model_xxh3 = f.attr_string("model_xxh3");
  }
  const std::string checkpoint = "checkpoint ";
  std::string changed;
  if (weights.rfind(checkpoint, 0) == 0) {
    const auto match =
        exporting::match_weights(model, model_xxh3, weights.substr(checkpoint.size()));
    if (match.kind == exporting::WeightsMatch::kSame ||
        match.kind == exporting::WeightsMatch::kUnknown)
      return;
    if (match.kind == exporting::WeightsMatch::kChanged)
      changed = ", which has changed since the export (XXH3 " + model_xxh3 + " then, " +
                match.now_xxh3 + " now: a run continued since?)";
  } else if (model == weights) {
    return;
  }
  spdlog::warn(
      "the classifier was fitted on features of {} ({}) but the texts are embedded with {}{}: "
      "their probabilities are not what submission.csv gives such texts; pass --checkpoint or "
      "--features of the same weights",
      model, features, weights, changed);
}

int predict_texts(const Config& config, const PredictArgs& a) {
  if (!a.out.empty())
    throw UserError("--out " + a.out +
                    ": predict --texts prints p(toxic) of each text and writes no file; drop "
                    "--out, or --texts for submission.csv");
  if (a.texts != "-" && files::is_directory(a.texts))
    throw UserError("--texts " + a.texts + " is a directory, expected a file of texts, one a line");
  check_inputs(config, {"tokenizer", "model"});
  const std::string features = features_path(config, a);
  check_tokenizer_matches(config, features);
  const evaluate::Classifier classifier = classifier_for(config, features);
  data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  InferenceEncoder loaded = load_inference_encoder(config, a.weights, 0, 0);
  model::check_tokenizer_fits(config, loaded.encoder->config(), tokenizer.vocab_size());
  warn_if_other_weights(features, loaded.weights);
  const int64_t hidden = loaded.encoder->config().hidden_size;
  if (static_cast<size_t>(hidden) != classifier.weights.size())
    throw UserError("the classifier has " + std::to_string(classifier.weights.size()) +
                    " weights but the encoder embeds in " + std::to_string(hidden) +
                    " dimensions: the features come from another model");
  std::vector<std::string> texts;
  if (a.texts == "-") {
    texts = read_lines(std::cin);
  } else {
    std::ifstream in(a.texts);
    if (!in) throw UserError("--texts: cannot read " + a.texts);
    texts = read_lines(in);
  }
  const auto e = encode::encode_texts(loaded.encoder, tokenizer, texts, 0, texts.size(),
                                      static_cast<size_t>(config.export_.batch_size),
                                      /*progress=*/false, "embed");
  for (double p : evaluate::probabilities(classifier, e.data(), static_cast<int64_t>(texts.size())))
    std::printf("%.9g\n", p);
  return 0;
}

// submission.csv has the rows of the test set the features were exported with; a data.test_csv
// changed since (another size, or the same size with other bytes: edited texts or ids) would
// silently get the old set's rows. Files written before the hash came are checked by size.
void check_test_csv_matches(const Config& config, const io::H5File& f) {
  const std::string& csv = config.data.test_csv;
  if (!f.has_attr("test_csv_bytes") || csv.empty() || !files::exists(csv)) return;
  const int64_t bytes = f.attr_int("test_csv_bytes");
  if (static_cast<int64_t>(files::size(csv)) != bytes)
    throw UserError(f.path() + " holds the test set of " + f.attr_string("test_csv") + " (" +
                    std::to_string(bytes) + " bytes) but data.test_csv " + csv + " has " +
                    std::to_string(files::size(csv)) +
                    " bytes; run `siamese-xlmr export --force` for its rows");
  if (!f.has_attr("test_csv_xxh3")) return;
  std::string now;
  try {
    now = file_checksum(csv);
  } catch (const std::exception& e) {
    throw UserError(std::string("data.test_csv: ") + e.what());
  }
  if (now != f.attr_string("test_csv_xxh3"))
    throw UserError(
        f.path() + " holds the test set of " + f.attr_string("test_csv") + " but data.test_csv " +
        csv + " has changed since (same size, other bytes: XXH3 " + f.attr_string("test_csv_xxh3") +
        " at export, " + now + " now); run `siamese-xlmr export --force` for its rows");
}

// The rows of the test file that export left out as bad (data.bad_rows: skip) have no line in
// the submission: said, by count, instead of a file that silently lacks their ids.
void warn_of_skipped_test_rows(const io::H5File& f, const std::string& submission) {
  const int64_t skipped = f.has_attr("test_rows_skipped") ? f.attr_int("test_rows_skipped") : 0;
  if (skipped > 0)
    spdlog::warn(
        "{} lacks {} rows of {} that were left out as bad (data.bad_rows: skip; export's log "
        "lists their lines; a duplicate id keeps its first row): fix them, then `export --force` "
        "and `predict --force` give every row",
        submission, skipped, f.attr_string("test_csv"));
}

std::string submission_csv(const std::vector<int64_t>& ids, const std::vector<double>& p) {
  std::string out = "id,toxic\n";
  char line[64];
  for (size_t i = 0; i < ids.size(); ++i) {
    std::snprintf(line, sizeof line, "%lld,%.9g\n", static_cast<long long>(ids[i]), p[i]);
    out += line;
  }
  return out;
}

// (path, contents) files that replace their earlier versions together or not at all; without
// `force`, none written meanwhile by another process (another predict --out the same file).
void write_outputs(const std::vector<std::pair<std::string, std::string>>& outputs, bool force) {
  files::FileSet set(files::FileSet::Parents::kMustExist,
                     force ? files::FileSet::Replace::kAllowed : files::FileSet::Replace::kRefuse);
  for (const auto& [path, text] : outputs)
    set.add(path, [&text = text](const std::string& tmp) { files::write_file(tmp, text); });
  try {
    set.commit();
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("predict: ") + e.what());
  }
}

void refuse_overwrite(const std::string& path, bool force) {
  if (files::exists(path) && !force)
    throw UserError("predict: " + path + " exists; pass --force to overwrite it");
}

// The submission is of the weights the features came from: where that checkpoint has changed
// since (a run continued, stopped before its final export), say so (features of model_xxh3).
void warn_if_weights_changed_since(const io::H5File& f) {
  if (!f.has_attr("model") || !f.has_attr("model_xxh3")) return;
  const std::string model = f.attr_string("model"), then = f.attr_string("model_xxh3");
  const std::string weights = exporting::weights_file_of(model);
  if (weights.empty() || !files::exists(weights)) return;
  const auto match = exporting::match_weights(model, then, weights);
  if (match.kind == exporting::WeightsMatch::kChanged)
    spdlog::warn(
        "{} holds the embeddings of {} as it was when they were exported (XXH3 {}); it has "
        "changed since ({} now: a run continued?): the submission is of the earlier weights; "
        "`siamese-xlmr export --force` embeds with the current ones",
        f.path(), weights, then, match.now_xxh3);
}

// Both files are written after the fit: a path that cannot take them fails before it (--force
// on a directory failed there, with classifier.json already replaced).
void check_output_paths(const std::string& classifier_path, const std::string& submission,
                        const PredictArgs& a) {
  if (files::is_directory(classifier_path))
    throw UserError("run.dir: " + classifier_path + " is a directory, expected a file to write");
  if (a.out.empty()) {
    if (files::is_directory(submission))
      throw UserError("run.dir: " + submission + " is a directory, expected a file to write");
  } else {
    if (a.out == "-")  // was a file named "-" (embed's --out - is stdout)
      throw UserError(
          "--out -: predict writes the submission as a file; give a path (predict --texts "
          "prints probabilities on stdout)");
    check_output_file("--out", submission);
  }
}

void check_has_test_set(const io::H5File& f, const std::string& features) {
  if (!f.has("train/embeddings"))  // a checkpoint, say: "has no test set" misled
    throw UserError(features +
                    " is not a features file (no train/embeddings); expected the features.h5 "
                    "that `siamese-xlmr export` writes");
  if (!f.has("test/embeddings") || !f.has("test/ids"))
    throw UserError(features +
                    " has no test set: it was written without one (data.test_csv was empty, "
                    "or it is a features_before.h5 of export.before_training_test: false); set "
                    "data.test_csv and run `siamese-xlmr export`");
}

// The test rows of a features file, checked: ids, and one finite embedding row per id.
struct TestEmbeddings {
  std::vector<int64_t> ids;
  std::vector<float> x;  // ids.size() x cols
  uint64_t cols = 0;
};

TestEmbeddings read_test_embeddings(const io::H5File& f, const std::string& features) {
  TestEmbeddings t;
  t.ids = f.read_int64("test/ids");
  const auto dims = f.dims("test/embeddings");
  if (dims.size() != 2 || dims[0] != t.ids.size())
    throw UserError(features + ": test/embeddings does not hold one row per test/ids entry");
  t.cols = dims[1];
  t.x = f.read_float("test/embeddings");
  // A NaN row gave "-nan" in submission.csv with exit 0.
  for (size_t i = 0; i < t.x.size(); ++i)
    if (!std::isfinite(t.x[i]))
      throw UserError(features + ": test/embeddings holds a non-finite value at row " +
                      std::to_string(i / t.cols) + ", column " + std::to_string(i % t.cols));
  return t;
}

int predict_submission(const Config& config, const PredictArgs& a) {
  const std::string features = features_path(config, a);
  const std::string classifier_path = files::join(config.run.dir, "classifier.json");
  const std::string submission =
      a.out.empty() ? files::join(config.run.dir, "submission.csv") : a.out;
  check_output_paths(classifier_path, submission, a);
  const RunDirLock lock(config.run.dir, "predict");  // no training or export writes there now
  refuse_overwrite(classifier_path, a.force);
  refuse_overwrite(submission, a.force);

  io::H5File f = io::H5File::open(features);
  warn_if_weights_changed_since(f);
  check_has_test_set(f, features);
  check_test_csv_matches(config, f);
  const TestEmbeddings test = read_test_embeddings(f, features);
  const evaluate::Classifier classifier =
      evaluate::fit_classifier(features, config.data.multilingual_csv);
  if (classifier.weights.size() != test.cols)
    throw UserError(features + ": test/embeddings has " + std::to_string(test.cols) +
                    " columns, train/embeddings " + std::to_string(classifier.weights.size()));
  const auto p =
      evaluate::probabilities(classifier, test.x.data(), static_cast<int64_t>(test.ids.size()));

  write_outputs(
      {{classifier_path, evaluate::to_json(classifier)}, {submission, submission_csv(test.ids, p)}},
      a.force);
  std::printf("classifier: logistic regression on %lld labeled rows (%lld toxic) of %s\n",
              static_cast<long long>(classifier.fitted_on.rows),
              static_cast<long long>(classifier.fitted_on.toxic), features.c_str());
  std::printf("written: %s\nwritten: %s (%zu test rows)\n", classifier_path.c_str(),
              submission.c_str(), test.ids.size());
  warn_of_skipped_test_rows(f, submission);
  return 0;
}

}  // namespace

int cmd_predict(const ConfigArgs& args, const PredictArgs& a) {
  refuse_several_processes("predict");
  Config config = load_config(args.config_path, args.overrides);
  init_logging({0, 1, config.run.log_level, config.run.log_level, ""});
  if (!a.texts.empty()) return predict_texts(config, a);
  // The submission is scored from the features alone; these were silently ignored.
  for (const auto& [given, flag] : {std::pair{!a.weights.checkpoint.empty(), "--checkpoint"},
                                    std::pair{a.weights.pretrained, "--pretrained"},
                                    std::pair{a.weights.allow_random, "--allow-random"}})
    if (given)
      throw UserError(std::string(flag) +
                      " chooses the weights predict --texts embeds with; the submission is "
                      "scored from the features (--features, default run.dir/features.h5): "
                      "run `siamese-xlmr export --checkpoint PATH` for other weights' features");
  return predict_submission(config, a);
}

}  // namespace sx::app

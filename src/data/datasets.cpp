#include "data/datasets.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "data/jigsaw.h"

namespace sx::data {

namespace {

// data.pair_sampler: notebook reads the files as the notebook: English rows alone from the
// English file (it trains on `en` only), and its assertions on the multilingual file.
void follow_the_notebooks_files(Datasets& d) {
  const std::string left_out = keep_english_rows(d.english);
  if (!left_out.empty())
    spdlog::warn(
        "data.train_csv: rows in other languages than en left out ({}): with "
        "data.pair_sampler: notebook the English file gives English texts only, as in the "
        "notebook (balanced keeps every language)",
        left_out);
  check_notebook_multilingual(d.multilingual);
}

LoadOptions load_options(const Config& config, bool progress) {
  LoadOptions options;
  options.bad_rows = config.data.bad_rows;
  options.label_threshold = config.data.label_threshold;
  options.progress = progress;
  options.progress_interval = config.run.progress_interval;
  return options;
}

}  // namespace

void check_headers(const Config& config, bool with_test) {
  const DataConfig& d = config.data;
  LoadOptions options = load_options(config, false);
  options.key = "data.train_csv";
  check_header(d.train_csv, LabeledColumns{d.text_field, d.train_label_fields, d.lang_field},
               options);
  options.key = "data.multilingual_csv";
  check_header(d.multilingual_csv,
               LabeledColumns{d.text_field, d.multilingual_label_fields, d.lang_field}, options);
  if (with_test && !d.test_csv.empty()) {
    options.key = "data.test_csv";
    check_header(d.test_csv, TestColumns{d.test_id_field, d.test_text_field, d.test_lang_field},
                 options);
  }
}

Datasets load_datasets(const Config& config, bool with_test, bool progress) {
  const DataConfig& d = config.data;
  LoadOptions options = load_options(config, progress);

  Datasets out;
  LoadReport report;
  options.key = "data.train_csv";
  out.english = load_labeled_csv(d.train_csv, {d.text_field, d.train_label_fields, d.lang_field},
                                 options, &report);
  report.log();
  report = {};
  options.key = "data.multilingual_csv";
  out.multilingual =
      load_labeled_csv(d.multilingual_csv,
                       {d.text_field, d.multilingual_label_fields, d.lang_field}, options, &report);
  report.log();
  if (d.pair_sampler == PairSampler::kNotebook) follow_the_notebooks_files(out);
  if (with_test && !d.test_csv.empty()) {
    report = {};
    options.key = "data.test_csv";
    out.test = load_test_csv(d.test_csv, {d.test_id_field, d.test_text_field, d.test_lang_field},
                             options, &report);
    report.log();
  }
  return out;
}

std::string tokenizer_model_path(const Config& config) {
  if (!config.tokenizer.model.empty()) return config.tokenizer.model;
  if (config.model.pretrained.empty())
    throw UserError(
        "tokenizer.model: not set, and model.pretrained is empty: name the sentencepiece model "
        "(sentencepiece.bpe.model) or an HF model directory that holds one");
  const std::string path = files::join(config.model.pretrained, "sentencepiece.bpe.model");
  if (!files::exists(path))
    throw UserError("tokenizer.model: not set, and model.pretrained " + config.model.pretrained +
                    " has no sentencepiece.bpe.model; set tokenizer.model");
  return path;
}

TokenizerOptions tokenizer_options(const Config& config) {
  TokenizerOptions o;
  o.model_path = tokenizer_model_path(config);
  if (config.tokenizer.model.empty())
    spdlog::info("tokenizer.model not set: using {} from model.pretrained", o.model_path);
  o.max_len = static_cast<size_t>(config.tokenizer.max_len);
  o.pretokenize = config.tokenizer.pretokenize;
  o.keep_eos = config.tokenizer.keep_eos;
  return o;
}

namespace {

PairList config_pairs(const Config& config, const LabeledCorpus& corpus, int64_t n_pairs,
                      uint64_t stream, const std::string& source, PairReport* report) {
  if (config.data.pair_sampler == PairSampler::kNotebook)
    check_notebook_text_lengths(corpus, source);
  PairOptions o;
  o.n_pairs = static_cast<size_t>(n_pairs);
  o.seed = mix_seed({static_cast<uint64_t>(config.run.seed), stream});
  o.min_chars = static_cast<size_t>(config.data.min_sample_chars);
  o.sampler = config.data.pair_sampler;
  return build_pairs(corpus, o, report);
}

}  // namespace

PairList training_pairs(const Config& config, const CorpusSplit& split, PairReport* report) {
  // (A validation share of a small corpus may lack a label by chance; its loss is still defined.)
  check_both_labels(split.train, "data.train_csv (its training corpus)");
  return config_pairs(config, split.train, config.data.train_pairs, 1,
                      "data.train_csv (its training corpus)", report);
}

PairList validation_pairs(const Config& config, const CorpusSplit& split, PairReport* report) {
  return config_pairs(config, split.validation, config.data.val_pairs, 2,
                      "data.train_csv (its validation corpus)", report);
}

}  // namespace sx::data

#include "data/datasets.h"

#include "core/rng.h"
#include "data/jigsaw.h"

namespace sx::data {

Datasets load_datasets(const Config& config, bool with_test, bool progress) {
  const DataConfig& d = config.data;
  LoadOptions options;
  options.bad_rows = parse_bad_rows(d.bad_rows);
  options.label_threshold = d.label_threshold;
  options.progress = progress;
  options.progress_interval = config.run.progress_interval;

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
  if (with_test && !d.test_csv.empty()) {
    report = {};
    options.key = "data.test_csv";
    out.test = load_test_csv(d.test_csv, {d.test_id_field, d.test_text_field, d.test_lang_field},
                             options, &report);
    report.log();
  }
  return out;
}

TokenizerOptions tokenizer_options(const Config& config) {
  TokenizerOptions o;
  o.model_path = config.tokenizer.model;
  o.max_len = static_cast<size_t>(config.tokenizer.max_len);
  o.pretokenize = parse_pretokenize(config.tokenizer.pretokenize);
  o.keep_eos = config.tokenizer.keep_eos;
  return o;
}

std::vector<Pair> training_pairs(const Config& config, const CorpusSplit& split,
                                 PairReport* report) {
  return build_pairs(split.train, static_cast<size_t>(config.data.train_pairs),
                     mix_seed({static_cast<uint64_t>(config.run.seed), 1}),
                     static_cast<size_t>(config.data.min_sample_chars), report);
}

std::vector<Pair> validation_pairs(const Config& config, const CorpusSplit& split,
                                   PairReport* report) {
  return build_pairs(split.validation, static_cast<size_t>(config.data.val_pairs),
                     mix_seed({static_cast<uint64_t>(config.run.seed), 2}),
                     static_cast<size_t>(config.data.min_sample_chars), report);
}

}  // namespace sx::data

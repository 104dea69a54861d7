#include "export/features.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/checksum.h"
#include "core/files.h"
#include "encode/encode_texts.h"
#include "export/embedding_settings.h"
#include "io/hdf5.h"

namespace sx::exporting {

std::vector<float> embed_distributed(model::SiameseEncoder& model,
                                     const data::XlmrTokenizer& tokenizer,
                                     const std::vector<std::string_view>& texts, size_t batch_size,
                                     const dist::MpiEnv& env, const std::string& label) {
  const size_t n = texts.size();
  const size_t begin = n * env.rank / env.world, end = n * (env.rank + 1) / env.world;
  std::vector<float> local =
      encode::encode_texts(model, tokenizer, texts, begin, end, batch_size, env.rank == 0, label);
  if (env.world == 1) return local;
  return dist::gather_rows(local, model->config().hidden_size, 0,
                           "gather of the embeddings (" + label + ")");
}

std::string weights_file_of(const std::string& model_description) {
  const std::string prefix = "weights of ";
  return model_description.rfind(prefix, 0) == 0 ? model_description.substr(prefix.size()) : "";
}

WeightsMatch match_weights(const std::string& model, const std::string& recorded_xxh3,
                           const std::string& path) {
  WeightsMatch match;
  const std::string scored = weights_file_of(model);
  std::error_code error;
  const bool same_file =
      !scored.empty() && !path.empty() && std::filesystem::equivalent(scored, path, error);
  if (recorded_xxh3.empty()) {  // features from before the checksum: the path alone
    match.kind = same_file ? WeightsMatch::kSame : WeightsMatch::kOther;
    return match;
  }
  try {
    match.now_xxh3 = file_checksum(path);
  } catch (const std::runtime_error&) {
    return match;  // kUnknown
  }
  match.kind = match.now_xxh3 == recorded_xxh3 ? WeightsMatch::kSame
               : same_file                     ? WeightsMatch::kChanged
                                               : WeightsMatch::kOther;
  return match;
}

namespace {

std::vector<float> embed_column(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                                const data::TextColumn& texts, const Config& config,
                                const dist::MpiEnv& env, const std::string& label) {
  return embed_distributed(model, tokenizer, texts.views(),
                           static_cast<size_t>(config.export_.batch_size), env, label);
}

std::vector<uint64_t> shape(size_t rows, int64_t cols) {
  return {rows, static_cast<uint64_t>(cols)};
}

// What predict checks and reports of the test set: that data.test_csv is still this file, and
// how many of its rows were left out as bad (their ids are missing).
void describe_test_set(io::H5File& f, const Config& config, const data::TestCorpus& test) {
  f.set_attr("test_csv", config.data.test_csv);
  f.set_attr("test_csv_bytes", static_cast<int64_t>(files::size(config.data.test_csv)));
  f.set_attr("test_csv_xxh3", file_checksum(config.data.test_csv));
  f.set_attr("test_rows_skipped", static_cast<int64_t>(test.skipped));
}

// The checkpoint's content (attribute model_xxh3), so that what scores these features is known
// to score that content, whatever later happens to the file (a continued run rewrites best.h5).
void record_weights_checksum(io::H5File& f, const std::string& model_description) {
  const std::string weights = weights_file_of(model_description);
  if (weights.empty()) return;
  try {
    f.set_attr("model_xxh3", file_checksum(weights));
  } catch (const std::runtime_error& e) {
    spdlog::warn("features: no checksum of {} recorded ({})", weights, e.what());
  }
}

// The attributes: where the features came from and how the texts were read.
void describe_features(io::H5File& f, const Config& config, const ExportInputs& inputs,
                       int64_t hidden) {
  f.set_attr("format", std::string("siamese-xlmr features 1"));
  f.set_attr("hidden_size", hidden);
  f.set_attr("model", inputs.model_description);
  record_weights_checksum(f, inputs.model_description);
  f.set_attr("config_hash", config_result_hash(config));
  write_embedding_settings(f, embedding_settings_of(config));
  // The labeled rows' file: what classifier.json says it was fitted on.
  f.set_attr("multilingual_csv", config.data.multilingual_csv);
  f.set_attr("multilingual_csv_bytes",
             static_cast<int64_t>(files::size(config.data.multilingual_csv)));
  if (inputs.test) describe_test_set(f, config, *inputs.test);
}

// The training matrix: every labeled row, grouped by language, the languages sorted as the
// notebook sorts them (so fold and row indices match its cv_splitting), rows of a language in
// their order in the multilingual set; then each language's rows and its fold.
void write_labeled(io::H5File& f, const data::LabeledCorpus& ml, const std::vector<float>& emb,
                   int64_t hidden) {
  std::vector<std::string> languages = ml.languages();
  std::sort(languages.begin(), languages.end());
  std::vector<size_t> order;
  for (const auto& lang : languages)
    for (size_t i = 0; i < ml.size(); ++i)
      if (ml.langs[i] == lang) order.push_back(i);
  std::vector<float> train(order.size() * hidden);
  std::vector<int64_t> labels, rows;
  std::vector<std::string> langs;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    std::copy(emb.begin() + i * hidden, emb.begin() + (i + 1) * hidden, train.begin() + k * hidden);
    labels.push_back(ml.labels[i]);
    rows.push_back(ml.rows[i]);
    langs.push_back(ml.langs[i]);
  }
  f.write("train/embeddings", train.data(), shape(order.size(), hidden));
  f.write("train/labels", labels.data(), {labels.size()});
  f.write("train/rows", rows.data(), {rows.size()});
  f.write_strings("train/langs", langs);

  size_t start = 0;
  for (const auto& lang : languages) {
    size_t count = 0;
    while (start + count < langs.size() && langs[start + count] == lang) ++count;
    const std::string g = "languages/" + lang;
    f.write(g + "/embeddings", train.data() + start * hidden, shape(count, hidden));
    f.write(g + "/labels", labels.data() + start, {count});
    f.write(g + "/rows", rows.data() + start, {count});
    // Cross-validation as generate_featured_data: train on every other language, test on this
    // one.
    std::vector<int64_t> fold_train, fold_test;
    for (size_t k = 0; k < langs.size(); ++k)
      (langs[k] == lang ? fold_test : fold_train).push_back(static_cast<int64_t>(k));
    f.write("folds/" + lang + "/train_index", fold_train.data(), {fold_train.size()});
    f.write("folds/" + lang + "/test_index", fold_test.data(), {fold_test.size()});
    start += count;
  }
}

void write_test(io::H5File& f, const data::TestCorpus& t, const std::vector<float>& emb,
                int64_t hidden) {
  f.write("test/embeddings", emb.data(), shape(t.size(), hidden));
  f.write("test/ids", t.ids.data(), {t.size()});
  f.write("test/rows", t.rows.data(), {t.size()});
  f.write_strings("test/langs", t.langs.strings());
}

}  // namespace

void export_features(const Config& config, const dist::MpiEnv& env, model::SiameseEncoder& model,
                     const data::XlmrTokenizer& tokenizer, const ExportInputs& inputs,
                     const std::string& path) {
  const data::LabeledCorpus& ml = *inputs.multilingual;
  const int64_t hidden = model->config().hidden_size;
  std::vector<float> ml_emb =
      embed_column(model, tokenizer, ml.texts, config, env, "embedding the labeled set");
  std::vector<float> test_emb;
  if (inputs.test)
    test_emb =
        embed_column(model, tokenizer, inputs.test->texts, config, env, "embedding the test set");
  if (env.rank != 0) return;

  files::write_atomically(path, [&](const std::string& tmp) {
    io::H5File f = io::H5File::create(tmp);
    describe_features(f, config, inputs, hidden);
    write_labeled(f, ml, ml_emb, hidden);
    if (inputs.test) write_test(f, *inputs.test, test_emb, hidden);
    f.flush();
    f.close();
  });
  spdlog::info("features: {} ({} labeled rows in {} languages{})", path, ml.size(),
               ml.languages().size(),
               inputs.test ? ", " + std::to_string(inputs.test->size()) + " test rows" : "");
  if (inputs.test && inputs.test->skipped)
    spdlog::warn(
        "features: {}: the test set lacks {} rows of data.test_csv {} left out as bad "
        "(data.bad_rows: skip): a submission made from it will lack their ids",
        path, inputs.test->skipped, config.data.test_csv);
}

}  // namespace sx::exporting

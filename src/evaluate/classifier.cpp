#include "evaluate/classifier.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/checksum.h"
#include "core/error.h"
#include "core/files.h"
#include "evaluate/evaluate.h"
#include "io/hdf5.h"

namespace sx::evaluate {

void fingerprint(const std::string& path, uint64_t& bytes, std::string& xxh3) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read " + path);
  Xxh3 hash;
  std::vector<char> buffer(1 << 20);
  bytes = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    hash.update(buffer.data(), n);
    bytes += n;
  }
  xxh3 = hash.hex();
}

Classifier fit_classifier(const std::string& features_path, const std::string& dataset) {
  LabeledFeatures features = read_labeled_features(features_path);
  Classifier out;
  FittedOn& on = out.fitted_on;
  on.features = features_path;
  fingerprint(features_path, on.features_bytes, on.features_xxh3);
  {
    io::H5File f = io::H5File::open(features_path);
    if (f.has_attr("model")) on.encoder = f.attr_string("model");
    if (f.has_attr("max_len")) on.max_len = f.attr_int("max_len");
    // The labeled file the features were exported from (files since it was recorded); for
    // older ones, the configuration's.
    if (f.has_attr("multilingual_csv") && f.has_attr("multilingual_csv_bytes")) {
      on.dataset = f.attr_string("multilingual_csv");
      const int64_t bytes = f.attr_int("multilingual_csv_bytes");
      if (bytes < 0)
        throw UserError(features_path + ": attribute multilingual_csv_bytes is " +
                        std::to_string(bytes) + ", expected a file size (0 or more)");
      on.dataset_bytes = static_cast<uint64_t>(bytes);
    } else {
      on.dataset = dataset;
      on.dataset_bytes = files::size(dataset);
    }
  }
  on.rows = features.rows;
  on.toxic = std::count(features.labels.begin(), features.labels.end(), 1);
  for (const auto& lang : features.langs) ++on.languages[lang];
  if (on.toxic == 0 || on.toxic == on.rows)
    throw UserError(features_path + ": the " + std::to_string(on.rows) +
                    " labeled rows are all of one class; a classifier needs both");

  // Evaluate's fit, then the standardisation folded into the weights: w_j / std_j on the raw
  // embeddings and bias - sum_j w_j mean_j / std_j.
  const LogisticFit fit = fit_logistic(features.x, features.labels, features.cols, out.c);
  out.weights.resize(fit.weights.size());
  out.bias = fit.bias;
  for (size_t j = 0; j < fit.weights.size(); ++j) {
    out.weights[j] = fit.weights[j] / fit.std[j];
    out.bias -= out.weights[j] * fit.mean[j];
  }
  return out;
}

std::string to_json(const Classifier& c) {
  const FittedOn& on = c.fitted_on;
  nlohmann::json j{
      {"format", "siamese-xlmr classifier 1"},
      {"model",
       "L2-regularised logistic regression (C = " + std::to_string(c.c) +
           ") on standardised embeddings, as `evaluate` fits it; the standardisation is folded "
           "into the weights below"},
      {"probability", "1 / (1 + exp(-(dot(weights, embedding) + bias)))"},
      {"hidden_size", c.weights.size()},
      {"c", c.c},
      {"bias", c.bias},
      {"weights", c.weights},
      {"fitted_on",
       {{"features", on.features},
        {"features_bytes", on.features_bytes},
        {"features_xxh3", on.features_xxh3},
        {"encoder", on.encoder},
        {"max_len", on.max_len},
        {"rows", on.rows},
        {"toxic", on.toxic},
        {"languages", on.languages},
        {"dataset", on.dataset},
        {"dataset_bytes", on.dataset_bytes}}}};
  return j.dump(2) + "\n";
}

Classifier read_classifier(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UserError("cannot read " + path);
  Classifier c;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.at("format") != "siamese-xlmr classifier 1")
      throw UserError(path + ": format is " + j.at("format").dump() +
                      ", expected \"siamese-xlmr classifier 1\"");
    c.weights = j.at("weights").get<std::vector<double>>();
    c.bias = j.at("bias").get<double>();
    c.c = j.at("c").get<double>();
    const auto& on = j.at("fitted_on");
    c.fitted_on.features = on.at("features").get<std::string>();
    c.fitted_on.features_bytes = on.at("features_bytes").get<uint64_t>();
    c.fitted_on.features_xxh3 = on.at("features_xxh3").get<std::string>();
    c.fitted_on.encoder = on.at("encoder").get<std::string>();
    c.fitted_on.max_len = on.at("max_len").get<int64_t>();
    c.fitted_on.rows = on.at("rows").get<int64_t>();
    c.fitted_on.toxic = on.at("toxic").get<int64_t>();
    c.fitted_on.languages = on.at("languages").get<std::map<std::string, int64_t>>();
    c.fitted_on.dataset = on.at("dataset").get<std::string>();
    c.fitted_on.dataset_bytes = on.at("dataset_bytes").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": not a classifier.json written by predict (" + e.what() + ")");
  }
  if (c.weights.empty() || !std::isfinite(c.bias) ||
      !std::all_of(c.weights.begin(), c.weights.end(), [](double w) { return std::isfinite(w); }))
    throw UserError(path + ": weights and bias must be finite numbers, at least one weight");
  return c;
}

std::vector<double> probabilities(const Classifier& classifier, const float* rows, int64_t count) {
  const size_t cols = classifier.weights.size();
  std::vector<double> p(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const float* x = rows + static_cast<size_t>(i) * cols;
    double z = classifier.bias;
    for (size_t j = 0; j < cols; ++j) z += classifier.weights[j] * x[j];
    p[static_cast<size_t>(i)] = 1.0 / (1.0 + std::exp(-z));
  }
  return p;
}

}  // namespace sx::evaluate

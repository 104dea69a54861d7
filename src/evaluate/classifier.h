// The final classifier, as `predict` fits and uses it: evaluate's logistic regression fitted on
// every labeled row of a features file (all languages), kept as weights on the raw embeddings
// so that p(toxic | x) = 1 / (1 + exp(-(weights . x + bias))). Saved as classifier.json with
// what it was fitted on (docs/formats.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sx::evaluate {

struct FittedOn {
  std::string features;  // path of the features file
  uint64_t features_bytes = 0;
  std::string features_xxh3;  // of the file's bytes
  std::string encoder;        // the features file's `model` attribute
  int64_t max_len = 0;        // its `max_len` attribute
  int64_t rows = 0, toxic = 0;
  std::map<std::string, int64_t> languages;  // rows per language
  std::string dataset;                       // the labeled CSV (data.multilingual_csv)
  uint64_t dataset_bytes = 0;
};

struct Classifier {
  std::vector<double> weights;  // one per embedding dimension, on the raw embeddings
  double bias = 0;
  double c = 1.0;  // inverse L2 strength of the fit (sklearn's C)
  FittedOn fitted_on;
};

// Size and XXH3 of a file's bytes (the fingerprint classifier.json keeps of its features).
void fingerprint(const std::string& path, uint64_t& bytes, std::string& xxh3);

// Fits on every labeled row of `features_path`; `dataset` names the labeled CSV it came from.
// A file whose rows are all of one class is a UserError.
Classifier fit_classifier(const std::string& features_path, const std::string& dataset);

std::string to_json(const Classifier& classifier);
// Reads classifier.json; a malformed file is a UserError naming it.
Classifier read_classifier(const std::string& path);

// p(toxic) of `count` rows of weights.size() floats each.
std::vector<double> probabilities(const Classifier& classifier, const float* rows, int64_t count);

}  // namespace sx::evaluate

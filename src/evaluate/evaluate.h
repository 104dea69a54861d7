// The final classifier stage on exported features: per language fold, a logistic regression
// fitted on the other languages' embeddings and its ROC-AUC on the held-out language (the
// Jigsaw competition's metric), and a training-free score (distance to the class centroids
// of the other languages). Writes evaluation.json next to the features.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "evaluate/scores.h"
#include "export/embedding_settings.h"

namespace sx::evaluate {

struct FoldResult {
  std::string language;
  bool skipped = false;
  std::string why;  // when skipped
  int64_t train_rows = 0, test_rows = 0, test_toxic = 0;
  double auc_logistic = 0, auc_centroid = 0;
};

struct Evaluation {
  std::string path;
  std::string model;       // the features' "model" attribute: the weights they came from ("": none)
  std::string model_xxh3;  // their checkpoint's XXH3 when they came from one ("": not recorded)
  int64_t hidden_size = 0;
  // The settings the features were embedded with (their attributes), unset for features that
  // predate them: the embeddings of other settings are another encoder's, whatever the weights.
  exporting::EmbeddingSettings embedding;
  std::vector<FoldResult> folds;
  // Over the evaluated folds; none (null in JSON, the reason in its place in the table) when
  // no fold could be scored.
  std::optional<double> mean_logistic, mean_centroid;
  int64_t evaluated = 0;
};

// How the embedding settings of `a` and `b` differ ("tokenizer.max_len 16 vs 64; ..."), over
// those both record; "" when they agree.
std::string embedding_difference(const exporting::EmbeddingSettings& a,
                                 const exporting::EmbeddingSettings& b);

// L2-regularised logistic regression (sklearn's default C = 1, on standardised features),
// fitted by Newton's method. The decision score of a row x is
//   sum_j weights[j] * (x[j] - mean[j]) / std[j] + bias
// (mean and std of the training rows; the intercept is not penalised).
struct LogisticFit {
  std::vector<double> mean, std, weights;
  double bias = 0;
};
LogisticFit fit_logistic(const std::vector<float>& train, const std::vector<int>& train_labels,
                         int64_t cols, double c = 1.0);
// Decision scores of `count` rows of weights.size() floats each.
std::vector<double> decision_scores(const LogisticFit& fit, const float* rows, int64_t count);
// fit_logistic on `train`, then the decision scores of `test` rows.
std::vector<double> logistic_scores(const std::vector<float>& train,
                                    const std::vector<int>& train_labels,
                                    const std::vector<float>& test, int64_t cols, double c = 1.0);

// The labeled rows of a features.h5 (train/embeddings, train/labels, train/langs when
// present), checked: shapes agree, labels are 0/1, embeddings are finite; else a UserError.
struct LabeledFeatures {
  int64_t rows = 0, cols = 0;
  std::vector<float> x;  // rows x cols, row-major
  std::vector<int> labels;
  std::vector<std::string> langs;  // empty when the file has none
};
LabeledFeatures read_labeled_features(const std::string& path);

// Reads a features.h5 written by `export`; bad or missing content is a UserError.
Evaluation evaluate_features(const std::string& path);
// Where two evaluations scored different labeled rows: the first language whose folds differ in
// rows ("es: 44 rows (20 toxic) of 1760 against 12 rows (6 toxic) of 132"), or "" when every
// language both scored agrees (features of one data set, before and after training).
std::string labeled_rows_difference(const Evaluation& a, const Evaluation& b);
std::string to_json(const Evaluation& after, const Evaluation* before);
// A table; with `before`, before and after side by side.
std::string to_table(const Evaluation& after, const Evaluation* before);

}  // namespace sx::evaluate

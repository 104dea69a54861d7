// Scores that need no model and no file: ROC-AUC and the training-free centroid score per
// held-out language. Used by `evaluate` on exported features and by the trainer's epoch score
// (train.epoch_auc) on embeddings in memory; knows nothing of torch, HDF5 or MPI.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sx::evaluate {

// ROC-AUC with ties counted half (Mann-Whitney U with average ranks). labels: 0/1.
// Throws std::invalid_argument when only one class is present.
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

// The rows `index` of `matrix` [.. x cols], in that order.
std::vector<float> rows_of(const std::vector<float>& matrix, const std::vector<int64_t>& index,
                           int64_t cols);

// The training-free score of `test` rows: distance to the normal centroid of the `train`
// rows minus distance to their toxic centroid (higher = more toxic). Both classes must be
// present in train_labels.
std::vector<double> centroid_scores(const std::vector<float>& train,
                                    const std::vector<int>& train_labels,
                                    const std::vector<float>& test, int64_t cols);

// Why a fold cannot be scored ("" = it can): no held-out rows, or one class on either side.
std::string fold_skip_reason(const std::vector<int>& train_labels,
                             const std::vector<int>& test_labels);

// evaluate's centroid AUC straight from embeddings, without a features file: rows of `x`
// [n x cols] with their labels and languages; each language (sorted) held out in turn and
// scored by the centroids of all other rows. NaN for a language whose fold is skipped.
std::vector<std::pair<std::string, double>> centroid_auc_by_language(
    const std::vector<float>& x, const std::vector<int>& labels,
    const std::vector<std::string>& langs, int64_t cols);

}  // namespace sx::evaluate

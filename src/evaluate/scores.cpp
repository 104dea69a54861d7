#include "evaluate/scores.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace sx::evaluate {

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double average =
        0.5 * static_cast<double>(i + j) + 1.0;  // 1-based average rank of the tie group
    for (size_t k = i; k <= j; ++k) rank[order[k]] = average;
    i = j + 1;
  }
  double positives = 0, rank_sum = 0;
  for (size_t i = 0; i < n; ++i)
    if (labels[i]) positives += 1, rank_sum += rank[i];
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) throw std::invalid_argument("ROC-AUC needs both classes");
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

std::vector<float> rows_of(const std::vector<float>& matrix, const std::vector<int64_t>& index,
                           int64_t cols) {
  std::vector<float> out(index.size() * cols);
  for (size_t k = 0; k < index.size(); ++k)
    std::copy(matrix.begin() + index[k] * cols, matrix.begin() + (index[k] + 1) * cols,
              out.begin() + k * cols);
  return out;
}

std::vector<double> centroid_scores(const std::vector<float>& train,
                                    const std::vector<int>& train_labels,
                                    const std::vector<float>& test, int64_t cols) {
  // Training-free: closer to the toxic centroid than to the normal one.
  std::vector<double> c0(cols, 0.0), c1(cols, 0.0);
  double n0 = 0, n1 = 0;
  for (size_t k = 0; k < train_labels.size(); ++k) {
    auto& c = train_labels[k] ? c1 : c0;
    (train_labels[k] ? n1 : n0) += 1;
    for (int64_t j = 0; j < cols; ++j) c[j] += train[k * cols + j];
  }
  for (int64_t j = 0; j < cols; ++j) c0[j] /= n0, c1[j] /= n1;
  std::vector<double> score(test.size() / cols);
  for (size_t k = 0; k < score.size(); ++k) {
    double d0 = 0, d1 = 0;
    for (int64_t j = 0; j < cols; ++j) {
      double v = test[k * cols + j];
      d0 += (v - c0[j]) * (v - c0[j]);
      d1 += (v - c1[j]) * (v - c1[j]);
    }
    score[k] = std::sqrt(d0) - std::sqrt(d1);
  }
  return score;
}

std::string fold_skip_reason(const std::vector<int>& train_labels,
                             const std::vector<int>& test_labels) {
  const auto test_toxic = std::count(test_labels.begin(), test_labels.end(), 1);
  const auto train_toxic = std::count(train_labels.begin(), train_labels.end(), 1);
  if (test_labels.empty()) return "no rows";
  if (test_toxic == 0 || test_toxic == static_cast<long>(test_labels.size()))
    return "held-out rows have one class";
  if (train_toxic == 0 || train_toxic == static_cast<long>(train_labels.size()))
    return "training rows have one class";
  return "";
}

std::vector<std::pair<std::string, double>> centroid_auc_by_language(
    const std::vector<float>& x, const std::vector<int>& labels,
    const std::vector<std::string>& langs, int64_t cols) {
  std::vector<std::string> languages(langs.begin(), langs.end());
  std::sort(languages.begin(), languages.end());
  languages.erase(std::unique(languages.begin(), languages.end()), languages.end());
  std::vector<std::pair<std::string, double>> out;
  for (const auto& lang : languages) {
    std::vector<int64_t> train_index, test_index;
    std::vector<int> y_train, y_test;
    for (size_t i = 0; i < langs.size(); ++i) {
      (langs[i] == lang ? test_index : train_index).push_back(static_cast<int64_t>(i));
      (langs[i] == lang ? y_test : y_train).push_back(labels[i]);
    }
    double auc = std::nan("");
    if (fold_skip_reason(y_train, y_test).empty())
      auc = roc_auc(centroid_scores(rows_of(x, train_index, cols), y_train,
                                    rows_of(x, test_index, cols), cols),
                    y_test);
    out.emplace_back(lang, auc);
  }
  return out;
}

}  // namespace sx::evaluate

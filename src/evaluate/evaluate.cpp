#include "evaluate/evaluate.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/error.h"
#include "core/strings.h"
#include "evaluate/scores.h"
#include "io/hdf5.h"

namespace sx::evaluate {
namespace {
constexpr const char* kNoMean =
    "no fold had both labels in its training and held-out rows: the mean AUC is undefined";
}  // namespace

LogisticFit fit_logistic(const std::vector<float>& train, const std::vector<int>& train_labels,
                         int64_t cols, double c) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(train_labels.size());
  torch::Tensor x = torch::from_blob(const_cast<float*>(train.data()), {n, cols}, torch::kFloat)
                        .to(torch::kDouble);
  torch::Tensor y =
      torch::tensor(std::vector<double>(train_labels.begin(), train_labels.end()), torch::kDouble);
  // Standardise with the training rows' statistics as sklearn's StandardScaler does: the
  // population std (n, not n - 1), and 1 for a column (near) constant in these rows.
  torch::Tensor mean = x.mean(0), std = (x - mean).square().mean(0).sqrt();
  std = torch::where(std < 10 * std::numeric_limits<double>::epsilon(), torch::ones_like(std), std);
  x = (x - mean) / std;
  // With fewer rows than columns the weights lie in the span of the rows (the penalty removes
  // any part orthogonal to it, which no row sees): Newton's method runs in an orthonormal basis
  // of that span, n unknowns instead of cols, for the same fit. Otherwise a crafted 2-row,
  // 8000-column features file made 50 steps each solve an 8000 x 8000 system (minutes, 650 MB).
  torch::Tensor basis;  // cols x n when defined
  if (n < cols) {
    auto [u, s, vh] = torch::linalg_svd(x, /*full_matrices=*/false);
    basis = vh.t();
    x = u * s;  // the rows' coordinates in that basis
  }
  const int64_t k = x.size(1);
  x = torch::cat({x, torch::ones({n, 1}, torch::kDouble)}, 1);  // intercept (not penalised)
  torch::Tensor w = torch::zeros({k + 1}, torch::kDouble);
  torch::Tensor penalty = torch::full({k + 1}, 1.0 / c, torch::kDouble);
  penalty[k] = 0.0;
  for (int iter = 0; iter < 50; ++iter) {
    torch::Tensor p = torch::sigmoid(x.matmul(w));
    torch::Tensor grad = x.t().matmul(p - y) + penalty * w;
    torch::Tensor weights = (p * (1 - p)).clamp_min(1e-10);
    torch::Tensor hessian = (x.t() * weights).matmul(x) + torch::diag(penalty + 1e-9);
    torch::Tensor step = torch::linalg_solve(hessian, grad.unsqueeze(1)).squeeze(1);
    w -= step;
    if (step.abs().max().item<double>() < 1e-8) break;
  }
  auto values = [](const torch::Tensor& t) {
    torch::Tensor c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  LogisticFit fit;
  fit.mean = values(mean);
  fit.std = values(std);
  fit.weights = values(basis.defined() ? basis.matmul(w.slice(0, 0, k)) : w.slice(0, 0, k));
  fit.bias = w[k].item<double>();
  return fit;
}

std::vector<double> decision_scores(const LogisticFit& fit, const float* rows, int64_t count) {
  torch::NoGradGuard no_grad;
  const int64_t cols = static_cast<int64_t>(fit.weights.size());
  auto tensor = [](const std::vector<double>& v) {
    return torch::from_blob(const_cast<double*>(v.data()), {static_cast<int64_t>(v.size())},
                            torch::kDouble);
  };
  torch::Tensor x =
      torch::from_blob(const_cast<float*>(rows), {count, cols}, torch::kFloat).to(torch::kDouble);
  x = (x - tensor(fit.mean)) / tensor(fit.std);
  torch::Tensor scores = (x.matmul(tensor(fit.weights)) + fit.bias).contiguous();
  return std::vector<double>(scores.data_ptr<double>(), scores.data_ptr<double>() + count);
}

std::vector<double> logistic_scores(const std::vector<float>& train,
                                    const std::vector<int>& train_labels,
                                    const std::vector<float>& test, int64_t cols, double c) {
  const LogisticFit fit = fit_logistic(train, train_labels, cols, c);
  return decision_scores(fit, test.data(), static_cast<int64_t>(test.size()) / cols);
}

LabeledFeatures read_labeled_features(const std::string& path) {
  io::H5File f = io::H5File::open(path);
  for (const char* name : {"train/embeddings", "train/labels"})
    if (!f.has(name))
      throw UserError(path + ": missing '" + name + "' (not a features file written by export?)");
  auto dims = f.dims("train/embeddings");
  if (dims.size() != 2) throw UserError(path + ": train/embeddings is not a matrix");
  LabeledFeatures out;
  const int64_t rows = out.rows = static_cast<int64_t>(dims[0]);
  const int64_t cols = out.cols = static_cast<int64_t>(dims[1]);
  out.x = f.read_float("train/embeddings");
  std::vector<int64_t> labels64 = f.read_int64("train/labels");
  if (static_cast<int64_t>(labels64.size()) != rows)
    throw UserError(path + ": train/labels has " + std::to_string(labels64.size()) +
                    " rows, embeddings " + std::to_string(rows));
  if (rows == 0 || cols == 0)
    throw UserError(path + ": train/embeddings has " + std::to_string(cols) + " columns and " +
                    std::to_string(rows) + " rows, expected at least one of each");
  for (int64_t i = 0; i < rows; ++i) {
    if (labels64[i] != 0 && labels64[i] != 1)
      throw UserError(path + ": train/labels holds " + std::to_string(labels64[i]) + " at row " +
                      std::to_string(i) + ", expected 0 or 1");
    for (int64_t j = 0; j < cols; ++j)
      if (!std::isfinite(out.x[i * cols + j]))
        throw UserError(path + ": train/embeddings holds a non-finite value at row " +
                        std::to_string(i) + ", column " + std::to_string(j));
  }
  out.labels.assign(labels64.begin(), labels64.end());
  if (f.has("train/langs")) {
    out.langs = f.read_strings("train/langs");
    if (static_cast<int64_t>(out.langs.size()) != rows)
      throw UserError(path + ": train/langs has " + std::to_string(out.langs.size()) +
                      " rows, embeddings " + std::to_string(rows));
    for (size_t i = 0; i < out.langs.size(); ++i)
      if (!is_plain_name(out.langs[i]))
        throw UserError(path + ": train/langs holds a language that is not a plain name at row " +
                        std::to_string(i) + " (" + plain_name_expected(out.langs[i]) + ")");
  }
  return out;
}

namespace {

// A fold's train and test row indexes, checked: inside the matrix, each row at most once.
std::pair<std::vector<int64_t>, std::vector<int64_t>> read_fold(const io::H5File& f,
                                                                const std::string& path,
                                                                const std::string& lang,
                                                                int64_t rows) {
  std::vector<int64_t> train_index = f.read_int64("folds/" + lang + "/train_index");
  std::vector<int64_t> test_index = f.read_int64("folds/" + lang + "/test_index");
  for (auto i : train_index)
    if (i < 0 || i >= rows)
      throw UserError(path + ": folds/" + lang + "/train_index points outside the matrix");
  for (auto i : test_index)
    if (i < 0 || i >= rows)
      throw UserError(path + ": folds/" + lang + "/test_index points outside the matrix");
  // As export writes them, a fold's train and test rows are distinct rows: a row listed
  // again would only multiply the work (a crafted file could list one row 8000 times).
  std::vector<char> listed(static_cast<size_t>(rows), 0);
  for (const auto* index : {&train_index, &test_index})
    for (auto i : *index)
      if (listed[static_cast<size_t>(i)]++)
        throw UserError(path + ": folds/" + lang + " lists row " + std::to_string(i) +
                        " twice, expected each row at most once in train_index and "
                        "test_index together");
  return {std::move(train_index), std::move(test_index)};
}

}  // namespace

Evaluation evaluate_features(const std::string& path) {
  LabeledFeatures features = read_labeled_features(path);
  io::H5File f = io::H5File::open(path);
  if (!f.has("folds"))
    throw UserError(path + ": missing 'folds' (not a features file written by export?)");
  Evaluation ev;
  ev.path = path;
  if (f.has_attr("model")) ev.model = f.attr_string("model");
  if (f.has_attr("model_xxh3")) ev.model_xxh3 = f.attr_string("model_xxh3");
  ev.embedding = exporting::read_embedding_settings(f);
  const int64_t rows = features.rows, cols = features.cols;
  ev.hidden_size = cols;
  const std::vector<float>& x = features.x;
  const std::vector<int>& labels = features.labels;

  double sum_lr = 0, sum_c = 0;
  for (const auto& lang : f.members("folds")) {
    if (!is_plain_name(lang))  // it becomes a JSON key and a table row
      throw UserError(path + ": folds holds a language that is not a plain name (" +
                      plain_name_expected(lang) + ")");
    FoldResult r;
    r.language = lang;
    const auto [train_index, test_index] = read_fold(f, path, lang, rows);
    r.train_rows = static_cast<int64_t>(train_index.size());
    r.test_rows = static_cast<int64_t>(test_index.size());
    std::vector<int> y_train, y_test;
    for (auto i : train_index) y_train.push_back(labels[i]);
    for (auto i : test_index) y_test.push_back(labels[i]);
    r.test_toxic = std::count(y_test.begin(), y_test.end(), 1);
    r.why = fold_skip_reason(y_train, y_test);
    r.skipped = !r.why.empty();
    if (!r.skipped) {
      std::vector<float> xtr = rows_of(x, train_index, cols), xte = rows_of(x, test_index, cols);
      r.auc_logistic = roc_auc(logistic_scores(xtr, y_train, xte, cols), y_test);
      r.auc_centroid = roc_auc(centroid_scores(xtr, y_train, xte, cols), y_test);
      sum_lr += r.auc_logistic;
      sum_c += r.auc_centroid;
      ++ev.evaluated;
    }
    ev.folds.push_back(r);
  }
  if (ev.folds.empty()) throw UserError(path + ": no language folds");
  if (ev.evaluated)
    ev.mean_logistic = sum_lr / ev.evaluated, ev.mean_centroid = sum_c / ev.evaluated;
  return ev;
}

namespace {

nlohmann::json number_or_null(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json json_of(const Evaluation& e) {
  nlohmann::json folds = nlohmann::json::array();
  for (const auto& f : e.folds) {
    nlohmann::json j{{"language", f.language},
                     {"train_rows", f.train_rows},
                     {"test_rows", f.test_rows},
                     {"test_toxic", f.test_toxic},
                     {"skipped", f.skipped}};
    if (f.skipped)
      j["why"] = f.why;
    else
      j["auc_logistic_regression"] = f.auc_logistic, j["auc_centroid"] = f.auc_centroid;
    folds.push_back(j);
  }
  nlohmann::json j{
      {"features", e.path},
      {"model", e.model},
      {"model_xxh3", e.model_xxh3.empty() ? nlohmann::json() : nlohmann::json(e.model_xxh3)},
      {"hidden_size", e.hidden_size},
      {"embedding", exporting::embedding_settings_json(e.embedding)},
      {"folds", folds},
      {"mean_auc_logistic_regression", number_or_null(e.mean_logistic)},
      {"mean_auc_centroid", number_or_null(e.mean_centroid)},
      {"evaluated_folds", e.evaluated}};
  if (!e.evaluated) j["why_no_mean"] = kNoMean;
  return j;
}

// The means before and after over the languages both files scored: a comparison of the same
// folds (each file's own mean may cover other languages).
struct PairedMeans {
  int64_t languages = 0;
  double logistic_before = 0, logistic_after = 0, centroid_before = 0, centroid_after = 0;
};

PairedMeans paired_means(const Evaluation& after, const Evaluation& before) {
  PairedMeans m;
  for (const auto& a : after.folds)
    for (const auto& b : before.folds)
      if (b.language == a.language && !a.skipped && !b.skipped) {
        ++m.languages;
        m.logistic_before += b.auc_logistic, m.logistic_after += a.auc_logistic;
        m.centroid_before += b.auc_centroid, m.centroid_after += a.auc_centroid;
      }
  if (m.languages > 0) {
    const double n = static_cast<double>(m.languages);
    m.logistic_before /= n, m.logistic_after /= n, m.centroid_before /= n, m.centroid_after /= n;
  }
  return m;
}

// The table's last line: the means (before -> after with `before`, over the languages both
// scored), or why there are none.
std::string mean_line(const Evaluation& after, const Evaluation* before) {
  char line[320];
  const bool none_after = !after.evaluated, none_before = before && !before->evaluated;
  const PairedMeans paired = before ? paired_means(after, *before) : PairedMeans{};
  if (none_after || none_before) {
    std::string which;  // the side without a mean, when the other has one
    if (before && none_after != none_before) which = none_after ? "after: " : "before: ";
    std::snprintf(line, sizeof line, "%-8s %6s %6s   %s%s\n", "mean", "", "", which.c_str(),
                  kNoMean);
  } else if (before && paired.languages == 0) {
    std::snprintf(line, sizeof line, "%-8s %6s %6s   no language is scored in both files\n", "mean",
                  "", "");
  } else if (before) {
    const bool all = paired.languages == after.evaluated && paired.languages == before->evaluated;
    const std::string over =
        all ? "" : " over the " + std::to_string(paired.languages) + " scored in both";
    std::snprintf(
        line, sizeof line, "%-8s %6s %6s   %6.4f -> %6.4f (%+.4f)   %6.4f -> %6.4f (%+.4f)%s\n",
        "mean", "", "", paired.logistic_before, paired.logistic_after,
        paired.logistic_after - paired.logistic_before, paired.centroid_before,
        paired.centroid_after, paired.centroid_after - paired.centroid_before, over.c_str());
  } else {
    std::snprintf(line, sizeof line, "%-8s %6s %6s   %10.4f   %12.4f\n", "mean", "", "",
                  *after.mean_logistic, *after.mean_centroid);
  }
  return line;
}

}  // namespace

std::string embedding_difference(const exporting::EmbeddingSettings& a,
                                 const exporting::EmbeddingSettings& b) {
  return exporting::describe_differences(exporting::embedding_differences(a, b), " vs ");
}

std::string labeled_rows_difference(const Evaluation& a, const Evaluation& b) {
  const auto rows = [](const FoldResult& f) {
    return std::to_string(f.test_rows) + " rows (" + std::to_string(f.test_toxic) + " toxic) of " +
           std::to_string(f.train_rows + f.test_rows);
  };
  for (const FoldResult& x : a.folds)
    for (const FoldResult& y : b.folds)
      if (x.language == y.language && rows(x) != rows(y))
        return x.language + ": " + rows(x) + " against " + rows(y);
  return "";
}

std::string to_json(const Evaluation& after, const Evaluation* before) {
  nlohmann::json j{{"after", json_of(after)}};
  if (before) {
    j["before"] = json_of(*before);
    // The comparison: both means over the languages both files scored.
    const PairedMeans m = paired_means(after, *before);
    j["scored_in_both"] = {{"languages", m.languages},
                           {"mean_auc_logistic_regression_before", m.logistic_before},
                           {"mean_auc_logistic_regression_after", m.logistic_after},
                           {"mean_auc_centroid_before", m.centroid_before},
                           {"mean_auc_centroid_after", m.centroid_after}};
    if (m.languages == 0) j["scored_in_both"] = {{"languages", 0}};
  }
  return j.dump(2) + "\n";
}

std::string to_table(const Evaluation& after, const Evaluation* before) {
  char line[256];
  std::string out;
  if (before) {
    out += "language   rows  toxic   AUC logreg before -> after   AUC centroid before -> after\n";
    for (size_t i = 0; i < after.folds.size(); ++i) {
      const auto& a = after.folds[i];
      const FoldResult* b = nullptr;
      for (const auto& f : before->folds)
        if (f.language == a.language) b = &f;
      if (a.skipped || !b || b->skipped) {
        std::snprintf(line, sizeof line, "%-8s %6lld %6lld   skipped: %s\n", a.language.c_str(),
                      (long long)a.test_rows, (long long)a.test_toxic,
                      a.skipped ? a.why.c_str() : "missing before");
      } else {
        std::snprintf(line, sizeof line,
                      "%-8s %6lld %6lld   %6.4f -> %6.4f (%+.4f)   %6.4f -> %6.4f (%+.4f)\n",
                      a.language.c_str(), (long long)a.test_rows, (long long)a.test_toxic,
                      b->auc_logistic, a.auc_logistic, a.auc_logistic - b->auc_logistic,
                      b->auc_centroid, a.auc_centroid, a.auc_centroid - b->auc_centroid);
      }
      out += line;
    }
    return out + mean_line(after, before);
  }
  out += "language   rows  toxic   AUC logreg   AUC centroid\n";
  for (const auto& a : after.folds) {
    if (a.skipped)
      std::snprintf(line, sizeof line, "%-8s %6lld %6lld   skipped: %s\n", a.language.c_str(),
                    (long long)a.test_rows, (long long)a.test_toxic, a.why.c_str());
    else
      std::snprintf(line, sizeof line, "%-8s %6lld %6lld   %10.4f   %12.4f\n", a.language.c_str(),
                    (long long)a.test_rows, (long long)a.test_toxic, a.auc_logistic,
                    a.auc_centroid);
    out += line;
  }
  return out + mean_line(after, nullptr);
}

}  // namespace sx::evaluate

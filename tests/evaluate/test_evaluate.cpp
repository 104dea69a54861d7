// ROC-AUC, the logistic regression and the evaluation of features files.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "evaluate/evaluate.h"
#include "io/hdf5.h"
#include "test_util.h"

namespace sx::evaluate {
namespace {

TEST(RocAuc, HandComputedExampleWithTies) {
  // Positives score {0.8, 0.4, 0.4}, negatives {0.4, 0.1}. Pairs (pos, neg): 0.8 beats both
  // (2); each 0.4 ties 0.4 (0.5) and beats 0.1 (1) -> 1.5 each. U = 5, AUC = 5 / 6.
  std::vector<double> s{0.8, 0.4, 0.4, 0.4, 0.1};
  std::vector<int> y{1, 1, 1, 0, 0};
  EXPECT_NEAR(roc_auc(s, y), 5.0 / 6.0, 1e-15);
  EXPECT_NEAR(roc_auc({1, 2, 3, 4}, {0, 0, 1, 1}), 1.0, 1e-15);
  EXPECT_NEAR(roc_auc({1, 2, 3, 4}, {1, 1, 0, 0}), 0.0, 1e-15);
  EXPECT_NEAR(roc_auc({5, 5, 5, 5}, {1, 0, 1, 0}), 0.5, 1e-15);
  EXPECT_THROW(roc_auc({1, 2}, {1, 1}), std::invalid_argument);
}

TEST(LogisticRegression, SeparatesALearnableProblem) {
  torch::manual_seed(0);
  const int64_t n = 400, d = 5;
  torch::Tensor x = torch::randn({n, d});
  torch::Tensor y = (x.select(1, 0) + 0.5 * x.select(1, 2) > 0).to(torch::kInt);
  std::vector<float> xs(x.data_ptr<float>(), x.data_ptr<float>() + n * d);
  std::vector<int> ys(y.data_ptr<int>(), y.data_ptr<int>() + n);
  auto scores = logistic_scores(xs, ys, xs, d);
  std::vector<double> s(scores.begin(), scores.end());
  EXPECT_GT(roc_auc(s, ys), 0.99);
}

// The standardisation is sklearn's StandardScaler's: the population std (rows 0 and 2: 1, not
// sqrt 2), and 1 for a column constant in the training rows (where dividing by a tiny number
// turned any other value in a held-out row into a score of millions).
TEST(LogisticRegression, StandardisesAsSklearnsStandardScaler) {
  const std::vector<float> x = {0, 5, 2, 5, 0, 5, 2, 5};  // column 1 constant
  const LogisticFit fit = fit_logistic(x, {0, 1, 0, 1}, 2);
  EXPECT_DOUBLE_EQ(fit.mean[0], 1.0);
  EXPECT_DOUBLE_EQ(fit.std[0], 1.0);
  EXPECT_DOUBLE_EQ(fit.std[1], 1.0);
  EXPECT_DOUBLE_EQ(fit.weights[1], 0.0);
}

// What a crafted features file may change in an otherwise valid one.
struct Tweak {
  int64_t label0 = -1;         // >= 0: the first row's label
  bool nan = false;            // a NaN in the first row
  int64_t fold_index = -1;     // >= 0: the first held-out index of en
  const char* es_fold = "es";  // the name of the es fold
  const char* lang0 = "en";    // the first row's language
  int64_t max_len = -1;        // >= 0: the embedding settings' attributes, export's
};

// A features file with two languages; `hidden` columns; es fold single-class when asked.
std::string write_features(const test::TempDir& dir, const std::string& name, int64_t hidden,
                           bool single_class_es, Tweak tweak = {}) {
  io::H5File f = io::H5File::create(dir.path(name));
  const int64_t n = 40;
  std::vector<float> x(n * hidden);
  std::vector<int64_t> labels(n);
  std::vector<std::string> langs(n);
  for (int64_t i = 0; i < n; ++i) {
    langs[i] = i == 0 ? tweak.lang0 : i < 20 ? "en" : "es";
    labels[i] = single_class_es && i >= 20 ? 0 : i % 2;
    for (int64_t j = 0; j < hidden; ++j)
      x[i * hidden + j] = static_cast<float>(labels[i] * 2.0 + std::sin(i * 7.0 + j));
  }
  if (tweak.label0 >= 0) labels[0] = tweak.label0;
  if (tweak.nan && hidden > 0) x[0] = std::nanf("");
  f.write("train/embeddings", x.data(), {static_cast<uint64_t>(n), static_cast<uint64_t>(hidden)});
  f.write("train/labels", labels.data(), {static_cast<uint64_t>(n)});
  f.write_strings("train/langs", langs);
  std::vector<int64_t> first(20), second(20);
  for (int i = 0; i < 20; ++i) first[i] = i, second[i] = 20 + i;
  f.write("folds/en/train_index", second.data(), {20});
  std::vector<int64_t> en_test = first;
  if (tweak.fold_index >= 0) en_test[0] = tweak.fold_index;
  f.write("folds/en/test_index", en_test.data(), {20});
  const std::string es = std::string("folds/") + tweak.es_fold;
  f.write(es + "/train_index", first.data(), {20});
  f.write(es + "/test_index", second.data(), {20});
  if (tweak.max_len >= 0) {
    f.set_attr("max_len", tweak.max_len);
    f.set_attr("pretokenize", std::string("wordpunct"));
    f.set_attr("keep_eos", int64_t{0});
    f.set_attr("pool_ln_eps", 1e-3);
  }
  f.close();
  return dir.path(name);
}

TEST(Evaluate, ScoresEveryFoldAndWritesJson) {
  test::TempDir dir;
  Evaluation e = evaluate_features(write_features(dir, "f.h5", 6, false));
  ASSERT_EQ(e.folds.size(), 2u);
  EXPECT_EQ(e.evaluated, 2);
  EXPECT_GT(e.mean_logistic.value_or(0), 0.9);
  EXPECT_GT(e.mean_centroid.value_or(0), 0.9);
  std::string json = to_json(e, &e);
  EXPECT_NE(json.find("\"before\""), std::string::npos);
  EXPECT_NE(to_table(e, &e).find("->"), std::string::npos);
}

// The trainer's per-epoch score computes evaluate's centroid AUC from embeddings in memory:
// the same numbers as the features file's folds (languages held out in turn).
TEST(Evaluate, CentroidAucByLanguageEqualsTheFeaturesFilesFolds) {
  test::TempDir dir;
  const std::string path = write_features(dir, "f.h5", 6, false);
  Evaluation e = evaluate_features(path);
  io::H5File f = io::H5File::open(path);
  std::vector<float> x = f.read_float("train/embeddings");
  std::vector<int64_t> labels64 = f.read_int64("train/labels");
  std::vector<int> labels(labels64.begin(), labels64.end());
  std::vector<std::string> langs(40);
  for (int i = 0; i < 40; ++i) langs[i] = i < 20 ? "en" : "es";
  auto by_language = centroid_auc_by_language(x, labels, langs, 6);
  ASSERT_EQ(by_language.size(), 2u);
  EXPECT_EQ(by_language[0].first, "en");
  EXPECT_EQ(by_language[1].first, "es");
  EXPECT_DOUBLE_EQ(by_language[0].second, e.folds[0].auc_centroid);
  EXPECT_DOUBLE_EQ(by_language[1].second, e.folds[1].auc_centroid);
  // A language with one class is NaN, not a made-up number.
  for (int i = 20; i < 40; ++i) labels[i] = 0;
  by_language = centroid_auc_by_language(x, labels, langs, 6);
  EXPECT_TRUE(std::isnan(by_language[1].second));
}

TEST(Evaluate, SingleClassFoldIsMarkedSkipped) {
  test::TempDir dir;
  Evaluation e = evaluate_features(write_features(dir, "f.h5", 6, true));
  const FoldResult& es = e.folds[1];
  EXPECT_EQ(es.language, "es");
  EXPECT_TRUE(es.skipped);
  EXPECT_EQ(es.why, "held-out rows have one class");
  // ... and the en fold trains on es alone: a single class there too.
  EXPECT_TRUE(e.folds[0].skipped);
  EXPECT_EQ(e.folds[0].why, "training rows have one class");
  EXPECT_EQ(e.evaluated, 0);
  EXPECT_NE(to_table(e, nullptr).find("skipped: held-out rows have one class"), std::string::npos);
}

// Issue #25: with no fold scored, evaluate printed and wrote a mean AUC of 0.
TEST(Evaluate, NoScoredFoldGivesNoMeanAndSaysWhy) {
  test::TempDir dir;
  const Evaluation none = evaluate_features(write_features(dir, "none.h5", 6, true));
  const Evaluation both = evaluate_features(write_features(dir, "both.h5", 6, false));
  const std::string why =
      "no fold had both labels in its training and held-out rows: the mean AUC is undefined";
  const auto json = nlohmann::json::parse(to_json(none, &both));
  for (const char* key : {"mean_auc_logistic_regression", "mean_auc_centroid"}) {
    EXPECT_TRUE(json["after"][key].is_null()) << json["after"][key];
    EXPECT_TRUE(json["before"][key].is_number()) << json["before"][key];
  }
  EXPECT_EQ(json["after"]["why_no_mean"], why);
  EXPECT_FALSE(json["before"].contains("why_no_mean"));

  // The table's last line says why, with no number.
  auto last_line = [](const std::string& table) {
    return table.substr(table.rfind('\n', table.size() - 2) + 1);
  };
  const std::string mean_row = "mean                     " + why + "\n";
  EXPECT_EQ(last_line(to_table(none, nullptr)), mean_row);
  EXPECT_EQ(last_line(to_table(none, &none)), mean_row);
  EXPECT_NE(last_line(to_table(none, &both)).find("   after: " + why), std::string::npos);
  EXPECT_NE(last_line(to_table(both, &none)).find("   before: " + why), std::string::npos);
}

// evaluate --before on files that scored other languages: the mean row compares the languages
// both scored, and says so, rather than each file's own mean (a made-up change).
TEST(Evaluate, TheMeansBeforeAndAfterCoverTheLanguagesBothScored) {
  test::TempDir dir;
  const Evaluation after = evaluate_features(write_features(dir, "after.h5", 6, false));
  ASSERT_EQ(after.evaluated, 2);
  Evaluation before = after;  // "es" missing before; "en" scored lower
  before.folds.pop_back();
  before.folds[0].auc_logistic = 0.5, before.folds[0].auc_centroid = 0.25;
  before.evaluated = 1;
  before.mean_logistic = 0.5, before.mean_centroid = 0.25;
  const std::string table = to_table(after, &before);
  const std::string mean = table.substr(table.rfind('\n', table.size() - 2) + 1);
  char want[160];
  std::snprintf(want, sizeof want, "%6.4f -> %6.4f (%+.4f)", 0.5, after.folds[0].auc_logistic,
                after.folds[0].auc_logistic - 0.5);
  EXPECT_NE(mean.find(want), std::string::npos) << mean;
  EXPECT_NE(mean.find("over the 1 scored in both"), std::string::npos) << mean;
  const auto json = nlohmann::json::parse(to_json(after, &before));
  EXPECT_EQ(json["scored_in_both"]["languages"], 1);
  EXPECT_EQ(json["scored_in_both"]["mean_auc_logistic_regression_before"], 0.5);
  EXPECT_EQ(json["scored_in_both"]["mean_auc_centroid_after"], after.folds[0].auc_centroid);
  // The same languages: the plain means, no remark.
  EXPECT_EQ(to_table(after, &after).find("scored in both"), std::string::npos);
}

// evaluate --before on the features of another data set mixed the two in one table; the
// difference is named, and cmd_evaluate refuses it.
TEST(Evaluate, BeforeAndAfterOfDifferentLabeledRowsAreTold) {
  test::TempDir dir;
  const Evaluation a = evaluate_features(write_features(dir, "a.h5", 6, false));
  const Evaluation b = evaluate_features(write_features(dir, "b.h5", 6, true));
  EXPECT_EQ(labeled_rows_difference(a, a), "");
  const std::string differs = labeled_rows_difference(a, b);
  EXPECT_EQ(differs.rfind("es: ", 0), 0u) << differs;
  EXPECT_NE(differs.find(" toxic) of 40 against "), std::string::npos) << differs;
}

// export-hf leaves the run's table out of the model card when these differ from the directory's.
TEST(Evaluate, TheEmbeddingSettingsOfTheFeaturesAreRecordedAndCompared) {
  test::TempDir dir;
  Tweak t64, t16;
  t64.max_len = 64, t16.max_len = 16;
  const Evaluation a = evaluate_features(write_features(dir, "a.h5", 6, false, t64));
  const Evaluation b = evaluate_features(write_features(dir, "b.h5", 6, false, t16));
  const Evaluation older = evaluate_features(write_features(dir, "c.h5", 6, false));
  const auto after = nlohmann::json::parse(to_json(a, nullptr)).at("after").at("embedding");
  EXPECT_EQ(after, nlohmann::json::parse(R"({"tokenizer.max_len": 64, "tokenizer.pretokenize":
      "wordpunct", "tokenizer.keep_eos": false, "model.pool_ln_eps": 0.001})"));
  EXPECT_EQ(nlohmann::json::parse(to_json(older, nullptr)).at("after").at("embedding"),
            nlohmann::json::object());
  EXPECT_EQ(embedding_difference(a.embedding, a.embedding), "");
  EXPECT_EQ(embedding_difference(b.embedding, a.embedding), "tokenizer.max_len 16 vs 64");
  EXPECT_EQ(embedding_difference(older.embedding, a.embedding), "");  // nothing to compare
}

// One comparison serves predict (features against the configuration), evaluate (before against
// after) and export-hf (evaluation.json against the model): each setting is compared once,
// spelled as a configuration spells it, and every field survives the file and the JSON.
TEST(Evaluate, EmbeddingSettingsRoundTripAndDifferOncePerSetting) {
  using exporting::EmbeddingSettings;
  const EmbeddingSettings a{64, std::string("wordpunct"), false, 1e-3};
  EmbeddingSettings b{16, std::string("none"), true, 1e-3 + 1e-12};
  const auto d = exporting::embedding_differences(a, b);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].key + " " + d[0].a + " " + d[0].b, "tokenizer.max_len 64 16");
  EXPECT_EQ(d[1].key + " " + d[1].a + " " + d[1].b, "tokenizer.pretokenize wordpunct none");
  EXPECT_EQ(d[2].key + " " + d[2].a + " " + d[2].b, "tokenizer.keep_eos false true");
  // %g prints both 0.001: every digit then, so the line shows what differs
  EXPECT_EQ(d[3].key + " " + d[3].a + " " + d[3].b, "model.pool_ln_eps 0.001 0.001000000001");
  b.pool_ln_eps = 0.5;
  EXPECT_EQ(exporting::embedding_differences(a, b)[3].b, "0.5");
  EXPECT_EQ(exporting::describe_differences(exporting::embedding_differences(a, a), " vs "), "");
  EXPECT_EQ(exporting::describe_differences(
                exporting::embedding_differences(a, EmbeddingSettings{32, {}, {}, {}}), ", not "),
            "tokenizer.max_len 64, not 32");  // unrecorded settings are not compared

  const auto back = exporting::embedding_settings_from_json(exporting::embedding_settings_json(b));
  EXPECT_TRUE(exporting::embedding_differences(back, b).empty());
  EXPECT_EQ(back.pool_ln_eps, b.pool_ln_eps);
  EXPECT_FALSE(exporting::embedding_settings_from_json(nlohmann::json::object()).max_len);
  EXPECT_THROW(exporting::embedding_settings_from_json(
                   nlohmann::json::parse(R"({"tokenizer.max_len": "16"})")),
               nlohmann::json::exception);  // export-hf: "evaluation.json could not be read"

  test::TempDir dir;
  const std::string path = dir.path("settings.h5");
  {
    io::H5File f = io::H5File::create(path);
    exporting::write_embedding_settings(f, b);
  }
  const EmbeddingSettings read = exporting::read_embedding_settings(io::H5File::open(path));
  EXPECT_EQ(read.max_len, b.max_len);
  EXPECT_EQ(read.pretokenize, b.pretokenize);
  EXPECT_EQ(read.keep_eos, b.keep_eos);
  EXPECT_EQ(read.pool_ln_eps, b.pool_ln_eps);
}

TEST(Evaluate, MissingDatasetOrNotAFeaturesFileIsAClearError) {
  test::TempDir dir;
  {
    io::H5File f = io::H5File::create(dir.path("empty.h5"));
    std::vector<float> x{1, 2};
    f.write("something/else", x.data(), {2});
  }
  for (const char* name : {"empty.h5", "nope.h5"}) {
    try {
      evaluate_features(dir.path(name));
      ADD_FAILURE() << name;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(dir.path(name)), std::string::npos) << e.what();
    }
  }
}

// With fewer rows than columns the fit is computed in the span of the rows; it must still be
// the optimum of the whole problem: the gradient of the log-loss plus |w|^2 / 2 (C = 1)
// vanishes in every column and in the intercept.
TEST(Evaluate, LogisticFitWithFewerRowsThanColumnsIsTheFullOptimum) {
  const int64_t n = 12, d = 40;
  std::vector<float> x(n * d);
  std::vector<int> y(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = i % 2;
    for (int64_t j = 0; j < d; ++j)
      x[i * d + j] = static_cast<float>(std::sin(i * 3.1 + j * 0.7) + 0.3 * y[i] * (j % 3));
  }
  const LogisticFit fit = fit_logistic(x, y, d);
  ASSERT_EQ(fit.weights.size(), static_cast<size_t>(d));
  std::vector<double> grad = fit.weights;  // the penalty's part
  double grad_bias = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto standardised = [&](int64_t j) { return (x[i * d + j] - fit.mean[j]) / fit.std[j]; };
    double z = fit.bias;
    for (int64_t j = 0; j < d; ++j) z += fit.weights[j] * standardised(j);
    const double residual = 1 / (1 + std::exp(-z)) - y[i];
    grad_bias += residual;
    for (int64_t j = 0; j < d; ++j) grad[j] += residual * standardised(j);
  }
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(grad[j], 0, 1e-6) << "column " << j;
  EXPECT_NEAR(grad_bias, 0, 1e-6);
}

TEST(Evaluate, CraftedFeaturesAreRefusedWithOneLine) {
  test::TempDir dir;
  struct Case {
    const char* name;
    int64_t hidden;
    Tweak tweak;
    const char* expected;
  };
  const Case cases[] = {
      {"zero_columns.h5", 0, {}, "train/embeddings has 0 columns"},
      {"label_two.h5", 6, {2, false, -1}, "train/labels holds 2 at row 0, expected 0 or 1"},
      {"nan.h5", 6, {-1, true, -1}, "train/embeddings holds a non-finite value at row 0"},
      {"fold_outside.h5", 6, {-1, false, 40}, "folds/en/test_index points outside the matrix"},
      // A fold or row language becomes a JSON key and a table row: never invalid UTF-8, nor
      // anything but a plain name (the rule of the data files' language column).
      {"odd_fold.h5",
       6,
       {-1, false, -1, "\xff\xfe\x01"},
       "folds holds a language that is not a plain name ('\\xFF\\xFE\\x01'; expected letters, "
       "digits, '-' or '_', at most 32)"},
      {"long_fold.h5",
       6,
       {-1, false, -1, "abcdefghijklmnopqrstuvwxyz0123456"},
       "folds holds a language that is not a plain name ('abcdefghijklmnopqrstuvwxyz0123456'"},
      {"odd_lang.h5",
       6,
       {-1, false, -1, "es", "en\xc3"},
       "train/langs holds a language that is not a plain name at row 0 ('en\\xC3'"},
  };
  for (const Case& c : cases) {
    const std::string path = write_features(dir, c.name, c.hidden, false, c.tweak);
    try {
      evaluate_features(path);
      ADD_FAILURE() << c.name << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(path + ": " + c.expected), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace sx::evaluate

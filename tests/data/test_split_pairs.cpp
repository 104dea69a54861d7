// The corpus split, the sampling weights, the pair generator and its rank slicing.
#include <algorithm>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "data/datasets.h"
#include "data/pairs.h"
#include "data/split.h"
#include "data/token_store.h"
#include "test_util.h"

namespace sx::data {
namespace {

LabeledCorpus corpus(size_t n, const std::string& lang, int toxic_every, size_t first_row = 0) {
  LabeledCorpus c;
  for (size_t i = 0; i < n; ++i) {
    c.texts.push_back(lang + " text number " + std::to_string(i) + std::string(i % 37, 'x'));
    c.labels.push_back(i % toxic_every == 0);
    c.langs.push_back(lang);
    c.rows.push_back(static_cast<int64_t>(first_row + i));
  }
  return c;
}

LabeledCorpus multilingual() {
  LabeledCorpus m = corpus(30, "es", 4);
  LabeledCorpus it = corpus(50, "it", 4);
  for (size_t i = 0; i < it.size(); ++i) m.push_back_from(it, i);
  return m;
}

TEST(Split, SizesAndDisjointPartsAsTheNotebook) {
  LabeledCorpus en = corpus(1000, "en", 5);
  CorpusSplit s = split_corpus(en, multilingual(), 42, 0.1);
  EXPECT_EQ(s.max_size, 50u);
  EXPECT_EQ(s.largest_language, "it");
  EXPECT_EQ(s.multilingual.size(), 80u + 50u);
  EXPECT_EQ(s.validation.size(), 95u);  // 10 % of the 950 left
  EXPECT_EQ(s.train.size(), 855u);
  std::set<int64_t> rows;
  for (const auto* part : {&s.validation, &s.train})
    rows.insert(part->rows.begin(), part->rows.end());
  for (size_t i = 80; i < s.multilingual.size(); ++i) {
    EXPECT_EQ(s.multilingual.langs[i], "en");
    rows.insert(s.multilingual.rows[i]);
  }
  EXPECT_EQ(rows.size(), 1000u);  // every English row exactly once
}

TEST(Split, TheValidationShareIsRoundedAsPythonsRoundHalfToEven) {
  // The notebook's int(round(0.1 * n)) of the n = English rows left after the multilingual
  // share (50): 0.1 x 959 = 95.9 gives 96 (truncating gave 95); 0.1 x 945 = 94.5 gives 94 (half
  // to even, where rounding half away from zero gives 95); 0.1 x 955 = 95.5 gives 96.
  for (const auto& [english_rows, expected] :
       std::vector<std::pair<size_t, size_t>>{{1009, 96}, {995, 94}, {1005, 96}, {1000, 95}}) {
    CorpusSplit s = split_corpus(corpus(english_rows, "en", 5), multilingual(), 42, 0.1);
    EXPECT_EQ(s.validation.size(), expected) << english_rows;
    EXPECT_EQ(s.train.size(), english_rows - 50 - expected) << english_rows;
  }
}

TEST(Split, DeterministicFromSeed) {
  LabeledCorpus en = corpus(1000, "en", 5);
  EXPECT_EQ(split_corpus(en, multilingual(), 1, 0.1).train.rows,
            split_corpus(en, multilingual(), 1, 0.1).train.rows);
  EXPECT_NE(split_corpus(en, multilingual(), 1, 0.1).train.rows,
            split_corpus(en, multilingual(), 2, 0.1).train.rows);
}

TEST(Split, RefusesTooSmallEnglishCorpus) {
  try {
    split_corpus(corpus(499, "en", 5), multilingual(), 42, 0.1);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("at least 10 x 50"), std::string::npos) << e.what();
  }
}

TEST(Probabilities, ShorterIsLikelierFloorAndShortTextsExcluded) {
  std::vector<size_t> lengths = {5, 10, 11, 100, 1000};
  auto p = text_probabilities(lengths, 10);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[1], 0.0);
  EXPECT_GT(p[2], p[3]);
  EXPECT_GT(p[3], p[4]);
  double sum = 0;
  for (double x : p) sum += x;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  // Weight 10 x max - len: 9989 : 9900 : 9000 before the floor (inactive here).
  EXPECT_NEAR(p[2] / p[4], 9989.0 / 9000.0, 1e-12);
}

TEST(Probabilities, ShortTextsAreRemovedBeforeNormalising) {
  // generate_text_probabilities drops texts of <= 10 characters first: the others' shares are
  // their weights 10 x max - len over the kept texts' total. (Its floor 0.5 / n, n counting
  // the kept texts, never binds for these weights: each is at least 9/10 of the largest, so
  // each share is at least 0.9 / n.)
  std::vector<size_t> lengths = {1, 2, 3, 4, 11, 1000};
  auto p = text_probabilities(lengths, 10);
  EXPECT_NEAR(p[4], 9989.0 / 18989.0, 1e-12);
  EXPECT_NEAR(p[5], 9000.0 / 18989.0, 1e-12);

  std::vector<size_t> mixed(900, 3);  // 900 removed texts, 100 kept of 20..119 characters
  for (int i = 0; i < 100; ++i) mixed.push_back(20 + i);
  auto q = text_probabilities(mixed, 10);
  for (size_t i = 0; i < 900; ++i) EXPECT_EQ(q[i], 0.0);
  double total = 0;
  for (int i = 0; i < 100; ++i) total += 1190.0 - (20 + i);
  for (int i = 0; i < 100; ++i) {
    EXPECT_NEAR(q[900 + i], (1190.0 - (20 + i)) / total, 1e-12);
    EXPECT_GE(q[900 + i], 0.5 / 100);
  }
  EXPECT_EQ(text_probabilities({3, 5}, 10), std::vector<double>({0.0, 0.0}));  // none kept
}

TEST(WeightedSample, InclusionProbabilitiesAreThoseOfSuccessiveDraws) {
  // Exact inclusion probabilities of drawing 2 of weights {1, 2, 3, 4} one after another
  // without replacement, against the Efraimidis-Spirakis keys over many trials.
  const std::vector<double> w = {1, 2, 3, 4};
  double exact[4] = {0, 0, 0, 0};
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      if (a != b) {
        const double p = w[a] / 10 * w[b] / (10 - w[a]);
        exact[a] += p;
        exact[b] += p;
      }
  Rng rng(99);
  const int trials = 200000;
  int hits[4] = {0, 0, 0, 0};
  for (int t = 0; t < trials; ++t) {
    auto s = weighted_sample(w, 2, rng);
    ASSERT_EQ(s.size(), 2u);
    ASSERT_LT(s[0], s[1]);  // distinct, ascending
    for (uint32_t i : s) ++hits[i];
  }
  for (int i = 0; i < 4; ++i)  // binomial standard error < 0.0012: 5 sigma
    EXPECT_NEAR(static_cast<double>(hits[i]) / trials, exact[i], 0.006) << i;
  EXPECT_EQ(weighted_sample(w, 9, rng).size(), 4u);
}

// ---- data.pair_sampler: notebook reads the files as the notebook (datasets.cpp)

// A configuration on a labeled English file and a multilingual file written into `dir`.
Config files_config(const test::TempDir& dir, const std::string& english_csv,
                    const std::string& multilingual_csv) {
  Config c = default_config();
  c.data.train_csv = dir.write("train.csv", english_csv);
  c.data.multilingual_csv = dir.write("validation.csv", multilingual_csv);
  c.data.test_csv = "";
  c.data.train_label_fields = {"toxic"};
  return c;
}

const char* const kMultilingualCsv = "comment_text,toxic,lang\nuno,0,es\ndos,1,es\n";

TEST(NotebookFiles, TheEnglishFileGivesItsEnglishRowsAlone) {
  // The notebook trains on `en` only; the balanced sampler keeps every language of the file.
  test::TempDir dir;
  Config c = files_config(dir,
                          "comment_text,toxic,lang\nan English text,0,en\nun texto,1,es\n"
                          "another English text,1,en\nune phrase,0,fr\nune autre,0,fr\n",
                          kMultilingualCsv);
  const Datasets notebook = load_datasets(c, false, false);
  ASSERT_EQ(notebook.english.size(), 2u);
  EXPECT_EQ(notebook.english.langs.strings(), (std::vector<std::string>{"en", "en"}));
  EXPECT_EQ(notebook.english.texts[1], "another English text");
  c.data.pair_sampler = PairSampler::kBalanced;
  EXPECT_EQ(load_datasets(c, false, false).english.size(), 5u);
  // What is left out, per language; nothing when every row is English.
  LabeledCorpus mixed = notebook.english;
  mixed.push_back_from(corpus(3, "fr", 2), 0);
  mixed.push_back_from(corpus(3, "es", 2), 1);
  mixed.push_back_from(corpus(3, "es", 2), 2);
  EXPECT_EQ(keep_english_rows(mixed), "es 2, fr 1");
  EXPECT_EQ(mixed.size(), 2u);
  EXPECT_EQ(keep_english_rows(mixed), "");
}

TEST(NotebookFiles, TheMultilingualFileHoldsNoEnglishAndBothLabelsInEveryLanguage) {
  test::TempDir dir;
  const std::string english = "comment_text,toxic\nan English text,0\n";
  Config c =
      files_config(dir, english, "comment_text,toxic,lang\nuno,0,es\ndos,1,es\nthree,0,en\n");
  std::string e = test::error_of([&] { load_datasets(c, false, false); });
  EXPECT_NE(e.find("data.multilingual_csv: 1 rows are in language 'en'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected none"), std::string::npos) << e;
  EXPECT_EQ(e.find("every row"), std::string::npos) << e;
  // A language column under another name: every row counts as English, and the message says
  // why rather than only "rows are in language 'en'".
  c = files_config(dir, english, "comment_text,toxic,language\nuno,0,es\ndos,1,es\n");
  e = test::error_of([&] { load_datasets(c, false, false); });
  EXPECT_NE(e.find("2 rows are in language 'en' (the first is data row 0) (every row: a file "
                   "without the column named by data.lang_field is English)"),
            std::string::npos)
      << e;
  c = files_config(dir, english, "comment_text,toxic,lang\nuno,0,es\ndos,1,es\ntre,1,it\n");
  e = test::error_of([&] { load_datasets(c, false, false); });
  EXPECT_NE(e.find("data.multilingual_csv: language 'it' has 1 rows, all toxic, expected both"),
            std::string::npos)
      << e;
  c = files_config(dir, english, kMultilingualCsv);
  EXPECT_EQ(test::error_of([&] { load_datasets(c, false, false); }), "(no error)");
  // The balanced sampler is not the notebook: it takes such files as they are.
  c = files_config(dir, english, "comment_text,toxic,lang\nuno,0,es\nthree,0,en\n");
  c.data.pair_sampler = PairSampler::kBalanced;
  EXPECT_EQ(test::error_of([&] { load_datasets(c, false, false); }), "(no error)");
}

// An English corpus: `normal` normal and `toxic` toxic texts longer than 10 characters, plus
// `short_each` texts of 10 characters or fewer of each label (never sampled).
LabeledCorpus english(size_t normal, size_t toxic, size_t short_each = 0) {
  LabeledCorpus c;
  auto add = [&](const std::string& text, int label) {
    c.texts.push_back(text);
    c.labels.push_back(static_cast<uint8_t>(label));
    c.langs.push_back("en");
    c.rows.push_back(static_cast<int64_t>(c.rows.size()));
  };
  for (size_t i = 0; i < normal; ++i)
    add("normal text " + std::to_string(i) + std::string(i % 41, 'n'), 0);
  for (size_t i = 0; i < toxic; ++i)
    add("toxic text " + std::to_string(i) + std::string(i % 29, 't'), 1);
  for (size_t i = 0; i < short_each; ++i) add("s" + std::to_string(i % 100), 0);
  for (size_t i = 0; i < short_each; ++i) add("t" + std::to_string(i % 100), 1);
  return c;
}

PairOptions notebook(size_t n, uint64_t seed = 7) {
  PairOptions o;
  o.n_pairs = n;
  o.seed = seed;
  o.min_chars = 10;
  o.sampler = PairSampler::kNotebook;
  return o;
}

struct Counts {
  size_t tt = 0, nn = 0, nt = 0;
};

// Checks the invariants every notebook pair list holds and counts the categories: no text
// with itself, no unordered pair twice, labels from the texts, no short text, and per
// category and side no text twice (the sides of normal-toxic are its normal and toxic text).
Counts check_notebook_pairs(const LabeledCorpus& c, const PairList& pairs) {
  Counts n;
  std::set<std::pair<uint32_t, uint32_t>> seen;
  std::set<uint32_t> sides[3][2];
  for (const auto& p : pairs) {
    EXPECT_NE(p.left, p.right);
    EXPECT_TRUE(seen.insert({std::min(p.left, p.right), std::max(p.left, p.right)}).second);
    EXPECT_GT(c.texts[p.left].size(), 10u);
    EXPECT_GT(c.texts[p.right].size(), 10u);
    const int a = c.labels[p.left], b = c.labels[p.right];
    EXPECT_EQ(p.label, a == b ? 1 : 0);
    const PairCategory cat = category_of(c, p);
    const int k = static_cast<int>(cat);
    if (cat == PairCategory::kNormalToxic) {
      EXPECT_TRUE(sides[k][0].insert(a ? p.right : p.left).second) << "normal text repeats";
      EXPECT_TRUE(sides[k][1].insert(a ? p.left : p.right).second) << "toxic text repeats";
      ++n.nt;
    } else {
      EXPECT_TRUE(sides[k][0].insert(p.left).second) << category_name(cat) << " left repeats";
      EXPECT_TRUE(sides[k][1].insert(p.right).second) << category_name(cat) << " right repeats";
      ++(cat == PairCategory::kToxicToxic ? n.tt : n.nn);
    }
  }
  return n;
}

// The notebook's rules for one category: each side takes min(2 x it, pool), or the whole pool
// when it is not larger than it; both are cut to the shorter; at most `it` pairs come out.
uint64_t side(uint64_t pool, uint64_t it) {
  return pool > it ? std::min(2 * it, pool) : pool;
}
uint64_t candidates(uint64_t left_pool, uint64_t right_pool, uint64_t it) {
  return std::min(side(left_pool, it), side(right_pool, it));
}

TEST(NotebookPairs, CountsFollowTheNotebooksRulesWhenTheToxicTextsRunShort) {
  // 4000 normal and 400 toxic sampleable texts, 1000 pairs wanted: iterations 250, 250, 500.
  const uint64_t n = 1000, normal = 4000, toxic = 400;
  LabeledCorpus en = english(normal, toxic, 300);
  PairReport report;
  auto pairs = build_pairs(en, notebook(n), &report);
  Counts got = check_notebook_pairs(en, pairs);
  const uint64_t it_tt = n / 4, it_nn = (2 * n) / 4 - n / 4, it_nt = n - (2 * n) / 4;
  // toxic-toxic: 400 > 250, each side 400 texts; 250 pairs reached (the self-pairs and
  // reversed repeats lost among 400 candidates are a handful).
  EXPECT_EQ(got.tt, std::min(it_tt, candidates(toxic, toxic, it_tt)));
  EXPECT_EQ(got.nn, std::min(it_nn, candidates(normal, normal, it_nn)));
  // normal-toxic: the toxic side is its whole pool (400 <= 500), the cap bites: 400 pairs.
  EXPECT_EQ(got.nt, std::min(it_nt, candidates(normal, toxic, it_nt)));
  EXPECT_EQ(got.nt, 400u);
  EXPECT_EQ(pairs.size(), 900u);
  ASSERT_EQ(report.per_language_pair.size(), 1u);
  const auto& r = report.per_language_pair[0];
  EXPECT_EQ(r.toxic_toxic, got.tt);
  EXPECT_EQ(r.normal_normal, got.nn);
  EXPECT_EQ(r.normal_toxic, got.nt);
  EXPECT_EQ(r.wanted_normal_toxic, it_nt);
  EXPECT_EQ(report.total(), pairs.size());
  EXPECT_EQ(report.same(), got.tt + got.nn);
  // Normal-toxic pairs come in both orders.
  size_t toxic_left = 0;
  for (const auto& p : pairs) toxic_left += p.label == 0 && en.labels[p.left] == 1;
  EXPECT_GT(toxic_left, 150u);
  EXPECT_LT(toxic_left, 250u);
}

TEST(NotebookPairs, AWholeToxicPoolPairedWithItselfLosesOnlySelfPairsAndRepeats) {
  // 150 toxic texts <= 250 iterations: toxic-toxic zips the whole pool with a shuffle of
  // itself, so every toxic text is on each side once and pairs are lost only to a text met
  // by itself or a pair met reversed; normal-toxic gets exactly 150.
  const uint64_t n = 1000, toxic = 150;
  LabeledCorpus en = english(3000, toxic, 50);
  auto pairs = build_pairs(en, notebook(n, 3), nullptr);
  Counts got = check_notebook_pairs(en, pairs);
  EXPECT_LE(got.tt, toxic);
  EXPECT_GE(got.tt, toxic - 10);
  EXPECT_EQ(got.nn, 250u);
  EXPECT_EQ(got.nt, toxic);
}

TEST(NotebookPairs, EveryLanguagePairSortedAndCeilOfTheShare) {
  LabeledCorpus m = corpus(400, "it", 3);
  LabeledCorpus es = corpus(400, "es", 3);
  for (size_t i = 0; i < es.size(); ++i) m.push_back_from(es, i);
  PairReport report;
  auto pairs = build_pairs(m, notebook(601), &report);
  ASSERT_EQ(report.per_language_pair.size(), 3u);  // es-es, es-it, it-it: sorted
  EXPECT_EQ(report.per_language_pair[0].left_lang, "es");
  EXPECT_EQ(report.per_language_pair[0].right_lang, "es");
  EXPECT_EQ(report.per_language_pair[1].right_lang, "it");
  EXPECT_EQ(report.per_language_pair[2].left_lang, "it");
  for (const auto& c : report.per_language_pair) {  // n = ceil(601 / 3) = 201
    EXPECT_EQ(c.wanted_toxic_toxic, 50u);
    EXPECT_EQ(c.wanted_normal_normal, 50u);
    EXPECT_EQ(c.wanted_normal_toxic, 101u);
  }
  size_t cross = 0;
  for (const auto& p : pairs) cross += m.langs[p.left] != m.langs[p.right];
  EXPECT_EQ(cross, report.per_language_pair[1].toxic_toxic +
                       report.per_language_pair[1].normal_normal +
                       report.per_language_pair[1].normal_toxic);
  EXPECT_EQ(pairs.size(), report.total());
}

TEST(NotebookPairs, SameForAnyThreadCountAndRankCount) {
  LabeledCorpus en = english(3000, 250, 20);
  PairOptions one = notebook(1000, 11), many = notebook(1000, 11);
  one.threads = 1;
  many.threads = 3;
  auto a = build_pairs(en, one), b = build_pairs(en, many);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(a[i].left == b[i].left && a[i].right == b[i].right && a[i].label == b[i].label);
  // Ranks slice one global sequence: 1, 2, 3 and 4 ranks consume the same pairs in order.
  const uint64_t global_batch = 12, steps = a.size() / global_batch + 3;  // wraps around
  for (int world : {1, 2, 3, 4}) {
    const uint64_t per_rank = global_batch / world;
    uint64_t k = 0;
    for (uint64_t step = 0; step < steps; ++step)
      for (int r = 0; r < world; ++r) {
        PairRange range = rank_range(step * global_batch, r, per_rank);
        for (uint64_t p = range.begin; p < range.begin + range.count; ++p, ++k) {
          const Pair& x = pair_at(a, p);
          const Pair& y = b[k % b.size()];
          ASSERT_TRUE(x.left == y.left && x.right == y.right) << world << " " << k;
        }
      }
  }
}

TEST(NotebookPairs, DeterministicFromSeedAlone) {
  LabeledCorpus en = english(1000, 200);
  auto a = build_pairs(en, notebook(300, 3)), b = build_pairs(en, notebook(300, 3)),
       c = build_pairs(en, notebook(300, 4));
  ASSERT_EQ(a.size(), b.size());
  bool all_equal = true, any_diff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    all_equal &= a[i].left == b[i].left && a[i].right == b[i].right;
    any_diff |= i < c.size() && a[i].left != c[i].left;
  }
  EXPECT_TRUE(all_equal);
  EXPECT_TRUE(any_diff);
}

TEST(NotebookPairs, NoSampleableTextIsAClearError) {
  LabeledCorpus en = english(0, 0, 30);  // only texts of <= 10 characters
  try {
    build_pairs(en, notebook(100));
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("longer than 10"), std::string::npos) << e.what();
  }
}

TEST(NotebookPairs, EveryLanguageAndLabelSampledHasATextLongerThan100Characters) {
  // The notebook's generate_text_probabilities asserts max_chars_number > 100, in characters
  // (code points): 100 two-byte characters are not enough, 101 are.
  Config c = default_config();
  c.data.train_pairs = 100;
  c.data.val_pairs = 20;
  CorpusSplit split;
  split.train = english(300, 60);  // texts of at most 55 characters
  split.validation = english(300, 60);
  std::string e = test::error_of([&] { training_pairs(c, split); });
  EXPECT_NE(e.find("data.train_csv (its training corpus): the longest normal text in 'en' has 55 "
                   "characters, expected more than 100"),
            std::string::npos)
      << e;
  auto add = [](LabeledCorpus& corpus, size_t characters, int label) {
    std::string text;
    for (size_t i = 0; i < characters; ++i) text += "\xc3\xa9";  // é
    corpus.texts.push_back(text);
    corpus.labels.push_back(static_cast<uint8_t>(label));
    corpus.langs.push_back("en");
    corpus.rows.push_back(static_cast<int64_t>(corpus.rows.size()));
  };
  add(split.train, 101, 0);
  add(split.train, 100, 1);
  e = test::error_of([&] { training_pairs(c, split); });
  EXPECT_NE(e.find("the longest toxic text in 'en' has 100 characters"), std::string::npos) << e;
  add(split.train, 101, 1);
  EXPECT_EQ(test::error_of([&] { training_pairs(c, split); }), "(no error)");
  e = test::error_of([&] { validation_pairs(c, split); });
  EXPECT_NE(e.find("data.train_csv (its validation corpus)"), std::string::npos) << e;
  // The balanced sampler does not weigh by the notebook's rule: short texts are fine.
  c.data.pair_sampler = PairSampler::kBalanced;
  EXPECT_EQ(test::error_of([&] { validation_pairs(c, split); }), "(no error)");
}

TEST(NotebookPairs, CsvAndFingerprint) {
  LabeledCorpus en = english(200, 40);
  PairReport report;
  auto pairs = build_pairs(en, notebook(100), &report);
  test::TempDir dir;
  write_pairs_csv(dir.path("p.csv"), en, pairs);
  const std::string csv = test::read_file(dir.path("p.csv"));
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "index,left_row,right_row,left_lang,right_lang,label,category");
  EXPECT_EQ(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')), pairs.size() + 1);
  const Pair& p = pairs[0];
  const std::string first =
      "0," + std::to_string(en.rows[p.left]) + "," + std::to_string(en.rows[p.right]) + ",en,en," +
      std::to_string(int(p.label)) + "," + category_name(category_of(en, p)) + "\n";
  EXPECT_EQ(csv.substr(csv.find('\n') + 1, first.size()), first);
  EXPECT_EQ(report.fingerprint, pairs_fingerprint(en, pairs));
  EXPECT_EQ(report.fingerprint.size(), 16u);
}

PairOptions balanced(size_t n, uint64_t seed) {
  PairOptions o = notebook(n, seed);
  o.sampler = PairSampler::kBalanced;
  return o;
}

TEST(BalancedPairs, CategoriesLabelsAndUniqueness) {
  LabeledCorpus en = corpus(2000, "en", 5);
  PairReport report;
  auto pairs = build_pairs(en, balanced(1000, 7), &report);
  ASSERT_EQ(pairs.size(), 1000u);
  size_t tt = 0, nn = 0, nt = 0;
  std::set<std::pair<uint32_t, uint32_t>> seen;
  for (const auto& p : pairs) {
    EXPECT_NE(p.left, p.right);
    EXPECT_TRUE(seen.insert({std::min(p.left, p.right), std::max(p.left, p.right)}).second);
    int a = en.labels[p.left], b = en.labels[p.right];
    EXPECT_EQ(p.label, a == b ? 1 : 0);
    (a && b ? tt : (!a && !b ? nn : nt))++;
    EXPECT_GT(en.texts[p.left].size(), 10u);
  }
  EXPECT_EQ(tt, 250u);
  EXPECT_EQ(nn, 250u);
  EXPECT_EQ(nt, 500u);
  ASSERT_EQ(report.per_language_pair.size(), 1u);
  EXPECT_EQ(report.per_language_pair[0].normal_toxic, 500u);
}

TEST(BalancedPairs, EveryLanguagePairIncludingSameLanguage) {
  LabeledCorpus m = corpus(400, "es", 3);
  LabeledCorpus it = corpus(400, "it", 3);
  for (size_t i = 0; i < it.size(); ++i) m.push_back_from(it, i);
  PairReport report;
  auto pairs = build_pairs(m, balanced(600, 1), &report);
  ASSERT_EQ(report.per_language_pair.size(), 3u);  // es-es, es-it, it-it
  size_t cross = 0;
  for (const auto& p : pairs) cross += m.langs[p.left] != m.langs[p.right];
  EXPECT_EQ(cross, 200u);
}

TEST(BalancedPairs, DeterministicFromSeedAlone) {
  LabeledCorpus en = corpus(500, "en", 4);
  auto a = build_pairs(en, balanced(300, 3)), b = build_pairs(en, balanced(300, 3)),
       c = build_pairs(en, balanced(300, 4));
  ASSERT_EQ(a.size(), b.size());
  bool all_equal = true, any_diff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    all_equal &= a[i].left == b[i].left && a[i].right == b[i].right;
    any_diff |= a[i].left != c[i].left;
  }
  EXPECT_TRUE(all_equal);
  EXPECT_TRUE(any_diff);
}

TEST(BalancedPairs, TooFewTextsIsAClearError) {
  LabeledCorpus en = corpus(20, "en", 5);  // 4 toxic texts: at most 6 toxic-toxic pairs
  try {
    build_pairs(en, balanced(100, 1));
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("toxic-toxic"), std::string::npos) << e.what();
  }
}

TEST(Pairs, RankSlicesConcatenateToTheGlobalSequenceForAnyWorldSize) {
  LabeledCorpus en = corpus(600, "en", 4);
  auto pairs = build_pairs(en, balanced(240, 5));
  const uint64_t global_batch = 24, steps = 25;  // wraps around the 240 pairs
  for (int world : {1, 2, 3, 4}) {
    const uint64_t per_rank = global_batch / world;
    std::vector<uint64_t> seen;
    for (uint64_t step = 0; step < steps; ++step) {
      const uint64_t consumed = step * global_batch;
      for (int r = 0; r < world; ++r) {
        PairRange range = rank_range(consumed, r, per_rank);
        for (uint64_t p = range.begin; p < range.begin + range.count; ++p) seen.push_back(p);
      }
    }
    ASSERT_EQ(seen.size(), steps * global_batch) << world;
    for (uint64_t i = 0; i < seen.size(); ++i) {
      ASSERT_EQ(seen[i], i) << "world " << world;
      EXPECT_EQ(&pair_at(pairs, seen[i]), &pairs[i % pairs.size()]);
    }
  }
}

TEST(Pairs, ResumingWithAnotherWorldSizeContinuesTheSameSequence) {
  // 3 steps on 2 ranks x 4, then 2 steps on 4 ranks x 2: positions 0..39 in order.
  std::vector<uint64_t> seen;
  uint64_t consumed = 0;
  for (int step = 0; step < 3; ++step, consumed += 8)
    for (int r = 0; r < 2; ++r)
      for (uint64_t k = 0; k < 4; ++k) seen.push_back(rank_range(consumed, r, 4).begin + k);
  for (int step = 0; step < 2; ++step, consumed += 8)
    for (int r = 0; r < 4; ++r)
      for (uint64_t k = 0; k < 2; ++k) seen.push_back(rank_range(consumed, r, 2).begin + k);
  for (uint64_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
}

// A label field or threshold that marks no text toxic leaves pairs of one category: refused,
// naming the source and the language, rather than trained on silently.
TEST(Pairs, ACorpusWithOneLabelOnlyIsRefusedNamingTheLanguage) {
  EXPECT_NO_THROW(check_both_labels(corpus(50, "en", 1000000), "data.train_csv"));  // row 0 toxic
  LabeledCorpus c;  // the same texts, none toxic
  for (size_t i = 0; i < 50; ++i) {
    c.texts.push_back("en text number " + std::to_string(i));
    c.labels.push_back(0);
    c.langs.push_back("en");
    c.rows.push_back(static_cast<int64_t>(i));
  }
  try {
    check_both_labels(c, "data.train_csv");
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("data.train_csv: all 50 texts in 'en' are normal, "
                                         "expected both labels"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sx::data

// Synthetic Jigsaw-shaped data (tests, benchmarks, the demo): the three files named and
// laid out as Jigsaw's, with a realistic length distribution, several languages, toxic and
// normal texts a model can learn to tell apart, and quoted fields holding commas, quotes
// and newlines. Deterministic from the seed.
#pragma once

#include <cstdint>
#include <string>

namespace sx::data {

struct SynthSummary {
  std::string train_csv, multilingual_csv, test_csv;
  size_t train_rows = 0, multilingual_rows = 0, test_rows = 0;
};

// `rows` English training rows; the multilingual file gets es/it/tr (about rows/100 each,
// so the notebook's 10x split rule holds) and the test file six languages. `toxic_percent`
// of the English rows are toxic (Jigsaw's English corpus: about 8). Each file is written
// atomically; without `overwrite`, files already in out_dir are a UserError (nothing written).
SynthSummary write_synthetic_jigsaw(const std::string& out_dir, size_t rows, uint64_t seed,
                                    int toxic_percent = 12, bool overwrite = true);

// The same three files with real texts (`bench data`'s default corpus): the texts of
// `texts_csv`, a lang,text CSV as tools/make_text_corpus.py writes it. The training file
// holds `rows` texts (0: each text once) of every language, in an order shuffled from the
// seed (reshuffled for each further pass); the multilingual and test files hold texts drawn
// from each language other than en. Labels are drawn as the synthesizer draws them (8% toxic):
// the files are for measuring the data path, not for learning.
SynthSummary write_text_jigsaw(const std::string& out_dir, const std::string& texts_csv,
                               size_t rows, uint64_t seed, bool overwrite = true);

}  // namespace sx::data

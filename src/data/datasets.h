// The data layer driven by the configuration's `data` and `tokenizer` sections: what the
// CLI and the trainer call, so both read files and seed pair streams the same way.
#pragma once

#include <optional>
#include <vector>

#include "core/config.h"
#include "data/corpus.h"
#include "data/pairs.h"
#include "data/split.h"
#include "data/tokenizer.h"

namespace sx::data {

struct Datasets {
  LabeledCorpus english;
  LabeledCorpus multilingual;
  std::optional<TestCorpus> test;
};

// Loads data.train_csv, data.multilingual_csv and (with_test and set) data.test_csv,
// logging each file's report. `progress`: show loading progress (rank 0). With
// data.pair_sampler: notebook the files are read as the notebook reads them: the English
// file's rows in other languages are left out (a warning counts them), and a multilingual
// file with `en` rows or a language of one label is a UserError (split.h).
Datasets load_datasets(const Config& config, bool with_test, bool progress = true);

// load_datasets' checks of each file's header line alone (check_header, jigsaw.h): a wrong file
// refused in an instant.
void check_headers(const Config& config, bool with_test);

// tokenizer.model, or when it is not set sentencepiece.bpe.model in model.pretrained (where HF
// keeps it; the choice is logged). Throws UserError when neither gives a file.
TokenizerOptions tokenizer_options(const Config& config);
std::string tokenizer_model_path(const Config& config);

// The training and validation pair sequences of a split (independent seeded streams). With
// data.pair_sampler: notebook, a language and label of the corpus without a text longer than
// 100 characters is a UserError (pairs.h, check_notebook_text_lengths).
PairList training_pairs(const Config& config, const CorpusSplit& split,
                        PairReport* report = nullptr);
PairList validation_pairs(const Config& config, const CorpusSplit& split,
                          PairReport* report = nullptr);

}  // namespace sx::data

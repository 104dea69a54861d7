// The notebook's corpus split. The English corpus is shuffled (seeded); its first
// `max_size` texts (the size of the largest non-English language) join the multilingual
// set as a fourth language "en"; the next `val_fraction` of the rest, rounded as the notebook's
// int(round(0.1 * n)) (half to even), is the validation corpus; the rest is the Siamese
// training corpus.
#pragma once

#include <cstdint>
#include <string>

#include "data/corpus.h"

namespace sx::data {

struct CorpusSplit {
  LabeledCorpus multilingual;  // non-English rows in file order, then the English share
  LabeledCorpus validation;    // English, for validation pairs
  LabeledCorpus train;         // English, for training pairs
  size_t max_size = 0;         // size of the largest non-English language
  std::string largest_language;
};

// Throws UserError when the English corpus is smaller than 10 x max_size (notebook rule).
CorpusSplit split_corpus(const LabeledCorpus& english, const LabeledCorpus& multilingual,
                         uint64_t seed, double val_fraction);

// The notebook's assertions on its multilingual file (data.multilingual_csv): no row in `en`
// (its English texts come from the English file) and both labels in every language (its
// per-language ROC-AUC needs them). Throws a UserError naming the key and what was found.
void check_notebook_multilingual(const LabeledCorpus& multilingual);

// The notebook's English corpus: keeps the rows of `english` (data.train_csv) in `en`. A file
// with a language column may hold others; they are left out. Returns how many were, per
// language ("es 120, fr 3"), or "" when none were (the corpus is then untouched).
std::string keep_english_rows(LabeledCorpus& english);

}  // namespace sx::data

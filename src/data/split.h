// The notebook's corpus split. The English corpus is shuffled (seeded); its first
// `max_size` texts (the size of the largest non-English language) join the multilingual
// set as a fourth language "en"; the next `val_fraction` of the rest is the validation
// corpus; the rest is the Siamese training corpus.
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

}  // namespace sx::data

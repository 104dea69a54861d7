// Siamese pairs as the notebook's build_siamese_dataset: for every language pair (including
// same-language), a quarter toxic-toxic (label 1), a quarter normal-normal (label 1) and a
// half normal-toxic in random order (label 0); texts drawn with
// generate_text_probabilities' weights; no text paired with itself, no unordered pair twice;
// the whole list shuffled. Deterministic from the seed alone.
//
// The global pair sequence is defined once and is independent of the number of ranks:
// position p (counting every pair consumed since the start, across epochs) is
// pairs[p % pairs.size()]. A global batch at position `consumed` gives rank r of W the
// positions [consumed + r * per_rank, consumed + (r + 1) * per_rank).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/corpus.h"

namespace sx::data {

struct Pair {
  uint32_t left;   // index into the corpus
  uint32_t right;  // index into the corpus
  uint8_t label;   // 1 = same class
};

// generate_text_probabilities: weight 10 x max_chars - chars (shorter texts likelier),
// normalised, floored at 0.5 / n, texts of min_chars characters or fewer never drawn.
// Lengths are in code points, as Python's len(). Returns probabilities (sum 1).
std::vector<double> text_probabilities(const std::vector<size_t>& lengths, size_t min_chars);

struct PairCategoryCount {
  std::string left_lang, right_lang;
  uint64_t toxic_toxic = 0, normal_normal = 0, normal_toxic = 0;
};

struct PairReport {
  std::vector<PairCategoryCount> per_language_pair;
  void log(const std::string& name) const;
};

std::vector<Pair> build_pairs(const LabeledCorpus& corpus, size_t n_pairs, uint64_t seed,
                              size_t min_chars, PairReport* report = nullptr);

// Global positions a rank consumes in the batch that starts at `consumed`.
struct PairRange {
  uint64_t begin;
  uint64_t count;
};
PairRange rank_range(uint64_t consumed, int rank, uint64_t per_rank);
inline const Pair& pair_at(const std::vector<Pair>& pairs, uint64_t position) {
  return pairs[position % pairs.size()];
}

}  // namespace sx::data

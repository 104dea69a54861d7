// Siamese pairs, as the notebook's build_siamese_dataset builds them (the `notebook` sampler,
// the default) or balanced to exactly the requested counts (the `balanced` sampler).
//
// notebook: the languages sorted, every unordered language pair once (same-language
// included), n = ceil(n_pairs / language pairs) each, in three categories with the
// notebook's `iterations`: toxic-toxic n // 4, normal-normal (2n) // 4 - n // 4 and
// normal-toxic n - (2n) // 4. For a category, each side draws min(2 x iterations, pool)
// distinct texts without replacement, weighted by generate_text_probabilities (or takes its
// whole pool, unweighted, when the pool is not larger than `iterations`); both sides are
// cut to the same length, shuffled, zipped; a text paired with itself and a pair already
// used (in either order) are skipped; the category stops at `iterations` or when the zipped
// candidates run out. A category can therefore end short: on Jigsaw's English corpus the
// normal-toxic pairs are capped by the number of toxic texts. Normal-toxic pairs of `a-b`
// take the normal text from a, the toxic one from b, in random order (left normal or left
// toxic); the whole list is shuffled once. Pools hold the texts longer than min_chars.
//
// balanced: draws with replacement (alias tables) until every category has exactly its share
// (n_pairs / language pairs, a quarter toxic-toxic, a quarter normal-normal, a half
// normal-toxic); no text paired with itself, no unordered pair twice.
//
// Both are deterministic from the seed alone and independent of threads and ranks. The
// global pair sequence is defined once: position p (counting every pair consumed since the
// start, across epochs) is pairs[p % pairs.size()]. A global batch at position `consumed`
// gives rank r of W the positions [consumed + r * per_rank, consumed + (r + 1) * per_rank).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "data/corpus.h"

namespace sx::data {

struct Pair {
  uint32_t left;   // index into the corpus
  uint32_t right;  // index into the corpus
  uint8_t label;   // 1 = same class
};

// A pair sequence: built here, or viewed in memory the ranks of a node share (node_share.h).
using PairList = Column<Pair>;

using sx::PairSampler;  // data.pair_sampler (core/config.h)

enum class PairCategory { kToxicToxic, kNormalNormal, kNormalToxic };
// The category of a pair from its texts' labels.
PairCategory category_of(const LabeledCorpus& corpus, const Pair& pair);
const char* category_name(PairCategory category);  // toxic-toxic, normal-normal, normal-toxic

// generate_text_probabilities: texts of min_chars characters or fewer are removed (probability
// 0); the others get weight 10 x max_chars - chars (shorter texts likelier), normalised,
// floored at 0.5 / n where n counts the remaining texts, and normalised again. Lengths are
// in code points of the stripped text, as Python's len(). Returns probabilities (sum 1, or
// all 0 when no text remains).
std::vector<double> text_probabilities(const std::vector<size_t>& lengths, size_t min_chars);

// Weighted sampling without replacement (Efraimidis-Spirakis: each item gets the key
// log(u) / w with u uniform in (0, 1), the k largest keys win): the positions of `k` of the
// items with weights `weights` (all > 0), in ascending order. The chosen set is distributed
// as the first k of successive weighted draws (np.random.choice(..., replace=False, p=w)).
std::vector<uint32_t> weighted_sample(const std::vector<double>& weights, size_t k, Rng& rng);

struct PairCategoryCount {
  std::string left_lang, right_lang;
  uint64_t toxic_toxic = 0, normal_normal = 0, normal_toxic = 0;  // pairs made
  // The notebook's `iterations` (pairs asked for) per category.
  uint64_t wanted_toxic_toxic = 0, wanted_normal_normal = 0, wanted_normal_toxic = 0;
};

struct PairReport {
  std::vector<PairCategoryCount> per_language_pair;
  std::string fingerprint;  // pairs_fingerprint of the sequence
  uint64_t total() const;
  uint64_t same() const;  // label 1 (toxic-toxic and normal-normal)
  void log(const std::string& name) const;
};

struct PairOptions {
  size_t n_pairs = 0;
  uint64_t seed = 0;
  size_t min_chars = 10;
  PairSampler sampler = PairSampler::kNotebook;
  size_t threads = 0;  // 0 = all cores; the result does not depend on it
};

PairList build_pairs(const LabeledCorpus& corpus, const PairOptions& options,
                     PairReport* report = nullptr);

// A UserError naming `source` when a language of `corpus` has texts of one label only: its pairs
// would all be of one category (a label field or threshold that marks nothing toxic).
void check_both_labels(const LabeledCorpus& corpus, const std::string& source);

// The notebook's generate_text_probabilities asserts max_chars_number > 100: in every language
// and label of a corpus it samples, the longest text has more than 100 characters (code points
// of the stripped text). Throws a UserError naming `source` ("data.train_csv, training
// corpus"), the language and label, and the longest length found.
void check_notebook_text_lengths(const LabeledCorpus& corpus, const std::string& source);

// The pair sequence as CSV: index, left_row, right_row (data-row numbers in the source file),
// left_lang, right_lang, label, category. Throws UserError when the file cannot be written.
void write_pairs_csv(const std::string& path, const LabeledCorpus& corpus, const PairList& pairs);
// The same CSV's lines, header first, each ending in '\n', handed to `sink` in order.
void each_pairs_csv_line(const LabeledCorpus& corpus, const PairList& pairs,
                         const std::function<void(std::string_view)>& sink);
// FNV-1a (64 bit, hex) of the lines "left_row,right_row,label\n" of the sequence in order: the
// trainer logs it, so a CSV written by `data pairs` can be checked against what it consumed.
std::string pairs_fingerprint(const LabeledCorpus& corpus, const PairList& pairs);

// Global positions a rank consumes in the batch that starts at `consumed`.
struct PairRange {
  uint64_t begin;
  uint64_t count;
};
PairRange rank_range(uint64_t consumed, int rank, uint64_t per_rank);
inline const Pair& pair_at(const PairList& pairs, uint64_t position) {
  return pairs[position % pairs.size()];
}

}  // namespace sx::data

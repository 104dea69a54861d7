#include "data/split.h"

#include <array>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace sx::data {

CorpusSplit split_corpus(const LabeledCorpus& english, const LabeledCorpus& multilingual,
                         uint64_t seed, double val_fraction) {
  CorpusSplit out;
  std::map<std::string, size_t> per_language;
  for (size_t i = 0; i < multilingual.size(); ++i) ++per_language[multilingual.langs[i]];
  for (const auto& [lang, n] : per_language) {
    if (lang == "en") continue;
    if (n > out.max_size) out.max_size = n, out.largest_language = lang;
  }
  if (out.max_size == 0)
    throw UserError(
        "data.multilingual_csv: no non-English rows; the split needs at least one "
        "other language");
  if (english.size() < 10 * out.max_size)
    throw UserError("data.train_csv: " + std::to_string(english.size()) +
                    " usable English texts, but the split needs at least 10 x " +
                    std::to_string(out.max_size) + " (the size of the largest other language, '" +
                    out.largest_language + "') = " + std::to_string(10 * out.max_size));

  std::vector<uint32_t> order(english.size());
  std::iota(order.begin(), order.end(), 0u);
  Rng rng(mix_seed({seed, 0x5b117}));  // the split's own stream
  rng.shuffle(order);

  out.multilingual.reserve(multilingual.size() + out.max_size);
  out.multilingual = multilingual;
  size_t pos = 0;
  for (; pos < out.max_size; ++pos) {
    out.multilingual.push_back_from(english, order[pos], "en");
  }
  const size_t rest = english.size() - out.max_size;
  // The notebook's int(round(0.1 * n)): Python rounds half to even, as nearbyint does in the
  // default rounding mode (95.9 gives 96, 94.5 gives 94).
  const size_t n_val =
      static_cast<size_t>(std::nearbyint(static_cast<double>(rest) * val_fraction));
  out.validation.reserve(n_val);
  for (size_t k = 0; k < n_val; ++k, ++pos) out.validation.push_back_from(english, order[pos]);
  out.train.reserve(english.size() - pos);
  for (; pos < english.size(); ++pos) out.train.push_back_from(english, order[pos]);
  return out;
}

void check_notebook_multilingual(const LabeledCorpus& multilingual) {
  const auto per_language = multilingual.label_counts();  // rows per label
  const auto en = per_language.find("en");
  const size_t english = en == per_language.end() ? 0 : en->second[0] + en->second[1];
  int64_t first_english_row = -1;
  for (size_t i = 0; i < multilingual.size() && first_english_row < 0; ++i)
    if (multilingual.langs[i] == "en") first_english_row = multilingual.rows[i];
  // Every row English: most likely no column named data.lang_field, whose rows count as 'en'.
  const std::string no_column =
      english == multilingual.size()
          ? " (every row: a file without the column named by data.lang_field is English)"
          : "";
  if (english > 0)
    throw UserError("data.multilingual_csv: " + std::to_string(english) +
                    " rows are in language 'en' (the first is data row " +
                    std::to_string(first_english_row) + ")" + no_column +
                    ", expected none: with data.pair_sampler: notebook the English texts come "
                    "from data.train_csv alone, as in the notebook");
  for (const auto& [lang, counts] : per_language)
    if (counts[0] == 0 || counts[1] == 0)
      throw UserError("data.multilingual_csv: language '" + lang + "' has " +
                      std::to_string(counts[0] + counts[1]) + " rows, all " +
                      (counts[0] ? "normal" : "toxic") +
                      ", expected both labels: with data.pair_sampler: notebook every language "
                      "needs toxic and normal texts, as in the notebook (its ROC-AUC per "
                      "language needs both)");
}

std::string keep_english_rows(LabeledCorpus& english) {
  std::map<std::string, size_t> others;
  for (size_t i = 0; i < english.size(); ++i)
    if (english.langs[i] != "en") ++others[english.langs[i]];
  if (others.empty()) return "";
  LabeledCorpus kept;
  kept.reserve(english.size());
  for (size_t i = 0; i < english.size(); ++i)
    if (english.langs[i] == "en") kept.push_back_from(english, i);
  english = std::move(kept);
  std::string left_out;
  for (const auto& [lang, n] : others)
    left_out += (left_out.empty() ? "" : ", ") + lang + " " + std::to_string(n);
  return left_out;
}

}  // namespace sx::data

#include "data/split.h"

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
  const size_t n_val = static_cast<size_t>(static_cast<double>(rest) * val_fraction);
  out.validation.reserve(n_val);
  for (size_t k = 0; k < n_val; ++k, ++pos) out.validation.push_back_from(english, order[pos]);
  out.train.reserve(english.size() - pos);
  for (; pos < english.size(); ++pos) out.train.push_back_from(english, order[pos]);
  return out;
}

}  // namespace sx::data

#include "data/pairs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_set>

#include "core/error.h"
#include "core/rng.h"
#include "data/text.h"

namespace sx::data {

std::vector<double> text_probabilities(const std::vector<size_t>& lengths, size_t min_chars) {
  const size_t n = lengths.size();
  std::vector<double> p(n, 0.0);
  if (n == 0) return p;
  const double max_chars = static_cast<double>(*std::max_element(lengths.begin(), lengths.end()));
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += p[i] = 10.0 * max_chars - static_cast<double>(lengths[i]);
  if (!(total > 0)) return p;
  const double floor = 0.5 / static_cast<double>(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    p[i] = lengths[i] <= min_chars ? 0.0 : std::max(p[i] / total, floor);
    sum += p[i];
  }
  if (sum > 0)
    for (double& x : p) x /= sum;
  return p;
}

namespace {

// Texts of one (language, label) with their draw table.
struct Pool {
  std::vector<uint32_t> members;
  std::vector<double> probabilities;
  size_t drawable = 0;  // members with non-zero probability
  std::unique_ptr<AliasTable> table;

  uint32_t draw(Rng& rng) const { return members[table->draw(rng)]; }
};

std::string pool_name(const std::string& lang, int label) {
  return lang + (label ? " toxic" : " normal");
}

}  // namespace

void PairReport::log(const std::string& name) const {
  for (const auto& c : per_language_pair)
    spdlog::info("{} pairs {}-{}: toxic-toxic {}, normal-normal {}, normal-toxic {}", name,
                 c.left_lang, c.right_lang, c.toxic_toxic, c.normal_normal, c.normal_toxic);
}

std::vector<Pair> build_pairs(const LabeledCorpus& corpus, size_t n_pairs, uint64_t seed,
                              size_t min_chars, PairReport* report) {
  if (corpus.size() >= UINT32_MAX) throw UserError("corpus too large for 32-bit pair indices");
  const std::vector<std::string> langs = corpus.languages();
  std::map<std::pair<std::string, int>, Pool> pools;
  for (size_t i = 0; i < corpus.size(); ++i)
    pools[{corpus.langs[i], corpus.labels[i]}].members.push_back(static_cast<uint32_t>(i));
  for (auto& [key, pool] : pools) {
    std::vector<size_t> lengths;
    lengths.reserve(pool.members.size());
    for (uint32_t i : pool.members) lengths.push_back(count_code_points(corpus.texts[i]));
    pool.probabilities = text_probabilities(lengths, min_chars);
    pool.drawable = std::count_if(pool.probabilities.begin(), pool.probabilities.end(),
                                  [](double p) { return p > 0; });
    if (pool.drawable) pool.table = std::make_unique<AliasTable>(pool.probabilities);
  }
  auto pool_of = [&](const std::string& lang, int label) -> const Pool& {
    auto it = pools.find({lang, label});
    static const Pool empty;
    return it == pools.end() ? empty : it->second;
  };

  std::vector<std::pair<std::string, std::string>> lang_pairs;
  for (size_t a = 0; a < langs.size(); ++a)
    for (size_t b = a; b < langs.size(); ++b) lang_pairs.emplace_back(langs[a], langs[b]);

  Rng rng(mix_seed({seed, 0x9a125}));
  std::vector<Pair> pairs;
  pairs.reserve(n_pairs);
  std::unordered_set<uint64_t> seen;
  seen.reserve(n_pairs * 2);
  PairReport local;
  PairReport& rep = report ? *report : local;
  rep.per_language_pair.clear();

  // Draws `count` distinct pairs from two pools; `swap_sides` randomises left/right order.
  auto draw = [&](const Pool& a, const Pool& b, const std::string& what, uint64_t count,
                  uint8_t label, bool random_order) {
    if (count == 0) return;
    const bool same = &a == &b;
    const double possible = same ? 0.5 * double(a.drawable) * double(a.drawable - (a.drawable > 0))
                                 : double(a.drawable) * double(b.drawable);
    if (possible < static_cast<double>(count))
      throw UserError("cannot build " + std::to_string(count) + " distinct " + what +
                      " pairs: too few sampleable texts (longer than " + std::to_string(min_chars) +
                      " characters); use more data or fewer pairs (data.train_pairs, "
                      "data.val_pairs)");
    uint64_t made = 0, attempts = 0;
    const uint64_t max_attempts = 50 * count + 1000;
    while (made < count) {
      if (++attempts > max_attempts)
        throw UserError("cannot build " + std::to_string(count) + " distinct " + what +
                        " pairs: the texts are too few for that many distinct pairs; use more "
                        "data or fewer pairs (data.train_pairs, data.val_pairs)");
      uint32_t x = a.draw(rng), y = b.draw(rng);
      if (x == y) continue;
      uint64_t key = (uint64_t(std::min(x, y)) << 32) | std::max(x, y);
      if (!seen.insert(key).second) continue;
      if (random_order && (rng.next() & 1)) std::swap(x, y);
      pairs.push_back({x, y, label});
      ++made;
    }
  };

  const uint64_t per_lang_pair = n_pairs / lang_pairs.size();
  uint64_t remainder = n_pairs % lang_pairs.size();
  for (const auto& [la, lb] : lang_pairs) {
    uint64_t n = per_lang_pair + (remainder ? (--remainder, 1) : 0);
    uint64_t tt = n / 4, nn = n / 4, nt = n - tt - nn;
    PairCategoryCount count{la, lb, tt, nn, nt};
    const std::string names = la + "-" + lb;
    draw(pool_of(la, 1), pool_of(lb, 1), names + " toxic-toxic", tt, 1, la != lb);
    draw(pool_of(la, 0), pool_of(lb, 0), names + " normal-normal", nn, 1, la != lb);
    // Normal-toxic: which language gives the normal text is random per pair when they differ.
    uint64_t nt_ab = la == lb ? nt : nt / 2 + (nt % 2);
    draw(pool_of(la, 0), pool_of(lb, 1), names + " normal-toxic", nt_ab, 0, true);
    if (la != lb)
      draw(pool_of(la, 1), pool_of(lb, 0), names + " toxic-normal", nt - nt_ab, 0, true);
    rep.per_language_pair.push_back(count);
  }
  rng.shuffle(pairs);
  return pairs;
}

PairRange rank_range(uint64_t consumed, int rank, uint64_t per_rank) {
  return {consumed + static_cast<uint64_t>(rank) * per_rank, per_rank};
}

}  // namespace sx::data

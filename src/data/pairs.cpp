#include "data/pairs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <unordered_set>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "data/text.h"

namespace sx::data {

PairCategory category_of(const LabeledCorpus& corpus, const Pair& pair) {
  const int toxic = corpus.labels[pair.left] + corpus.labels[pair.right];
  return toxic == 2 ? PairCategory::kToxicToxic
                    : (toxic == 0 ? PairCategory::kNormalNormal : PairCategory::kNormalToxic);
}

const char* category_name(PairCategory category) {
  switch (category) {
    case PairCategory::kToxicToxic:
      return "toxic-toxic";
    case PairCategory::kNormalNormal:
      return "normal-normal";
    case PairCategory::kNormalToxic:
      return "normal-toxic";
  }
  return "?";
}

std::vector<double> text_probabilities(const std::vector<size_t>& lengths, size_t min_chars) {
  std::vector<double> p(lengths.size(), 0.0);
  size_t kept = 0, max_chars = 0;
  for (size_t len : lengths)
    if (len > min_chars) ++kept, max_chars = std::max(max_chars, len);
  if (kept == 0) return p;
  double total = 0;
  for (size_t i = 0; i < lengths.size(); ++i)
    if (lengths[i] > min_chars)
      total += p[i] = 10.0 * static_cast<double>(max_chars) - static_cast<double>(lengths[i]);
  const double floor = 0.5 / static_cast<double>(kept);
  double sum = 0;
  for (size_t i = 0; i < lengths.size(); ++i)
    if (lengths[i] > min_chars) sum += p[i] = std::max(p[i] / total, floor);
  for (double& x : p) x /= sum;
  return p;
}

std::vector<uint32_t> weighted_sample(const std::vector<double>& weights, size_t k, Rng& rng) {
  const size_t n = weights.size();
  k = std::min(k, n);
  std::vector<std::pair<double, uint32_t>> keys(n);  // (key, position)
  for (size_t i = 0; i < n; ++i) {
    const double u = (static_cast<double>(rng.next() >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1)
    keys[i] = {std::log(u) / weights[i], static_cast<uint32_t>(i)};
  }
  auto larger = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::nth_element(keys.begin(), keys.begin() + static_cast<ptrdiff_t>(k), keys.end(), larger);
  std::vector<uint32_t> out(k);
  for (size_t i = 0; i < k; ++i) out[i] = keys[i].second;
  // Ascending positions: the result does not depend on how nth_element orders its output.
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t PairReport::total() const {
  uint64_t n = 0;
  for (const auto& c : per_language_pair) n += c.toxic_toxic + c.normal_normal + c.normal_toxic;
  return n;
}

uint64_t PairReport::same() const {
  uint64_t n = 0;
  for (const auto& c : per_language_pair) n += c.toxic_toxic + c.normal_normal;
  return n;
}

void PairReport::log(const std::string& name) const {
  for (const auto& c : per_language_pair)
    spdlog::info(
        "{} pairs {}-{}: toxic-toxic {} of {}, normal-normal {} of {}, normal-toxic {} of {}", name,
        c.left_lang, c.right_lang, c.toxic_toxic, c.wanted_toxic_toxic, c.normal_normal,
        c.wanted_normal_normal, c.normal_toxic, c.wanted_normal_toxic);
  const uint64_t n = total();
  spdlog::info("{} pairs: {} ({} same, {:.1f}%), fingerprint {}", name, n, same(),
               n ? 100.0 * static_cast<double>(same()) / static_cast<double>(n) : 0.0, fingerprint);
}

namespace {

// The texts of one (language, label) that may be sampled (longer than min_chars), in corpus
// order, with their generate_text_probabilities.
struct Pool {
  std::vector<uint32_t> members;
  std::vector<double> probabilities;
};

using PoolKey = std::pair<std::string, int>;

std::map<PoolKey, Pool> make_pools(const LabeledCorpus& corpus, size_t min_chars, size_t threads) {
  std::vector<size_t> lengths(corpus.size());
  parallel_for(corpus.size(), threads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) lengths[i] = count_code_points(corpus.texts[i]);
  });
  std::map<PoolKey, std::vector<uint32_t>> all;
  for (size_t i = 0; i < corpus.size(); ++i)
    all[{corpus.langs[i], corpus.labels[i]}].push_back(static_cast<uint32_t>(i));
  std::map<PoolKey, Pool> pools;
  for (const auto& [key, members] : all) {
    std::vector<size_t> pool_lengths;
    pool_lengths.reserve(members.size());
    for (uint32_t i : members) pool_lengths.push_back(lengths[i]);
    const std::vector<double> p = text_probabilities(pool_lengths, min_chars);
    Pool& pool = pools[key];
    for (size_t k = 0; k < members.size(); ++k)
      if (p[k] > 0) pool.members.push_back(members[k]), pool.probabilities.push_back(p[k]);
  }
  return pools;
}

const Pool& pool_of(const std::map<PoolKey, Pool>& pools, const std::string& lang, int label) {
  static const Pool empty;
  auto it = pools.find({lang, label});
  return it == pools.end() ? empty : it->second;
}

std::vector<std::pair<std::string, std::string>> language_pairs(const LabeledCorpus& corpus) {
  std::vector<std::string> langs = corpus.languages();
  std::sort(langs.begin(), langs.end());
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t a = 0; a < langs.size(); ++a)
    for (size_t b = a; b < langs.size(); ++b) out.emplace_back(langs[a], langs[b]);
  return out;
}

uint64_t unordered_key(uint32_t x, uint32_t y) {
  return (uint64_t(std::min(x, y)) << 32) | std::max(x, y);
}

// ---- notebook -------------------------------------------------------------------------

// One category of one language pair.
struct Category {
  const Pool* left;
  const Pool* right;
  uint64_t iterations;
  uint8_t label;
  bool random_order;  // normal-toxic: which side is normal is random per pair
};

// How many texts one side takes: min(2 x iterations, pool), or the whole pool when it is not
// larger than `iterations`.
uint64_t side_size(const Pool& pool, uint64_t iterations) {
  const uint64_t size = pool.members.size();
  return size > iterations ? std::min<uint64_t>(2 * iterations, size) : size;
}

// The first `m` texts of one side: of a weighted draw without replacement (np.random.choice
// with replace=False, cut to m: weighted_sample's set has the same distribution), or of the
// pool in its order when it is not larger than `iterations`. In pool order; the caller
// shuffles.
std::vector<uint32_t> draw_side(const Pool& pool, uint64_t iterations, uint64_t m, Rng& rng) {
  if (pool.members.size() <= iterations)
    return {pool.members.begin(), pool.members.begin() + static_cast<ptrdiff_t>(m)};
  std::vector<uint32_t> out = weighted_sample(pool.probabilities, m, rng);
  for (uint32_t& k : out) k = pool.members[k];
  return out;
}

std::vector<Pair> notebook_category(const Category& c, uint64_t seed) {
  Rng rng(seed);
  const uint64_t m = std::min(side_size(*c.left, c.iterations), side_size(*c.right, c.iterations));
  std::vector<uint32_t> left = draw_side(*c.left, c.iterations, m, rng);
  std::vector<uint32_t> right = draw_side(*c.right, c.iterations, m, rng);
  rng.shuffle(left);
  rng.shuffle(right);
  std::vector<Pair> out;
  out.reserve(std::min(m, c.iterations));
  std::unordered_set<uint64_t> used;
  used.reserve(std::min(m, c.iterations));
  for (uint64_t k = 0; k < m && out.size() < c.iterations; ++k) {
    uint32_t x = left[k], y = right[k];
    if (x == y || !used.insert(unordered_key(x, y)).second) continue;
    if (c.random_order && (rng.next() & 1)) std::swap(x, y);
    out.push_back({x, y, c.label});
  }
  return out;
}

std::vector<Pair> notebook_pairs(const LabeledCorpus& corpus, const PairOptions& o,
                                 PairReport& report) {
  const auto pools = make_pools(corpus, o.min_chars, o.threads);
  const auto lang_pairs = language_pairs(corpus);
  std::vector<Category> categories;
  for (const auto& [la, lb] : lang_pairs) {
    const uint64_t n = (o.n_pairs + lang_pairs.size() - 1) / lang_pairs.size();
    const uint64_t tt = n / 4, nn = (2 * n) / 4 - n / 4, nt = n - (2 * n) / 4;
    categories.push_back({&pool_of(pools, la, 1), &pool_of(pools, lb, 1), tt, 1, false});
    categories.push_back({&pool_of(pools, la, 0), &pool_of(pools, lb, 0), nn, 1, false});
    categories.push_back({&pool_of(pools, la, 0), &pool_of(pools, lb, 1), nt, 0, true});
    report.per_language_pair.push_back({la, lb, 0, 0, 0, tt, nn, nt});
  }
  // Each category draws from its own stream, so threads change nothing.
  std::vector<std::vector<Pair>> made(categories.size());
  parallel_for(categories.size(), std::min<size_t>(resolve_threads(o.threads), 4),
               [&](size_t begin, size_t end) {
                 for (size_t k = begin; k < end; ++k)
                   made[k] = notebook_category(categories[k], mix_seed({o.seed, 0xca7, k}));
               });
  std::vector<Pair> pairs;
  for (size_t k = 0; k < made.size(); ++k) {
    auto& count = report.per_language_pair[k / 3];
    (k % 3 == 0   ? count.toxic_toxic
     : k % 3 == 1 ? count.normal_normal
                  : count.normal_toxic) = made[k].size();
    pairs.insert(pairs.end(), made[k].begin(), made[k].end());
  }
  Rng rng(mix_seed({o.seed, 0x5a1ff}));
  rng.shuffle(pairs);
  return pairs;
}

// ---- balanced -------------------------------------------------------------------------

// Draws distinct pairs from two pools, each text by its pool's sampling weight; every draw
// shares one random stream and one set of the pairs made.
class PairDrawer {
 public:
  PairDrawer(const std::map<const Pool*, std::unique_ptr<AliasTable>>& tables, uint64_t seed,
             uint64_t n_pairs, size_t min_chars)
      : tables_(tables), rng_(mix_seed({seed, 0x9a125})), min_chars_(min_chars) {
    pairs_.reserve(n_pairs);
    seen_.reserve(n_pairs * 2);
  }

  // `count` pairs of label `label`; `random_order` randomises left/right.
  void draw(const Pool& a, const Pool& b, const std::string& what, uint64_t count, uint8_t label,
            bool random_order) {
    if (count == 0) return;
    const double na = double(a.members.size()), nb = double(b.members.size());
    const double possible = &a == &b ? 0.5 * na * std::max(0.0, na - 1) : na * nb;
    if (possible < static_cast<double>(count))
      throw UserError("cannot build " + std::to_string(count) + " distinct " + what +
                      " pairs: too few sampleable texts (longer than " +
                      std::to_string(min_chars_) +
                      " characters); use more data or fewer pairs (data.train_pairs, "
                      "data.val_pairs), or data.pair_sampler: notebook");
    uint64_t made = 0, attempts = 0;
    const uint64_t max_attempts = 50 * count + 1000;
    while (made < count) {
      if (++attempts > max_attempts)
        throw UserError("cannot build " + std::to_string(count) + " distinct " + what +
                        " pairs: the texts are too few for that many distinct pairs; use more "
                        "data or fewer pairs (data.train_pairs, data.val_pairs), or "
                        "data.pair_sampler: notebook");
      uint32_t x = a.members[tables_.at(&a)->draw(rng_)];
      uint32_t y = b.members[tables_.at(&b)->draw(rng_)];
      if (x == y || !seen_.insert(unordered_key(x, y)).second) continue;
      if (random_order && (rng_.next() & 1)) std::swap(x, y);
      pairs_.push_back({x, y, label});
      ++made;
    }
  }

  // Every pair drawn, shuffled by the same stream.
  std::vector<Pair> shuffled() {
    rng_.shuffle(pairs_);
    return std::move(pairs_);
  }

 private:
  const std::map<const Pool*, std::unique_ptr<AliasTable>>& tables_;
  Rng rng_;
  size_t min_chars_;
  std::vector<Pair> pairs_;
  std::unordered_set<uint64_t> seen_;
};

std::vector<Pair> balanced_pairs(const LabeledCorpus& corpus, const PairOptions& o,
                                 PairReport& report) {
  const auto pools = make_pools(corpus, o.min_chars, o.threads);
  std::map<const Pool*, std::unique_ptr<AliasTable>> tables;
  for (const auto& [key, pool] : pools)
    if (!pool.members.empty()) tables[&pool] = std::make_unique<AliasTable>(pool.probabilities);
  const auto lang_pairs = language_pairs(corpus);
  PairDrawer drawer(tables, o.seed, o.n_pairs, o.min_chars);

  const uint64_t per_lang_pair = o.n_pairs / lang_pairs.size();
  uint64_t remainder = o.n_pairs % lang_pairs.size();
  for (const auto& [la, lb] : lang_pairs) {
    uint64_t n = per_lang_pair + (remainder ? (--remainder, 1) : 0);
    uint64_t tt = n / 4, nn = n / 4, nt = n - tt - nn;
    report.per_language_pair.push_back({la, lb, tt, nn, nt, tt, nn, nt});
    const std::string names = la + "-" + lb;
    drawer.draw(pool_of(pools, la, 1), pool_of(pools, lb, 1), names + " toxic-toxic", tt, 1,
                la != lb);
    drawer.draw(pool_of(pools, la, 0), pool_of(pools, lb, 0), names + " normal-normal", nn, 1,
                la != lb);
    // Normal-toxic: which language gives the normal text is random per pair when they differ.
    uint64_t nt_ab = la == lb ? nt : nt / 2 + (nt % 2);
    drawer.draw(pool_of(pools, la, 0), pool_of(pools, lb, 1), names + " normal-toxic", nt_ab, 0,
                true);
    if (la != lb)
      drawer.draw(pool_of(pools, la, 1), pool_of(pools, lb, 0), names + " toxic-normal", nt - nt_ab,
                  0, true);
  }
  return drawer.shuffled();
}

}  // namespace

PairList build_pairs(const LabeledCorpus& corpus, const PairOptions& options, PairReport* report) {
  if (corpus.size() >= UINT32_MAX) throw UserError("corpus too large for 32-bit pair indices");
  PairReport local;
  PairReport& rep = report ? *report : local;
  rep.per_language_pair.clear();
  std::vector<Pair> pairs = options.sampler == PairSampler::kNotebook
                                ? notebook_pairs(corpus, options, rep)
                                : balanced_pairs(corpus, options, rep);
  if (pairs.empty() && options.n_pairs > 0)
    throw UserError("no pairs could be built from " + std::to_string(corpus.size()) +
                    " texts: each pair needs texts longer than " +
                    std::to_string(options.min_chars) +
                    " characters (data.min_sample_chars), of both labels for normal-toxic pairs");
  PairList out(std::move(pairs));
  rep.fingerprint = pairs_fingerprint(corpus, out);
  return out;
}

void check_both_labels(const LabeledCorpus& corpus, const std::string& source) {
  for (const auto& [lang, counts] : corpus.label_counts())
    if (counts[0] == 0 || counts[1] == 0)
      throw UserError(source + ": all " + std::to_string(counts[0] + counts[1]) + " texts in '" +
                      lang + "' are " + (counts[0] ? "normal" : "toxic") +
                      ", expected both labels: pairs of one label only teach the encoder nothing "
                      "about toxicity (check data.train_label_fields, "
                      "data.multilingual_label_fields and data.label_threshold)");
}

void check_notebook_text_lengths(const LabeledCorpus& corpus, const std::string& source) {
  constexpr size_t kLongest = 100;    // the notebook's max_chars_number > 100
  std::map<PoolKey, size_t> longest;  // per language and label; stops counting past 100
  for (size_t i = 0; i < corpus.size(); ++i) {
    size_t& n = longest[{corpus.langs[i], corpus.labels[i]}];
    // A text of n bytes or fewer has n code points or fewer: only longer ones are counted.
    if (n <= kLongest && corpus.texts[i].size() > n)
      n = std::max(n, count_code_points(corpus.texts[i]));
  }
  for (const auto& [key, n] : longest)
    if (n <= kLongest)
      throw UserError(source + ": the longest " + (key.second ? "toxic" : "normal") + " text in '" +
                      key.first + "' has " + std::to_string(n) +
                      " characters, expected more than 100: data.pair_sampler: notebook weighs "
                      "texts by length as the notebook, which asserts this (max_chars_number > "
                      "100); use longer texts, or data.pair_sampler: balanced");
}

namespace {

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void each_pairs_csv_line(const LabeledCorpus& corpus, const PairList& pairs,
                         const std::function<void(std::string_view)>& sink) {
  sink("index,left_row,right_row,left_lang,right_lang,label,category\n");
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Pair& p = pairs[i];
    sink(std::to_string(i) + ',' + std::to_string(corpus.rows[p.left]) + ',' +
         std::to_string(corpus.rows[p.right]) + ',' + csv_field(corpus.langs[p.left]) + ',' +
         csv_field(corpus.langs[p.right]) + ',' + std::to_string(int(p.label)) + ',' +
         category_name(category_of(corpus, p)) + '\n');
  }
}

void write_pairs_csv(const std::string& path, const LabeledCorpus& corpus, const PairList& pairs) {
  // A failure is a UserError naming the file and the system's reason (files.h).
  files::write_atomically(path, [&](const std::string& tmp) {
    files::FileWriter out(tmp);
    each_pairs_csv_line(corpus, pairs, [&](std::string_view line) { out.write(line); });
    out.close();
  });
}

std::string pairs_fingerprint(const LabeledCorpus& corpus, const PairList& pairs) {
  Fnv1a hash;
  char line[64];
  for (const Pair& p : pairs) {
    const int n = std::snprintf(line, sizeof line, "%lld,%lld,%d\n",
                                static_cast<long long>(corpus.rows[p.left]),
                                static_cast<long long>(corpus.rows[p.right]), int(p.label));
    hash.update(line, static_cast<size_t>(n));
  }
  return hash.hex();
}

PairRange rank_range(uint64_t consumed, int rank, uint64_t per_rank) {
  return {consumed + static_cast<uint64_t>(rank) * per_rank, per_rank};
}

}  // namespace sx::data

#include "core/rng.h"

#include <stdexcept>

namespace sx {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t state = 0x5eed5eed5eed5eedull;
  uint64_t h = 0;
  for (uint64_t p : parts) {
    state ^= p;
    h = splitmix64(state) ^ rotl(h, 17);
  }
  return h;
}

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) throw std::invalid_argument("Rng::below(0)");
  __uint128_t m = static_cast<__uint128_t>(next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<__uint128_t>(next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

double Rng::uniform() {
  return (next() >> 11) * 0x1.0p-53;
}

AliasTable::AliasTable(const std::vector<double>& weights)
    : prob_(weights.size()), alias_(weights.size()) {
  const size_t n = weights.size();
  if (n == 0) throw std::invalid_argument("AliasTable: no weights");
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0)) throw std::invalid_argument("AliasTable: negative or NaN weight");
    total += w;
  }
  if (!(total > 0)) throw std::invalid_argument("AliasTable: all weights are zero");
  std::vector<double> scaled(n);
  std::vector<uint32_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    scaled[i] = weights[i] * n / total;
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    uint32_t s = small.back(), l = large.back();
    small.pop_back();
    prob_[s] = scaled[s];
    alias_[s] = l;
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  for (uint32_t i : large) prob_[i] = 1.0, alias_[i] = i;
  // Left-overs from rounding: entries with zero weight must never be drawn.
  for (uint32_t i : small) prob_[i] = 1.0, alias_[i] = i;
  size_t first_positive = 0;
  while (weights[first_positive] == 0) ++first_positive;
  for (size_t i = 0; i < n; ++i) {
    if (weights[i] != 0) continue;
    prob_[i] = 0.0;
    if (weights[alias_[i]] == 0) alias_[i] = static_cast<uint32_t>(first_positive);
  }
}

size_t AliasTable::draw(Rng& rng) const {
  size_t i = rng.below(prob_.size());
  return rng.uniform() < prob_[i] ? i : alias_[i];
}

}  // namespace sx

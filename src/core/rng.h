// A small, fully specified random generator (xoshiro256** seeded by splitmix64) and the
// draws the data layer needs. std::shuffle and std:: distributions differ between standard
// libraries; these give the same sequence everywhere, which resume and multi-rank rely on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace sx {

// Mixes several integers (seed, rank, step, ...) into one well-spread seed.
uint64_t mix_seed(std::initializer_list<uint64_t> parts);

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform integer in [0, n), unbiased (Lemire's method). n > 0.
  uint64_t below(uint64_t n);
  // Uniform double in [0, 1) with 53 random bits.
  double uniform();

  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  uint64_t s_[4];
};

// Walker's alias table: O(1) draws from a fixed discrete distribution.
class AliasTable {
 public:
  explicit AliasTable(const std::vector<double>& weights);
  size_t draw(Rng& rng) const;
  size_t size() const { return prob_.size(); }

 private:
  std::vector<double> prob_;
  std::vector<uint32_t> alias_;
};

}  // namespace sx

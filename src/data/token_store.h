// The token ids of a corpus' texts. TokenStore tokenizes each distinct text once, lazily, on
// first use, in this process's memory: a rank only tokenizes the texts it consumes.
#pragma once

#include <cstdint>
#include <vector>

#include "data/corpus.h"
#include "data/tokenizer.h"

namespace sx::data {

class TokenStore {
 public:
  // Texts are tokenized by ensure(), on `threads` threads.
  TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads);
  // Tokenizes (in parallel) those of `indices` not yet tokenized.
  void ensure(const std::vector<uint32_t>& indices);
  // max_len ids of text i (ensure() first).
  void copy_ids(uint32_t i, int32_t* out) const;
  size_t tokenized() const { return tokenized_; }
  // Bytes of token ids and offsets held.
  size_t bytes() const;

 private:
  const XlmrTokenizer& tokenizer_;
  const TextColumn& texts_;
  size_t threads_;
  std::vector<int64_t> offset_;  // into arena_, -1 = not yet
  std::vector<uint32_t> length_;
  std::vector<int32_t> arena_;  // unpadded ids, back to back
  size_t tokenized_ = 0;
};

}  // namespace sx::data

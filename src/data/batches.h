// From pairs to token batches. TokenStore tokenizes each distinct text of a corpus once:
// lazily, on first use, in this process's memory (a rank only tokenizes the texts it
// consumes), or every text up front into memory the ranks of a node share (node_memory.h).
// Both give the same ids.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/corpus.h"
#include "data/node_memory.h"
#include "data/pairs.h"
#include "data/tokenizer.h"

namespace sx::data {

class TokenStore {
 public:
  // Lazy: texts are tokenized by ensure(), in this process's memory.
  TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads);
  // Every text tokenized now, by the node's builder on `threads` threads, into memory that
  // node.publish() shares (a collective over the node's processes).
  TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads,
             NodeMemory& node);
  // Tokenizes (in parallel) those of `indices` not yet tokenized.
  void ensure(const std::vector<uint32_t>& indices);
  // max_len ids of text i (ensure() first).
  void copy_ids(uint32_t i, int32_t* out) const;
  size_t tokenized() const { return tokenized_; }
  // Bytes of token ids and offsets held (shared ones counted once per store).
  size_t bytes() const;

 private:
  const XlmrTokenizer& tokenizer_;
  const TextColumn& texts_;
  size_t threads_;
  // Lazy store:
  std::vector<int64_t> offset_;  // into arena_, -1 = not yet
  std::vector<uint32_t> length_;
  std::vector<int32_t> arena_;  // unpadded ids, back to back
  // Shared store (texts_.size() + 1 offsets into ids, every text present):
  std::shared_ptr<const void> image_;
  const uint64_t* shared_offset_ = nullptr;
  const int32_t* shared_ids_ = nullptr;
  size_t tokenized_ = 0;
};

// left/right: count x max_len ids, row-major; labels: 1 = same class.
struct PairBatch {
  size_t count = 0;
  size_t max_len = 0;
  std::vector<int32_t> left_ids;
  std::vector<int32_t> right_ids;
  std::vector<float> labels;
};

PairBatch make_pair_batch(const PairList& pairs, PairRange range, TokenStore& store,
                          size_t max_len);

}  // namespace sx::data

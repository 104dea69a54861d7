#include "data/batches.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/parallel.h"

namespace sx::data {
namespace {

// max_len + 1 ids are enough for finish() to see that a sequence was cut.
size_t kept_ids(const XlmrTokenizer& tokenizer, size_t n) {
  return std::min(n, tokenizer.max_len() + 1);
}

// Token ids of a run of texts, back to back, with each text's count.
struct TokenBlock {
  std::vector<int32_t> ids;
  std::vector<uint32_t> lengths;
};

std::vector<TokenBlock> tokenize_blocks(const XlmrTokenizer& tokenizer, const TextColumn& texts,
                                        size_t threads) {
  constexpr size_t kBlock = 4096;
  std::vector<TokenBlock> blocks((texts.size() + kBlock - 1) / kBlock);
  parallel_for(blocks.size(), threads, [&](size_t begin, size_t end) {
    for (size_t b = begin; b < end; ++b) {
      TokenBlock& block = blocks[b];
      for (size_t i = b * kBlock; i < std::min(texts.size(), (b + 1) * kBlock); ++i) {
        const std::vector<int32_t> ids = tokenizer.encode_unpadded(texts[i]);
        const size_t kept = kept_ids(tokenizer, ids.size());
        block.ids.insert(block.ids.end(), ids.begin(), ids.begin() + kept);
        block.lengths.push_back(static_cast<uint32_t>(kept));
      }
    }
  });
  return blocks;
}

}  // namespace

// The shared image: uint64 count, uint64 total ids, count + 1 uint64 offsets, the int32 ids.
TokenStore::TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads,
                       NodeMemory& node)
    : tokenizer_(tokenizer), texts_(texts), threads_(threads) {
  std::vector<TokenBlock> blocks;
  uint64_t total = 0;
  if (node.builder()) {
    blocks = tokenize_blocks(tokenizer, texts, threads);
    for (const TokenBlock& b : blocks) total += b.ids.size();
  }
  const size_t header_bytes = (2 + texts.size() + 1) * sizeof(uint64_t);
  image_ = node.publish(header_bytes + total * sizeof(int32_t), [&](void* out) {
    auto* words = static_cast<uint64_t*>(out);
    words[0] = texts.size();
    words[1] = total;
    uint64_t* offset = words + 2;
    auto* ids = reinterpret_cast<int32_t*>(static_cast<char*>(out) + header_bytes);
    uint64_t at = 0;
    size_t i = 0;
    for (TokenBlock& b : blocks) {
      for (uint32_t n : b.lengths) offset[i++] = at, at += n;
      if (!b.ids.empty()) std::memcpy(ids + (at - b.ids.size()), b.ids.data(), 4 * b.ids.size());
      b = {};  // the private copy goes as soon as it is in the image
    }
    offset[i] = at;
  });
  const auto* words = static_cast<const uint64_t*>(image_.get());
  if (words[0] != texts.size())
    throw std::runtime_error("shared token ids of " + std::to_string(words[0]) +
                             " texts, but this rank's corpus has " + std::to_string(texts.size()));
  shared_offset_ = words + 2;
  shared_ids_ =
      reinterpret_cast<const int32_t*>(static_cast<const char*>(image_.get()) + header_bytes);
  tokenized_ = texts.size();
}

size_t TokenStore::bytes() const {
  if (image_) return (2 + texts_.size() + 1) * sizeof(uint64_t) + shared_offset_[texts_.size()] * 4;
  return offset_.size() * 8 + length_.size() * 4 + arena_.size() * 4;
}

TokenStore::TokenStore(const XlmrTokenizer& tokenizer, const TextColumn& texts, size_t threads)
    : tokenizer_(tokenizer),
      texts_(texts),
      threads_(threads),
      offset_(texts.size(), -1),
      length_(texts.size(), 0) {}

void TokenStore::ensure(const std::vector<uint32_t>& indices) {
  if (image_) return;  // every text is there
  std::vector<uint32_t> missing;
  for (uint32_t i : indices)
    if (offset_[i] < 0) missing.push_back(i);
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (missing.empty()) return;
  std::vector<std::vector<int32_t>> ids(missing.size());
  parallel_for(missing.size(), threads_, [&](size_t begin, size_t end) {
    for (size_t k = begin; k < end; ++k) ids[k] = tokenizer_.encode_unpadded(texts_[missing[k]]);
  });
  for (size_t k = 0; k < missing.size(); ++k) {
    const size_t kept = kept_ids(tokenizer_, ids[k].size());
    offset_[missing[k]] = static_cast<int64_t>(arena_.size());
    length_[missing[k]] = static_cast<uint32_t>(kept);
    arena_.insert(arena_.end(), ids[k].begin(), ids[k].begin() + kept);
  }
  tokenized_ += missing.size();
}

void TokenStore::copy_ids(uint32_t i, int32_t* out) const {
  if (image_) {
    tokenizer_.finish(shared_ids_ + shared_offset_[i], shared_offset_[i + 1] - shared_offset_[i],
                      out);
    return;
  }
  tokenizer_.finish(arena_.data() + offset_[i], length_[i], out);
}

PairBatch make_pair_batch(const PairList& pairs, PairRange range, TokenStore& store,
                          size_t max_len) {
  PairBatch batch;
  batch.count = range.count;
  batch.max_len = max_len;
  std::vector<uint32_t> needed;
  needed.reserve(2 * range.count);
  for (uint64_t p = range.begin; p < range.begin + range.count; ++p) {
    needed.push_back(pair_at(pairs, p).left);
    needed.push_back(pair_at(pairs, p).right);
  }
  store.ensure(needed);
  batch.left_ids.resize(range.count * max_len);
  batch.right_ids.resize(range.count * max_len);
  batch.labels.resize(range.count);
  for (uint64_t k = 0; k < range.count; ++k) {
    const Pair& pair = pair_at(pairs, range.begin + k);
    store.copy_ids(pair.left, batch.left_ids.data() + k * max_len);
    store.copy_ids(pair.right, batch.right_ids.data() + k * max_len);
    batch.labels[k] = pair.label;
  }
  return batch;
}

}  // namespace sx::data

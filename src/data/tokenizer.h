// XLM-R token ids from a sentencepiece model, with fairseq's id mapping:
//   <s>=0 <pad>=1 </s>=2 <unk>=3, sentencepiece piece i -> i+1, <mask> = last id.
// Pre-tokenization `wordpunct` encodes each NLTK wordpunct word on its own (the notebook's
// tokenize_all); `none` encodes the whole text (HF's tokenizer; U+0085 separates words there,
// as it does for HF). Every sequence is <s> ... </s>, cut to max_len and padded with <pad>.
// The notebook's cut drops the final </s>; keep_eos=true (the default) keeps it in the last
// position instead.
//
// With wordpunct a word's ids depend on the word alone, so they are memoised in a word cache
// (bounded, shared by all threads, read without locks).
// Words in natural text follow Zipf's law: most lookups hit, and sentencepiece runs once per
// distinct word. The output is the same with or without the cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace sx::data {

class SentencePieceEncoder;

using sx::Pretokenize;  // tokenizer.pretokenize (core/config.h)

struct TokenizerOptions {
  std::string model_path;
  size_t max_len = 128;
  Pretokenize pretokenize = Pretokenize::kWordpunct;
  bool keep_eos = true;
  size_t word_cache_bytes = 64u << 20;  // bound of the word cache; 0 = no cache
  // pretokenize none: a text is encoded in parts of at least this many bytes, cut before a space,
  // until max_len is passed. The ids do not depend on it (tests set it small to show that).
  size_t text_chunk_bytes = 4096;
};

struct WordCacheStats {
  uint64_t lookups = 0;
  uint64_t hits = 0;
  uint64_t words = 0;     // cached now
  uint64_t uncached = 0;  // new words not cached because the bound was reached
  double hit_rate() const { return lookups ? double(hits) / double(lookups) : 0.0; }
};

class WordCache;

class XlmrTokenizer {
 public:
  static constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3;

  // Throws UserError naming tokenizer.model when the model cannot be loaded.
  explicit XlmrTokenizer(const TokenizerOptions& options);
  ~XlmrTokenizer();

  size_t max_len() const { return options_.max_len; }
  int32_t vocab_size() const;  // including <mask>
  int32_t mask_id() const { return vocab_size() - 1; }

  // <s> pieces </s> without padding; past max_len it may stop early (wordpunct after the word,
  // none after the part, that passes it): finish() cuts it to the same max_len ids.
  std::vector<int32_t> encode_unpadded(std::string_view text) const;
  // Exactly max_len ids into out.
  void encode_into(std::string_view text, int32_t* out) const;
  std::vector<int32_t> encode(std::string_view text) const;
  // Cuts/pads an unpadded sequence (from encode_unpadded) into max_len ids.
  void finish(const int32_t* ids, size_t n, int32_t* out) const;
  // texts.size() x max_len ids, on `threads` threads (0 = all cores).
  void encode_many(const std::vector<std::string_view>& texts, int32_t* out, size_t threads) const;
  WordCacheStats word_cache_stats() const;
  // pretokenize none: whether long texts are encoded in parts (the model keeps no extra spaces
  // and no piece spans one: probed on a few texts when loaded), else whole.
  bool encodes_in_parts() const { return chunks_exact_; }

 private:
  struct WordCounts {
    uint64_t lookups = 0, hits = 0;
  };
  void append_pieces(std::string_view text, std::vector<int32_t>& ids) const;
  void append_text(std::string_view text, std::vector<int32_t>& ids) const;
  void append_chunks(std::string_view text, std::vector<int32_t>& ids) const;
  bool parts_encode_as_whole() const;
  void append_word(std::string_view word, size_t hash, std::vector<int32_t>& ids,
                   WordCounts& counts) const;
  void append_cached_words(std::string_view text, std::vector<int32_t>& ids) const;

  TokenizerOptions options_;
  std::unique_ptr<SentencePieceEncoder> sp_;
  std::unique_ptr<WordCache> cache_;  // null without wordpunct or with word_cache_bytes 0
  bool chunks_exact_ = false;  // parts cut before spaces encode as the whole text (append_chunks)
};

}  // namespace sx::data

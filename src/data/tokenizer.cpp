#include "data/tokenizer.h"

#include <algorithm>
#include <functional>
#include <mutex>

#include "core/error.h"
#include "core/parallel.h"
#include "data/spm_plugin.h"
#include "data/text.h"

namespace sx::data {

// Word -> ids, open addressing per shard; keys and ids live in per-shard buffers. A shard
// that outgrows its share of the bound is emptied (simple, bounded, and rare with a bound
// far above a natural vocabulary's size).
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 48;  // longer words are rare: not cached

  explicit WordCache(size_t max_bytes) : shard_bytes_(max_bytes / kShards) {}

  // Appends the word's ids and returns true when it is cached.
  bool find(std::string_view word, size_t hash, std::vector<int32_t>& out) {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    ++s.lookups;
    if (s.table.empty()) return false;
    for (size_t i = slot_of(hash, s);; i = (i + 1) & (s.table.size() - 1)) {
      const Entry& e = s.table[i];
      if (e.key_len == 0) return false;
      if (e.hash == hash && std::string_view(s.keys.data() + e.key_offset, e.key_len) == word) {
        out.insert(out.end(), s.ids.begin() + e.ids_offset,
                   s.ids.begin() + e.ids_offset + e.id_count);
        ++s.hits;
        return true;
      }
    }
  }

  void insert(std::string_view word, size_t hash, const int32_t* ids, size_t n) {
    if (word.empty() || word.size() > kMaxWordBytes || n > 0xFFFF) return;
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.keys.size() + s.ids.size() * sizeof(int32_t) + s.table.size() * sizeof(Entry) >
        shard_bytes_) {
      s.table.clear();
      s.keys.clear();
      s.ids.clear();
      s.words = 0;
      ++s.flushes;
    }
    if (2 * (s.words + 1) > s.table.size()) grow(s);
    size_t i = slot_of(hash, s);
    for (;; i = (i + 1) & (s.table.size() - 1)) {
      const Entry& e = s.table[i];
      if (e.key_len == 0) break;
      if (e.hash == hash && std::string_view(s.keys.data() + e.key_offset, e.key_len) == word)
        return;  // another thread was first
    }
    s.table[i] = {hash, static_cast<uint32_t>(s.keys.size()), static_cast<uint32_t>(s.ids.size()),
                  static_cast<uint16_t>(word.size()), static_cast<uint16_t>(n)};
    s.keys.append(word);
    s.ids.insert(s.ids.end(), ids, ids + n);
    ++s.words;
  }

  WordCacheStats stats() {
    WordCacheStats out;
    for (Shard& s : shards_) {
      std::lock_guard<std::mutex> lock(s.mutex);
      out.lookups += s.lookups;
      out.hits += s.hits;
      out.words += s.words;
      out.flushes += s.flushes;
    }
    return out;
  }

 private:
  static constexpr size_t kShards = 64;
  struct Entry {
    size_t hash = 0;
    uint32_t key_offset = 0;
    uint32_t ids_offset = 0;
    uint16_t key_len = 0;  // 0 = empty slot
    uint16_t id_count = 0;
  };
  struct Shard {
    std::mutex mutex;
    std::vector<Entry> table;  // a power of two in size, at most half full
    std::string keys;
    std::vector<int32_t> ids;
    size_t words = 0;
    uint64_t lookups = 0, hits = 0, flushes = 0;
  };

  // The shard index uses hash % kShards; the slot uses the higher bits.
  static size_t slot_of(size_t hash, const Shard& s) {
    return (hash / kShards) & (s.table.size() - 1);
  }

  static void grow(Shard& s) {
    std::vector<Entry> old = std::move(s.table);
    s.table.assign(std::max<size_t>(64, old.size() * 2), Entry{});
    for (const Entry& e : old) {
      if (e.key_len == 0) continue;
      size_t i = slot_of(e.hash, s);
      while (s.table[i].key_len != 0) i = (i + 1) & (s.table.size() - 1);
      s.table[i] = e;
    }
  }

  const size_t shard_bytes_;
  Shard shards_[kShards];
};

XlmrTokenizer::XlmrTokenizer(const TokenizerOptions& options)
    : options_(options), sp_(make_sentencepiece_encoder()) {
  if (options_.pretokenize == Pretokenize::kWordpunct && options_.word_cache_bytes > 0)
    cache_ = std::make_unique<WordCache>(options_.word_cache_bytes);
  if (options_.max_len < 2)
    throw UserError("tokenizer.max_len expects an integer >= 2, found " +
                    std::to_string(options_.max_len));
  char error[512] = "";
  if (!sp_->load(options_.model_path.c_str(), error, sizeof error))
    throw UserError("tokenizer.model: cannot load sentencepiece model " + options_.model_path +
                    ": " + error);
}

XlmrTokenizer::~XlmrTokenizer() = default;

int32_t XlmrTokenizer::vocab_size() const {
  return sp_->piece_size() + 2;
}

void XlmrTokenizer::append_pieces(std::string_view text, std::vector<int32_t>& ids) const {
  thread_local std::vector<int> pieces(256);
  size_t n = sp_->encode(text.data(), text.size(), pieces.data(), pieces.size());
  if (n > pieces.size()) {  // rare: a text of more pieces than the buffer holds
    pieces.resize(n);
    n = sp_->encode(text.data(), text.size(), pieces.data(), pieces.size());
  }
  const int unk = sp_->unk_id();
  for (size_t i = 0; i < n; ++i) ids.push_back(pieces[i] == unk ? kUnk : pieces[i] + 1);
}

void XlmrTokenizer::append_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (!cache_ || word.size() > WordCache::kMaxWordBytes) return append_pieces(word, ids);
  const size_t hash = std::hash<std::string_view>()(word);
  if (cache_->find(word, hash, ids)) return;
  const size_t before = ids.size();
  append_pieces(word, ids);
  cache_->insert(word, hash, ids.data() + before, ids.size() - before);
}

WordCacheStats XlmrTokenizer::word_cache_stats() const {
  return cache_ ? cache_->stats() : WordCacheStats{};
}

std::vector<int32_t> XlmrTokenizer::encode_unpadded(std::string_view text) const {
  std::vector<int32_t> ids{kBos};
  if (options_.pretokenize == Pretokenize::kWordpunct) {
    for (std::string_view word : wordpunct_tokenize(text)) {
      append_word(word, ids);
      if (ids.size() > options_.max_len) break;  // the rest would be cut anyway
    }
  } else {
    append_pieces(text, ids);
  }
  ids.push_back(kEos);
  return ids;
}

void XlmrTokenizer::finish(const int32_t* ids, size_t n, int32_t* out) const {
  const size_t len = options_.max_len;
  size_t copied = std::min(n, len);
  std::copy(ids, ids + copied, out);
  std::fill(out + copied, out + len, kPad);
  if (n > len && options_.keep_eos) out[len - 1] = kEos;
}

void XlmrTokenizer::encode_into(std::string_view text, int32_t* out) const {
  std::vector<int32_t> ids = encode_unpadded(text);
  finish(ids.data(), ids.size(), out);
}

std::vector<int32_t> XlmrTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out(options_.max_len);
  encode_into(text, out.data());
  return out;
}

void XlmrTokenizer::encode_many(const std::vector<std::string_view>& texts, int32_t* out,
                                size_t threads) const {
  const size_t len = options_.max_len;
  parallel_for(texts.size(), threads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) encode_into(texts[i], out + i * len);
  });
}

}  // namespace sx::data

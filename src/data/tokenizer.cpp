#include "data/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>

#include "core/error.h"
#include "core/parallel.h"
#include "data/spm_plugin.h"
#include "data/text.h"

namespace sx::data {

// Word -> ids: an open-addressing table of entries that are written once and never change.
// Lookups take no lock (the threads would otherwise queue on the slots of the few most
// frequent words, where Zipf's law sends most lookups): a slot is published with a release
// store after its entry is complete, and tables replaced by a larger one stay alive for
// lookups still probing them. Inserts (a word's first sight) take one lock. When the next
// word would pass the bound the cache keeps what it has and caches no more: the words
// already in it are the frequent ones.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 48;  // longer words are rare: not cached

  explicit WordCache(size_t max_bytes) : max_bytes_(max_bytes) { grow(kFirstSlots); }

  // Appends the word's ids and returns true when it is cached.
  bool find(std::string_view word, size_t hash, std::vector<int32_t>& out) const {
    const Table& t = *table_.load(std::memory_order_acquire);
    for (size_t i = t.slot_of(hash);; i = (i + 1) & t.mask) {
      const Entry* e = t.slots[i].load(std::memory_order_acquire);
      if (!e) return false;
      if (e->hash == hash && e->key() == word) {
        out.insert(out.end(), e->ids(), e->ids() + e->id_count);
        return true;
      }
    }
  }

  // Starts fetching what find(hash) will read first: the slot, or (once the slot is near)
  // the entry it points to.
  void prefetch_slot(size_t hash) const {
    const Table& t = *table_.load(std::memory_order_acquire);
    __builtin_prefetch(&t.slots[t.slot_of(hash)]);
  }
  void prefetch_entry(size_t hash) const {
    const Table& t = *table_.load(std::memory_order_acquire);
    if (const Entry* e = t.slots[t.slot_of(hash)].load(std::memory_order_acquire))
      __builtin_prefetch(e);
  }

  void insert(std::string_view word, size_t hash, const int32_t* ids, size_t n) {
    if (word.empty() || word.size() > kMaxWordBytes || n > 0xFFFF) return;
    std::lock_guard<std::mutex> lock(insert_mutex_);
    const Table* t = table_.load(std::memory_order_relaxed);
    size_t i = t->slot_of(hash);
    for (const Entry* e; (e = t->slots[i].load(std::memory_order_relaxed)); i = (i + 1) & t->mask)
      if (e->hash == hash && e->key() == word) return;  // another thread was first
    const size_t entry_bytes = Entry::bytes(word.size(), n);
    const bool must_grow = 2 * (words_ + 1) > t->mask + 1;
    if (bytes_ + entry_bytes + (must_grow ? 2 * (t->mask + 1) * sizeof(Slot) : 0) > max_bytes_) {
      ++full_;
      return;
    }
    Entry* e = new (allocate(entry_bytes))
        Entry{hash, static_cast<uint16_t>(word.size()), static_cast<uint16_t>(n)};
    std::memcpy(e->key_bytes(), word.data(), word.size());
    std::copy(ids, ids + n, e->ids());
    if (must_grow) t = grow(2 * (t->mask + 1));
    publish(*t, e);
    ++words_;
  }

  // A text's lookups and hits, counted once per text.
  void count(uint64_t lookups, uint64_t hits) {
    lookups_.fetch_add(lookups, std::memory_order_relaxed);
    hits_.fetch_add(hits, std::memory_order_relaxed);
  }

  WordCacheStats stats() {
    std::lock_guard<std::mutex> lock(insert_mutex_);
    return {lookups_.load(), hits_.load(), words_, full_};
  }

 private:
  static constexpr size_t kFirstSlots = 256, kBlockBytes = 1u << 20;

  // hash, then the key's bytes and the ids, in one allocation.
  struct Entry {
    size_t hash;
    uint16_t key_len;
    uint16_t id_count;
    static size_t bytes(size_t key_len, size_t ids) {
      return (sizeof(Entry) + ((key_len + 3) & ~size_t(3)) + ids * sizeof(int32_t) + 7) &
             ~size_t(7);
    }
    char* key_bytes() { return reinterpret_cast<char*>(this + 1); }
    std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_len}; }
    int32_t* ids() { return reinterpret_cast<int32_t*>(key_bytes() + ((key_len + 3) & ~3u)); }
    const int32_t* ids() const { return const_cast<Entry*>(this)->ids(); }
  };
  using Slot = std::atomic<const Entry*>;
  struct Table {
    size_t mask;  // slots - 1, a power of two minus one; at most half the slots are used
    std::unique_ptr<Slot[]> slots;
    size_t slot_of(size_t hash) const { return (hash ^ (hash >> 29)) & mask; }
  };

  // Moves every entry into a new table of `slots` slots and makes it the current one.
  const Table* grow(size_t slots) {
    auto t = std::make_unique<Table>(Table{slots - 1, std::make_unique<Slot[]>(slots)});
    if (!tables_.empty()) {
      const Table& old = *tables_.back();
      for (size_t i = 0; i <= old.mask; ++i)
        if (const Entry* e = old.slots[i].load(std::memory_order_relaxed)) publish(*t, e);
    }
    bytes_ += slots * sizeof(Slot);
    tables_.push_back(std::move(t));
    table_.store(tables_.back().get(), std::memory_order_release);
    return tables_.back().get();
  }

  static void publish(const Table& t, const Entry* e) {
    size_t i = t.slot_of(e->hash);
    while (t.slots[i].load(std::memory_order_relaxed)) i = (i + 1) & t.mask;
    t.slots[i].store(e, std::memory_order_release);
  }

  void* allocate(size_t bytes) {
    if (blocks_.empty() || block_used_ + bytes > kBlockBytes) {
      blocks_.push_back(std::make_unique<uint64_t[]>(kBlockBytes / sizeof(uint64_t)));
      block_used_ = 0;
    }
    void* p = reinterpret_cast<char*>(blocks_.back().get()) + block_used_;
    block_used_ += bytes;
    bytes_ += bytes;
    return p;
  }

  const size_t max_bytes_;
  std::atomic<const Table*> table_{nullptr};
  std::mutex insert_mutex_;                          // guards what follows
  std::vector<std::unique_ptr<Table>> tables_;       // every table made; the current one last
  std::vector<std::unique_ptr<uint64_t[]>> blocks_;  // the entries
  size_t block_used_ = 0, bytes_ = 0, words_ = 0;
  uint64_t full_ = 0;
  std::atomic<uint64_t> lookups_{0}, hits_{0};
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
  // fairseq's mapping (piece i -> id i+1) assumes <unk> <s> </s> are pieces 0, 1 and 2: a model
  // without <s> and </s> (spm_train --bos_id=-1) put ordinary pieces on ids 2 and 3, so a comma
  // became </s>.
  if (sp_->unk_id() != 0 || sp_->bos_id() != 1 || sp_->eos_id() != 2)
    throw UserError("tokenizer.model " + options_.model_path + " has <unk>, <s>, </s> at " +
                    std::to_string(sp_->unk_id()) + ", " + std::to_string(sp_->bos_id()) + ", " +
                    std::to_string(sp_->eos_id()) +
                    " (-1: none), expected 0, 1, 2 as XLM-R's (spm_train's defaults): its ids "
                    "would collide with <s>, <pad>, </s> and <unk>");
  chunks_exact_ = parts_encode_as_whole();
}

// A model that keeps extra spaces, or whose pieces span one, is encoded whole.
bool XlmrTokenizer::parts_encode_as_whole() const {
  for (std::string_view whole : {"ab cd", "ab  cd", "1 .",
                                 "a \xCC\x88"
                                 "b",
                                 "x \xE3\x80\x80 y"}) {
    std::vector<int32_t> one, parts;
    append_pieces(whole, one);
    const size_t space = whole.find(' ');
    append_pieces(whole.substr(0, space), parts);
    append_pieces(whole.substr(space), parts);
    if (one != parts) return false;
  }
  return true;
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

// A whole text as HF's XLM-R tokenizer sees it: HF splits the text at every Unicode
// whitespace character after sentencepiece's normalization, which keeps U+0085 (NEXT LINE)
// as a character of the word around it; HF splits there. As a space, sentencepiece splits
// there too, and the ids are HF's (tests/hf/tokenizer_parity.py).
void XlmrTokenizer::append_text(std::string_view text, std::vector<int32_t>& ids) const {
  constexpr std::string_view kNextLine = "\xC2\x85";
  if (text.find(kNextLine) == std::string_view::npos) return append_chunks(text, ids);
  thread_local std::string spaced;
  spaced.assign(text);
  for (size_t at = 0; (at = spaced.find(kNextLine, at)) != std::string::npos; at += 2)
    spaced.replace(at, 2, "  ");
  append_chunks(spaced, ids);
}

// XLM-R's pieces never hold a space but at their start, so sentencepiece's pieces of a text are
// those of its parts cut before ASCII spaces, each part normalized on its own (the space that
// begins a part becomes the piece prefix the whole text would give it). A long text is encoded
// a part of at least text_chunk_bytes at a time until the ids pass max_len, whose rest would be
// cut: a megabyte line costs what its first words cost, not the whole lattice.
void XlmrTokenizer::append_chunks(std::string_view text, std::vector<int32_t>& ids) const {
  if (!chunks_exact_) return append_pieces(text, ids);
  const size_t chunk = std::max<size_t>(options_.text_chunk_bytes, 1);
  while (!text.empty() && ids.size() <= options_.max_len) {
    size_t end = text.size() <= chunk ? text.size() : text.find(' ', chunk);
    if (end == std::string_view::npos) end = text.size();
    append_pieces(text.substr(0, end), ids);
    text.remove_prefix(end);
  }
}

// Through the word cache; counts the lookup and whether it hit.
void XlmrTokenizer::append_word(std::string_view word, size_t hash, std::vector<int32_t>& ids,
                                WordCounts& counts) const {
  if (word.size() > WordCache::kMaxWordBytes) return append_pieces(word, ids);
  ++counts.lookups;
  if (cache_->find(word, hash, ids)) {
    ++counts.hits;
    return;
  }
  const size_t before = ids.size();
  append_pieces(word, ids);
  cache_->insert(word, hash, ids.data() + before, ids.size() - before);
}

// The text's wordpunct words through the word cache, until the ids pass max_len. Words are
// read a few ahead and their slots and entries fetched from memory while earlier words are
// looked up: a lookup of a word outside the processor's caches otherwise waits on memory
// twice, and that wait was most of the tokenizer's time on real text.
void XlmrTokenizer::append_cached_words(std::string_view text, std::vector<int32_t>& ids) const {
  constexpr size_t kAhead = 4;
  struct Word {
    std::string_view text;
    size_t hash;
  } ring[kAhead];
  WordpunctWords words(text);
  size_t read = 0;
  auto read_one = [&] {
    Word& w = ring[read % kAhead];
    if (!words.next(w.text)) return false;
    w.hash = std::hash<std::string_view>()(w.text);
    cache_->prefetch_slot(w.hash);
    ++read;
    return true;
  };
  while (read < kAhead && read_one()) {
  }
  WordCounts counts;
  for (size_t done = 0; done < read;) {
    if (done + 1 < read) cache_->prefetch_entry(ring[(done + 1) % kAhead].hash);
    const Word& w = ring[done++ % kAhead];
    append_word(w.text, w.hash, ids, counts);
    if (ids.size() > options_.max_len) break;  // the rest would be cut anyway
    read_one();
  }
  cache_->count(counts.lookups, counts.hits);
}

WordCacheStats XlmrTokenizer::word_cache_stats() const {
  return cache_ ? cache_->stats() : WordCacheStats{};
}

std::vector<int32_t> XlmrTokenizer::encode_unpadded(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(std::min(options_.max_len, text.size()) + 16);  // one allocation, mostly
  ids.push_back(kBos);
  if (options_.pretokenize == Pretokenize::kWordpunct && cache_) {
    append_cached_words(text, ids);
  } else if (options_.pretokenize == Pretokenize::kWordpunct) {
    WordpunctWords words(text);
    for (std::string_view word; ids.size() <= options_.max_len && words.next(word);)
      append_pieces(word, ids);  // past max_len the rest would be cut anyway
  } else {
    append_text(text, ids);
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

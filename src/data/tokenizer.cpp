#include "data/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "core/parallel.h"
#include "data/spm_plugin.h"
#include "data/text.h"

namespace sx::data {

Pretokenize parse_pretokenize(const std::string& name) {
  if (name == "wordpunct") return Pretokenize::kWordpunct;
  if (name == "none") return Pretokenize::kNone;
  throw UserError("tokenizer.pretokenize expects one of wordpunct|none, found '" + name + "'");
}

XlmrTokenizer::XlmrTokenizer(const TokenizerOptions& options)
    : options_(options), sp_(make_sentencepiece_encoder()) {
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

std::vector<int32_t> XlmrTokenizer::encode_unpadded(std::string_view text) const {
  std::vector<int32_t> ids{kBos};
  if (options_.pretokenize == Pretokenize::kWordpunct) {
    for (std::string_view word : wordpunct_tokenize(text)) {
      append_pieces(word, ids);
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

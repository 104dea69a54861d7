// libsx_sentencepiece.so: sentencepiece behind the SentencePieceEncoder interface.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "data/spm_plugin.h"

namespace {

class Encoder final : public sx::data::SentencePieceEncoder {
 public:
  bool load(const char* model_path, char* error, size_t error_capacity) override {
    auto status = processor_.Load(model_path);
    if (status.ok()) return true;
    std::snprintf(error, error_capacity, "%s", status.ToString().c_str());
    return false;
  }
  size_t encode(const char* text, size_t length, int* ids, size_t capacity) const override {
    thread_local std::vector<int> pieces;  // allocated and freed on this side only
    pieces.clear();
    processor_.Encode({text, length}, &pieces);  // a failure leaves no pieces
    std::copy_n(pieces.begin(), std::min(capacity, pieces.size()), ids);
    return pieces.size();
  }
  int piece_size() const override { return processor_.GetPieceSize(); }
  int unk_id() const override { return processor_.unk_id(); }
  int bos_id() const override { return processor_.bos_id(); }
  int eos_id() const override { return processor_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) sx::data::SentencePieceEncoder*
sx_sentencepiece_create() {
  return new Encoder();
}

// libsx_sentencepiece.so: sentencepiece behind the SentencePieceEncoder interface.
#include <sentencepiece_processor.h>

#include "data/spm_plugin.h"

namespace {

class Encoder final : public sx::data::SentencePieceEncoder {
 public:
  std::string load(const std::string& model_path) override {
    auto status = processor_.Load(model_path);
    return status.ok() ? std::string() : status.ToString();
  }
  void encode(std::string_view text, std::vector<int>* ids) const override {
    ids->clear();
    processor_.Encode({text.data(), text.size()}, ids);  // a failure leaves no ids
  }
  int piece_size() const override { return processor_.GetPieceSize(); }
  int unk_id() const override { return processor_.unk_id(); }

 private:
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) sx::data::SentencePieceEncoder*
sx_sentencepiece_create() {
  return new Encoder();
}

// The boundary between the tokenizer and libsentencepiece.
//
// Why a plugin: Debian's libsentencepiece embeds (and exports) its own protobuf-lite 3.14,
// while Debian's libtorch links the system libprotobuf 3.21. Linked into one process, one
// copy serves both and the process dies (a crash in protobuf's static initialisers, or
// sentencepiece's protobuf version check). So sentencepiece lives in a small module,
// libsx_sentencepiece.so, that the tokenizer opens with RTLD_LOCAL | RTLD_DEEPBIND: the
// module and sentencepiece bind to their own symbols first, and nothing of them reaches the
// global scope where libtorch's protobuf lives. Only this interface crosses the boundary.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sx::data {

class SentencePieceEncoder {
 public:
  virtual ~SentencePieceEncoder() = default;
  // Returns "" on success, else the reason.
  virtual std::string load(const std::string& model_path) = 0;
  virtual void encode(std::string_view text, std::vector<int>* ids) const = 0;
  virtual int piece_size() const = 0;
  virtual int unk_id() const = 0;
};

// Opens the module (once per process) and creates an encoder. Throws UserError if the
// module cannot be found or opened. Search order: $SX_SENTENCEPIECE_PLUGIN, the
// executable's directory, its ../lib, then the build tree's lib directory.
std::unique_ptr<SentencePieceEncoder> make_sentencepiece_encoder();

}  // namespace sx::data

// The module's one exported symbol.
extern "C" sx::data::SentencePieceEncoder* sx_sentencepiece_create();

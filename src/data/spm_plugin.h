// The boundary between the tokenizer and libsentencepiece.
//
// Why a plugin: Debian's libsentencepiece embeds (and exports) its own protobuf-lite 3.14,
// while Debian's libtorch links the system libprotobuf 3.21. Linked into one process, one
// copy serves both and the process dies (a crash in protobuf's static initialisers, or
// sentencepiece's protobuf version check). So sentencepiece lives in a small module,
// libsx_sentencepiece.so, that the tokenizer opens with RTLD_LOCAL | RTLD_DEEPBIND (where
// libtorch is Debian's; plain RTLD_LOCAL elsewhere, see data/CMakeLists.txt): the module and
// sentencepiece bind to their own symbols first, and nothing of them reaches the global
// scope where libtorch's protobuf lives. Only this interface crosses the boundary,
// and no heap memory crosses it: with DEEPBIND the module may bind malloc to another
// allocator than the program's (Ubuntu's sentencepiece links tcmalloc), so memory allocated
// on one side and freed on the other would corrupt the heap. The interface passes plain
// buffers only, and the module deletes its own objects (the virtual destructor runs there).
#pragma once

#include <cstddef>
#include <memory>

namespace sx::data {

class SentencePieceEncoder {
 public:
  virtual ~SentencePieceEncoder() = default;
  // True on success; else writes the reason (NUL-terminated, cut to capacity) into error.
  virtual bool load(const char* model_path, char* error, size_t error_capacity) = 0;
  // Writes up to `capacity` piece ids of the text; returns how many there are in all.
  virtual size_t encode(const char* text, size_t length, int* ids, size_t capacity) const = 0;
  virtual int piece_size() const = 0;
  virtual int unk_id() const = 0;
  // The ids of <s> and </s> in the model (-1 when it has none).
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// Opens the module (once per process) and creates an encoder. Throws UserError if the
// module cannot be found or opened. Search order: $SX_SENTENCEPIECE_PLUGIN, the
// executable's directory, its ../lib, then the build tree's lib directory.
std::unique_ptr<SentencePieceEncoder> make_sentencepiece_encoder();

}  // namespace sx::data

// The module's one exported symbol.
extern "C" sx::data::SentencePieceEncoder* sx_sentencepiece_create();

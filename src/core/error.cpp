#include "core/error.h"

#include <new>

namespace sx {

namespace {

// libtorch appends its stack trace on the lines after the message: "frame #0: ..." (1.x) or
// "Exception raised from ... (most recent call first):" (2.x).
std::string without_backtrace(std::string text) {
  for (const char* start : {"\nException raised from ", "\nframe #"})
    if (const size_t at = text.find(start); at != std::string::npos) text.resize(at);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The allocator's own words, from where they start to the size it was asked for: "CUDA out of
// memory. Tried to allocate 2.00 GiB." / "DefaultCPUAllocator: can't allocate memory: you
// tried to allocate 967852032 bytes. Error code 12 (...)".
std::string allocator_words(const std::string& text) {
  std::string words = text.substr(0, text.find('\n'));
  for (const char* from : {"DefaultCPUAllocator", "CUDA out of memory"})
    if (const size_t at = words.find(from); at != std::string::npos) {
      words = words.substr(at);
      break;
    }
  if (const size_t tried = words.find("Tried to allocate"); tried != std::string::npos)
    if (const size_t end = words.find(". ", tried); end != std::string::npos) words.resize(end + 1);
  return words;
}

bool is_out_of_memory(const std::exception& e, const std::string& text) {
  if (dynamic_cast<const std::bad_array_new_length*>(&e)) return false;  // a negative size: a bug
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  const std::string first = text.substr(0, text.find('\n'));
  if (first.find("MPI_ERR") != std::string::npos)
    return false;  // MPI's: locked memory, not a batch
  for (const char* words : {"out of memory", "can't allocate memory", "not enough memory"})
    if (first.find(words) != std::string::npos) return true;
  return false;
}

}  // namespace

Failure failure_of(const std::exception& e) {
  if (dynamic_cast<const UserError*>(&e)) return {kExitUserError, e.what()};
  const std::string text = without_backtrace(e.what());
  if (is_out_of_memory(e, text)) {
    const bool plain = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    const std::string words = plain ? "" : allocator_words(text);
    return {kExitUserError,
            "out of memory" + (words.empty() ? "" : " (" + words + ")") +
                ": the work is larger than this machine holds; lower train.pairs_per_rank "
                "(train.accumulation_steps keeps the global batch), export.batch_size or "
                "tokenizer.max_len"};
  }
  return {kExitInternal, text};
}

}  // namespace sx

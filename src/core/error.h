// Errors the user can fix (config, data, files) versus bugs. A UserError's message is one
// line that names the file/line or key, what was found and what was expected; the CLI
// prints it and exits with kExitUserError, never a stack trace.
#pragma once

#include <stdexcept>
#include <string>

namespace sx {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitUserError = 2;

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the program says of an exception that ends it, and its exit code:
// - a UserError: its message, kExitUserError;
// - out of memory (std::bad_alloc, libtorch's CPU or CUDA allocator): one line with the
//   allocator's words and the keys that size the work, kExitUserError (the batch is too large
//   for the machine; a requeue would fail alike);
// - anything else: kExitInternal, its text without the stack trace libtorch appends (a rank's
//   log file, where the command keeps one, gets the whole text: log_error_to_files).
// `text` has no "error:" or "internal error:" prefix; the caller adds its own.
struct Failure {
  int code = kExitInternal;
  std::string text;
};
Failure failure_of(const std::exception& e);

}  // namespace sx

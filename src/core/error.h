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

}  // namespace sx

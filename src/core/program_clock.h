// Time since the program's start: the whole-job budget (run.max_duration) counts from it.
// main() marks the start first thing; a program that does not (a test) counts from the
// first use.
#pragma once

#include <chrono>

namespace sx {

inline std::chrono::steady_clock::time_point& program_start() {
  static std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  return start;
}

inline void mark_program_start() {
  program_start() = std::chrono::steady_clock::now();
}

inline double program_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start()).count();
}

}  // namespace sx

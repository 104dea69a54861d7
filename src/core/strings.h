// Small string helpers shared by the config, CLI and data layers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sx {

std::vector<std::string> split(std::string_view text, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string trim(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);

// Edit distance, for "did you mean" suggestions.
size_t levenshtein(std::string_view a, std::string_view b);
// The candidate closest to `word`, or "" when nothing is reasonably close.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// "90m", "2h", "1h30m", "45s", "3600" (seconds) -> seconds. Throws std::invalid_argument.
double parse_duration(std::string_view text);

// An interval given as a count of steps or as a duration: "500" -> 500 steps; "90s", "30m",
// "2h", "1h30m" (a unit is required) -> seconds; "", "0", "0s" -> off (both zero). Throws
// std::invalid_argument.
struct StepsOrDuration {
  int64_t steps = 0;
  double seconds = 0;
  bool off() const { return steps == 0 && seconds == 0; }
};
StepsOrDuration parse_steps_or_duration(std::string_view text);
std::string format_duration(double seconds);

// Quote a value for an error message, shortened if long.
std::string quote_value(std::string_view value, size_t max_len = 60);

}  // namespace sx

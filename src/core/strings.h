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
// The view without leading and trailing ASCII whitespace (std::isspace), as trim copies it.
std::string_view trim_view(std::string_view text);
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
// format_duration, but a budget under 10 s keeps its fraction: "0.5s", not "1s".
std::string format_budget(double seconds);

// "1 rank", "2 ranks": a count and its noun (plural with an s).
std::string count_of(int64_t n, std::string_view noun);

// std::from_chars of a double over the whole text: true when it read all of it and the value
// is in range. A plain decimal ("0.0236186", "1": digits, at most one '.' between digits, up
// to 19 digits, below 2^53 without the point) is computed directly; its value is exact the
// same (one correctly rounded division of two exact doubles, Clinger's fast path).
bool parse_double(std::string_view text, double& value);

// Quote a value for an error message, shortened if long.
std::string quote_value(std::string_view value, size_t max_len = 60);

// A language (fold) name, as the data files give it and the features files store it: it names
// an HDF5 group, a fold, a JSON key and a table row, so it must be plain: ASCII letters,
// digits, '-' or '_', 1 to kMaxPlainName of them (so no '/', no invalid UTF-8).
inline constexpr size_t kMaxPlainName = 32;
bool is_plain_name(std::string_view name);
// For the error on a name that is not plain: "'es/x'; expected letters, digits, '-' or '_', at
// most 32", the name quoted with its control characters and invalid UTF-8 bytes as \xHH.
std::string plain_name_expected(std::string_view name);

}  // namespace sx

// Small string helpers shared by the config, CLI and data layers.
#pragma once

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
std::string format_duration(double seconds);

// Quote a value for an error message, shortened if long.
std::string quote_value(std::string_view value, size_t max_len = 60);

}  // namespace sx

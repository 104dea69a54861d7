#include "core/strings.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace sx {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = text.find(sep, start);
    out.emplace_back(
        text.substr(start, pos == std::string_view::npos ? text.size() - start : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string trim(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  return std::string(text.substr(b, e - b));
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

size_t levenshtein(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = levenshtein(word, c);
    // A key under the same leaf name in another section is a likely mix-up too.
    auto leaf = [](std::string_view s) { return s.substr(s.rfind('.') + 1); };
    if (leaf(word) == leaf(c)) d = std::min<size_t>(d, 2);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  // Accept up to a third of the word's length in edits (at least 2).
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_distance <= limit ? best : std::string();
}

double parse_duration(std::string_view text) {
  std::string s = trim(text);
  if (s.empty()) throw std::invalid_argument("empty duration");
  double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) throw std::invalid_argument("expected a number");
    double value = std::stod(s.substr(start, i - start));
    double unit = 1;
    if (i < s.size()) {
      switch (s[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        default:
          throw std::invalid_argument("unknown unit");
      }
      ++i;
    } else if (any) {
      throw std::invalid_argument("missing unit");
    }
    total += value * unit;
    any = true;
  }
  if (!std::isfinite(total) || total < 0) throw std::invalid_argument("out of range");
  return total;
}

StepsOrDuration parse_steps_or_duration(std::string_view text) {
  const std::string s = trim(text);
  StepsOrDuration out;
  if (s.empty()) return out;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    if (s.size() > 15) throw std::invalid_argument("too many steps");
    out.steps = std::stoll(s);
    return out;
  }
  if (!std::isalpha(static_cast<unsigned char>(s.back())))
    throw std::invalid_argument("a duration needs a unit");
  out.seconds = parse_duration(s);
  return out;
}

std::string format_duration(double seconds) {
  long s = std::lround(seconds);
  long h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
  std::string out;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (sec || out.empty()) out += std::to_string(sec) + "s";
  return out;
}

std::string quote_value(std::string_view value, size_t max_len) {
  std::string v(value.substr(0, max_len));
  if (value.size() > max_len) v += "...";
  return "'" + v + "'";
}

}  // namespace sx

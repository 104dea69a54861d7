#include "core/strings.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
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

std::string_view trim_view(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  return text.substr(b, e - b);
}

std::string trim(std::string_view text) {
  return std::string(trim_view(text));
}

namespace {

// A plain decimal's value, when the text is one (see parse_double).
bool plain_decimal(std::string_view text, double& value) {
  static_assert(FLT_EVAL_METHOD == 0, "the division must round once, in double");
  static constexpr double kPowers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                       1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
  if (text.empty() || text.size() > 20 || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      !std::isdigit(static_cast<unsigned char>(text.back())))
    return false;
  uint64_t digits = 0;
  int count = 0, fraction = -1;  // digits read; digits after the point (-1: no point yet)
  for (char c : text) {
    if (c == '.' && fraction < 0) {
      fraction = 0;
      continue;
    }
    if (c < '0' || c > '9' || ++count > 19) return false;
    digits = digits * 10 + uint64_t(c - '0');
    if (fraction >= 0) ++fraction;
  }
  if (digits > (uint64_t(1) << 53)) return false;
  value = double(digits) / kPowers[std::max(fraction, 0)];
  return true;
}

}  // namespace

bool parse_double(std::string_view text, double& value) {
  if (plain_decimal(text, value)) return true;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end;
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
  double previous_unit = std::numeric_limits<double>::infinity();
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
    // "1h30m", not "30m1h" or "1h1h": each unit once, largest first; and not "1h90m": a
    // part below the unit before it (as a clock reads).
    if (unit >= previous_unit) throw std::invalid_argument("units out of order or repeated");
    if (any && value * unit >= previous_unit)
      throw std::invalid_argument("a part as large as the unit before it");
    previous_unit = unit;
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

std::string format_budget(double seconds) {
  if (seconds > 0 && seconds < 9.95 && seconds != std::round(seconds)) {  // 0.5s, not "1s"
    char text[32];
    std::snprintf(text, sizeof text, "%.2gs", seconds);
    return text;
  }
  return format_duration(seconds);
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

bool is_plain_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxPlainName) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

namespace {
// The length of the well-formed UTF-8 sequence of non-ASCII characters at the start of `s`, or 0
// (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, cut short).
size_t utf8_sequence(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  const size_t n = lead >= 0xC2 && lead <= 0xDF   ? 2
                   : lead >= 0xE0 && lead <= 0xEF ? 3
                   : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                  : 0;
  if (n == 0 || s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i)
    if ((b(i) & 0xC0) != 0x80) return 0;
  if ((lead == 0xE0 && b(1) < 0xA0) || (lead == 0xED && b(1) > 0x9F) ||
      (lead == 0xF0 && b(1) < 0x90) || (lead == 0xF4 && b(1) > 0x8F))
    return 0;
  return n;
}
}  // namespace

std::string plain_name_expected(std::string_view name) {
  std::string shown;
  const std::string_view head = name.substr(0, 60);
  for (size_t i = 0; i < head.size();) {
    const auto c = static_cast<unsigned char>(head[i]);
    const size_t n = c >= 0x80 ? utf8_sequence(head.substr(i)) : (c >= 0x20 && c != 0x7F ? 1 : 0);
    if (n == 0) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      shown += hex;
      ++i;
    } else {
      shown.append(head.substr(i, n));
      i += n;
    }
  }
  if (name.size() > head.size()) shown += "...";
  return "'" + shown + "'; expected letters, digits, '-' or '_', at most " +
         std::to_string(kMaxPlainName);
}

std::string count_of(int64_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

}  // namespace sx

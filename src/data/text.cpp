#include "data/text.h"

#include <utf8proc.h>

#include <cstdint>
#include <cstring>

namespace sx::data {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the byte starts none.
size_t valid_sequence_length(const unsigned char* s, size_t n, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    unsigned char c1 = s[i + 1];
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    unsigned char c1 = s[i + 1];
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

char32_t decode_at(const unsigned char* s, size_t len) {
  switch (len) {
    case 1:
      return s[0];
    case 2:
      return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    case 3:
      return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    default:
      return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
             (s[3] & 0x3Fu);
  }
}

// The first non-ASCII byte at or after s[i] (n when none), eight bytes at a time.
size_t ascii_run_end(const unsigned char* s, size_t i, size_t n) {
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, s + i, 8);
    if (const uint64_t high = word & 0x8080808080808080ull) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      return i + size_t(__builtin_ctzll(high) / 8);  // the lowest address is the lowest byte
#else
      break;
#endif
    }
  }
  while (i < n && s[i] < 0x80) ++i;
  return i;
}

}  // namespace

size_t sanitize_utf8(std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = ascii_run_end(s, 0, n);  // fast path: the ASCII prefix
  if (i == n) return 0;
  size_t out = i, dropped = 0;
  while (i < n) {
    size_t len = valid_sequence_length(s, n, i);
    if (len == 0) {
      ++dropped;
      ++i;
      continue;
    }
    for (size_t k = 0; k < len; ++k) text[out++] = static_cast<char>(s[i + k]);
    i += len;
  }
  text.resize(out);
  return dropped;
}

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i = ascii_run_end(s, i + 1, n);
      continue;
    }
    // Two bytes (Latin accents, Greek, Cyrillic, ...) inline; the rest by the general rule.
    if (s[i] >= 0xC2 && s[i] <= 0xDF && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
      i += 2;
      continue;
    }
    const size_t len = valid_sequence_length(s, n, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string_view strip_python(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t b = 0, e = text.size();
  while (b < e) {
    if (s[b] < 0x80) {
      if (!is_python_space(s[b])) break;
      ++b;
      continue;
    }
    const size_t len = valid_sequence_length(s, e, b);
    if (len == 0 || !is_python_space(decode_at(s + b, len))) break;
    b += len;
  }
  while (e > b) {
    if (s[e - 1] < 0x80) {
      if (!is_python_space(s[e - 1])) break;
      --e;
      continue;
    }
    size_t start = e - 1;  // back to the lead byte of the last code point
    while (start > b && (s[start] & 0xC0) == 0x80 && e - start < 4) --start;
    const size_t len = valid_sequence_length(s, e, start);
    if (len != e - start || !is_python_space(decode_at(s + start, len))) break;
    e = start;
  }
  return text.substr(b, e - b);
}

size_t count_code_points(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

bool is_python_space(char32_t cp) {
  // str.isspace(): bidirectional class WS, B or S, or category Zs.
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_python_word_char(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  // str.isalnum(): letters (L*) and characters with a numeric value (N*).
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

namespace {

enum Class : uint8_t { kSpace, kWord, kOther };

// The class of every ASCII byte, for the fast path.
struct AsciiClasses {
  Class of[128];
  AsciiClasses() {
    for (char32_t c = 0; c < 128; ++c)
      of[c] = is_python_word_char(c) ? kWord : is_python_space(c) ? kSpace : kOther;
  }
};
const AsciiClasses kAscii;

// The class of the code point at s[i] and its length in bytes.
Class class_at(const unsigned char* s, size_t n, size_t i, size_t& len) {
  if (s[i] < 0x80) {
    len = 1;
    return kAscii.of[s[i]];
  }
  len = valid_sequence_length(s, n, i);
  if (len == 0) {  // not valid UTF-8 (callers sanitize first): treat the byte as "other"
    len = 1;
    return kOther;
  }
  const char32_t cp = decode_at(s + i, len);
  return is_python_word_char(cp) ? kWord : is_python_space(cp) ? kSpace : kOther;
}

}  // namespace

bool WordpunctWords::next(std::string_view& word) {
  const auto* s = reinterpret_cast<const unsigned char*>(text_.data());
  const size_t n = text_.size();
  size_t len = 0;
  Class run = kSpace;
  while (pos_ < n && (run = class_at(s, n, pos_, len)) == kSpace) pos_ += len;
  if (pos_ == n) return false;
  const size_t start = pos_;
  for (pos_ += len; pos_ < n && class_at(s, n, pos_, len) == run;) pos_ += len;
  word = text_.substr(start, pos_ - start);
  return true;
}

std::vector<std::string_view> wordpunct_tokenize(std::string_view text) {
  std::vector<std::string_view> words;
  WordpunctWords it(text);
  for (std::string_view w; it.next(w);) words.push_back(w);
  return words;
}

}  // namespace sx::data

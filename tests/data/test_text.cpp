// Python semantics of lengths, UTF-8 cleaning and the wordpunct split.
#include "data/text.h"

#include "core/rng.h"
#include "test_util.h"

namespace sx::data {
namespace {

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  for (auto w : wordpunct_tokenize(text)) out.emplace_back(w);
  return out;
}

TEST(Text, StripIsPythonsStrNarrowingTheView) {
  const std::string text = "\xC2\xA0\t hello world \xE3\x80\x80\n\x1f";  // NBSP, ideographic
  std::string_view s = strip_python(text);
  EXPECT_EQ(s, "hello world");
  EXPECT_EQ(s.data(), text.data() + 4);                       // no copy: a view of the same bytes
  EXPECT_EQ(strip_python(" \xE2\x80\x89\xE2\x80\xA8 "), "");  // thin space, line separator
  EXPECT_EQ(strip_python(""), "");
  // Zero-width space (U+200B) and a combining mark are not whitespace to Python.
  EXPECT_EQ(strip_python("\xE2\x80\x8B x \xCC\x81"), "\xE2\x80\x8B x \xCC\x81");
  EXPECT_EQ(strip_python("  \xC3\xA9  "), "\xC3\xA9");
}

TEST(Text, ValidUtf8AgreesWithSanitize) {
  for (std::string t : {"", "plain ascii text", "caf\xC3\xA9", "ab\xff", "\xC3", "\xED\xA0\x80",
                        "\xF0\x9F\x98\x80 ok", "12345678\xE2\x82\xAC"}) {
    std::string copy = t;
    EXPECT_EQ(is_valid_utf8(t), sanitize_utf8(copy) == 0) << t;
  }
}

// UTF-8 validity as RFC 3629's table gives it, one code point at a time: the reference the
// validators (which skip ASCII a word at a time) are checked against.
bool valid_by_the_table(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = s[i];
    // The sequence's length and the range of its second byte (the others: 80..BF).
    size_t len = 4;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong below
      if (c == 0xED) hi = 0x9F;  // surrogates above
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (c == 0xF0) lo = 0x90;  // overlong below
      if (c == 0xF4) hi = 0x8F;  // beyond U+10FFFF above
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned b = s[i + k];
      if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

TEST(Text, ValidUtf8AndSanitizeFollowTheTableOnGeneratedText) {
  // ASCII runs of every length around valid, truncated, overlong, surrogate and out-of-range
  // sequences, so that each lands at every offset of the 8-byte ASCII skipping.
  const std::vector<std::string> pieces = {"a",
                                           "abcdefghijklm",
                                           "\xC3\xA9",
                                           "\xD0\x96",
                                           "\xE2\x82\xAC",
                                           "\xF0\x9F\x98\x80",
                                           "\xC3",
                                           "\xE2\x82",
                                           "\xF0\x9F\x98",
                                           "\x80",
                                           "\xBF",
                                           "\xC0\x80",
                                           "\xC1\xBF",
                                           "\xE0\x80\x80",
                                           "\xED\xA0\x80",
                                           "\xED\x9F\xBF",
                                           "\xF4\x8F\xBF\xBF",
                                           "\xF4\x90\x80\x80",
                                           "\xF5\x80\x80\x80",
                                           "\xFF",
                                           "\xF0\x80\x80\x80"};
  Rng rng(5);
  for (int i = 0; i < 50000; ++i) {
    std::string t;
    const size_t n = rng.below(12);
    for (size_t k = 0; k < n; ++k) {
      t += std::string(rng.below(20), 'x');
      t += pieces[rng.below(pieces.size())];
    }
    const bool valid = valid_by_the_table(t);
    ASSERT_EQ(is_valid_utf8(t), valid) << i;
    std::string copy = t;
    const size_t dropped = sanitize_utf8(copy);
    ASSERT_EQ(dropped == 0, valid) << i;
    ASSERT_TRUE(valid_by_the_table(copy)) << i;
    ASSERT_EQ(copy.size() + dropped, t.size()) << i;
  }
}

TEST(Text, SanitizeDropsInvalidBytesOnly) {
  std::string s = "ok\xC3\xA9\xFF\xE2\x82 x\xED\xA0\x80y\xF4\x90\x80\x80z";
  // é stays; 0xFF, a truncated 3-byte sequence, a surrogate, and > U+10FFFF go.
  size_t dropped = sanitize_utf8(s);
  EXPECT_EQ(s, "ok\xC3\xA9 xyz");
  EXPECT_EQ(dropped, 1u + 2u + 3u + 4u);
  std::string ascii = "plain";
  EXPECT_EQ(sanitize_utf8(ascii), 0u);
}

TEST(Text, CodePointsAsPythonLen) {
  EXPECT_EQ(count_code_points("abc"), 3u);
  EXPECT_EQ(count_code_points("\xC3\xA9t\xC3\xA9"), 3u);  // été
  EXPECT_EQ(count_code_points("\xF0\x9F\x98\x80"), 1u);   // an emoji
}

TEST(Text, WordpunctRunsOfWordAndOtherCharacters) {
  EXPECT_EQ(words("Hello, world!!"), (std::vector<std::string>{"Hello", ",", "world", "!!"}));
  EXPECT_EQ(words("a_b--c 4.5"), (std::vector<std::string>{"a_b", "--", "c", "4", ".", "5"}));
  EXPECT_EQ(words("  "), std::vector<std::string>{});
}

TEST(Text, CombiningMarksAreNotWordCharacters) {
  // Devanagari vowel sign and virama are Mc/Mn: Python's \w does not match them.
  EXPECT_EQ(words("\xE0\xA4\xAA\xE0\xA4\xB0\xE0\xA5\x80"),  // पर + ी
            (std::vector<std::string>{"\xE0\xA4\xAA\xE0\xA4\xB0", "\xE0\xA5\x80"}));
}

TEST(Text, PythonWhitespaceSeparatesAndOthersDoNot) {
  // NBSP, ideographic space and U+0085 are whitespace to str.isspace; ZWSP (U+200B) is not.
  EXPECT_EQ(words("a\xC2\xA0"
                  "b\xE3\x80\x80"
                  "c\xC2\x85"
                  "d"),
            (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(words("a\xE2\x80\x8B"
                  "b"),
            (std::vector<std::string>{"a", "\xE2\x80\x8B", "b"}));
  EXPECT_TRUE(is_python_space(0x1C));
  EXPECT_FALSE(is_python_space(0x180E));
}

TEST(Text, NumbersOfEveryScriptAreWordCharacters) {
  EXPECT_TRUE(is_python_word_char(U'٣'));  // Arabic-Indic digit (Nd)
  EXPECT_TRUE(is_python_word_char(U'Ⅻ'));  // Roman numeral (Nl)
  EXPECT_TRUE(is_python_word_char(U'½'));  // vulgar fraction (No)
  EXPECT_TRUE(is_python_word_char(U'中'));
  EXPECT_FALSE(is_python_word_char(U'€'));
  EXPECT_FALSE(is_python_word_char(0x0301));  // combining acute accent
}

}  // namespace
}  // namespace sx::data

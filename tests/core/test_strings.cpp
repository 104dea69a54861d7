#include "core/strings.h"

#include <charconv>
#include <cstring>
#include <stdexcept>

#include "core/rng.h"
#include "test_util.h"

namespace sx {
namespace {

// What parse_double must equal: std::from_chars over the whole text, bit for bit.
void expect_parse_double_is_from_chars(const std::string& text) {
  double want = -7, got = -7;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, want);
  const bool ok = ec == std::errc() && ptr == end;
  ASSERT_EQ(parse_double(text, got), ok) << text;
  if (ok) {
    EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << text << ": " << got << " vs " << want;
  }
}

TEST(Strings, ParseDoubleIsFromCharsOnPlainDecimalsAndEverythingElse) {
  for (std::string t : {"0",
                        "1",
                        "0.5",
                        "00.1",
                        "0.0236186",
                        "1.0",
                        "0.0",
                        "1.",
                        ".5",
                        ".",
                        "",
                        "-0",
                        "-0.5",
                        "+1",
                        "1e5",
                        "1E-3",
                        "0x1p3",
                        "inf",
                        "nan",
                        " 1",
                        "1 ",
                        "1.2.3",
                        "9007199254740992",
                        "9007199254740993",
                        "0.9007199254740993",
                        "1234567890123456789",
                        "12345678901234567890",
                        "0.1234567890123456789",
                        "0.00000000000000000001",
                        "1e400",
                        "1e-400",
                        "abc",
                        "0.5x"})
    expect_parse_double_is_from_chars(t);
  Rng rng(11);  // random decimals of 1 to 24 digits, the point anywhere or nowhere
  for (int i = 0; i < 200000; ++i) {
    std::string t;
    const size_t digits = 1 + rng.below(24);
    for (size_t d = 0; d < digits; ++d) t += char('0' + rng.below(10));
    if (rng.below(4)) t.insert(rng.below(t.size() + 1), ".");
    expect_parse_double_is_from_chars(t);
  }
}

TEST(Strings, CountOfNamesOneInTheSingular) {
  EXPECT_EQ(count_of(1, "rank"), "1 rank");
  EXPECT_EQ(count_of(0, "rank"), "0 ranks");
  EXPECT_EQ(count_of(8, "rank"), "8 ranks");
}

TEST(Strings, Levenshtein) {
  EXPECT_EQ(levenshtein("kitten", "sitting"), 3u);
  EXPECT_EQ(levenshtein("", "abc"), 3u);
  EXPECT_EQ(levenshtein("same", "same"), 0u);
}

TEST(Strings, ClosestMatchRejectsFarCandidates) {
  EXPECT_EQ(closest_match("train.patiense", {"train.patience", "run.seed"}), "train.patience");
  EXPECT_EQ(closest_match("zzzzzzzz", {"train.patience", "run.seed"}), "");
}

TEST(Strings, Durations) {
  EXPECT_DOUBLE_EQ(parse_duration("90m"), 5400);
  EXPECT_DOUBLE_EQ(parse_duration("2h"), 7200);
  EXPECT_DOUBLE_EQ(parse_duration("1h30m"), 5400);
  EXPECT_DOUBLE_EQ(parse_duration("3600"), 3600);
  EXPECT_DOUBLE_EQ(parse_duration("1.5h"), 5400);
  EXPECT_THROW(parse_duration("2x"), std::invalid_argument);
  EXPECT_THROW(parse_duration("1h30"), std::invalid_argument);
  EXPECT_THROW(parse_duration(""), std::invalid_argument);
  EXPECT_DOUBLE_EQ(parse_duration("1d2h3m4s"), 93784);
  // Each unit once, largest first: "30m1h" and "1h1h" were 5400 and 7200.
  EXPECT_THROW(parse_duration("30m1h"), std::invalid_argument);
  EXPECT_THROW(parse_duration("1h1h"), std::invalid_argument);
  // A part below the unit before it, as a clock reads: "1h90m" (9000 s) was taken.
  EXPECT_THROW(parse_duration("1h90m"), std::invalid_argument);
  EXPECT_THROW(parse_duration("1m60s"), std::invalid_argument);
  EXPECT_THROW(parse_duration("1d24h"), std::invalid_argument);
  EXPECT_DOUBLE_EQ(parse_duration("1h59.5m"), 3600 + 59.5 * 60);
  EXPECT_EQ(format_duration(5400), "1h30m");
  EXPECT_EQ(format_duration(0), "0s");
  // A budget of 0.5 s "ran out" as one of 1s; progress lines keep whole seconds.
  EXPECT_EQ(format_budget(0.5), "0.5s");
  EXPECT_EQ(format_budget(3.25), "3.2s");
  EXPECT_EQ(format_budget(59.97), "1m");
  EXPECT_EQ(format_budget(90.4), "1m30s");
  EXPECT_EQ(format_duration(0.5), "1s");
}

TEST(Strings, StepsOrDurations) {
  EXPECT_EQ(parse_steps_or_duration("500").steps, 500);
  EXPECT_EQ(parse_steps_or_duration("500").seconds, 0);
  EXPECT_DOUBLE_EQ(parse_steps_or_duration("30m").seconds, 1800);
  EXPECT_DOUBLE_EQ(parse_steps_or_duration(" 1h30m ").seconds, 5400);
  EXPECT_EQ(parse_steps_or_duration("30m").steps, 0);
  EXPECT_TRUE(parse_steps_or_duration("").off());
  EXPECT_TRUE(parse_steps_or_duration("0").off());
  EXPECT_TRUE(parse_steps_or_duration("0s").off());
  EXPECT_FALSE(parse_steps_or_duration("1s").off());
  EXPECT_THROW(parse_steps_or_duration("1.5"), std::invalid_argument);  // steps are whole
  EXPECT_THROW(parse_steps_or_duration("-5"), std::invalid_argument);
  EXPECT_THROW(parse_steps_or_duration("5x"), std::invalid_argument);
  EXPECT_THROW(parse_steps_or_duration("often"), std::invalid_argument);
  EXPECT_THROW(parse_steps_or_duration("99999999999999999999"), std::invalid_argument);
}

TEST(Strings, SplitJoinTrim) {
  EXPECT_EQ(trim_view(" \t x y \n"), "x y");
  EXPECT_EQ(trim_view("   "), "");
  EXPECT_EQ(split("a,b,,c", ','), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(join({"a", "b"}, ", "), "a, b");
  EXPECT_EQ(trim("  x y \t"), "x y");
}

TEST(Strings, PlainNames) {
  for (const char* name : {"en", "pt-BR", "zh_CN", "x1", "abcdefghijklmnopqrstuvwxyz012345"})
    EXPECT_TRUE(is_plain_name(name)) << name;
  for (const char* name :
       {"", "es/x", "../it", "es ", "español", "e\xff", "a.b", "abcdefghijklmnopqrstuvwxyz0123456"})
    EXPECT_FALSE(is_plain_name(name)) << name;
  EXPECT_EQ(plain_name_expected("es/x"),
            "'es/x'; expected letters, digits, '-' or '_', at most 32");
  // Valid UTF-8 is shown as it is; control characters and invalid bytes as \xHH.
  EXPECT_EQ(plain_name_expected("español\t\xff\xc3(\xed\xa0\x80"),
            "'español\\x09\\xFF\\xC3(\\xED\\xA0\\x80'; expected letters, digits, '-' or '_', "
            "at most 32");
  EXPECT_EQ(plain_name_expected(std::string(100, 'a')).substr(0, 65),
            "'" + std::string(60, 'a') + "...'");
}

}  // namespace
}  // namespace sx

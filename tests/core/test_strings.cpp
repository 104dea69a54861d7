#include "core/strings.h"

#include <stdexcept>

#include "test_util.h"

namespace sx {
namespace {

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
  EXPECT_EQ(format_duration(5400), "1h30m");
  EXPECT_EQ(format_duration(0), "0s");
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

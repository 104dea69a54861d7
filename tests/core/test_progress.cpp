// Progress display: the remaining-time arithmetic and the bar, without a clock.
#include <gtest/gtest.h>

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/progress.h"

namespace sx {
namespace {

TEST(Progress, RemainingTimeIsTheRestAtTheAveragePaceSoFar) {
  EXPECT_DOUBLE_EQ(remaining_seconds(25, 100, 10), 30);  // 2.5 per second, 75 to go
  EXPECT_DOUBLE_EQ(remaining_seconds(100, 100, 10), 0);
  EXPECT_DOUBLE_EQ(remaining_seconds(120, 100, 10), 0);  // never negative past the total
  // Unknown: no total, nothing done yet, no time elapsed.
  EXPECT_LT(remaining_seconds(5, 0, 10), 0);
  EXPECT_LT(remaining_seconds(0, 100, 10), 0);
  EXPECT_LT(remaining_seconds(5, 100, 0), 0);
}

TEST(Progress, BarFillsInProportionAndStaysItsWidth) {
  EXPECT_EQ(bar_text(0, 10), "..........");
  EXPECT_EQ(bar_text(0.5, 10), "#####.....");
  EXPECT_EQ(bar_text(1, 10), "##########");
  EXPECT_EQ(bar_text(3, 10), "##########");
  EXPECT_EQ(bar_text(-1, 4), "....");
  EXPECT_EQ(bar_text(std::nan(""), 4), "....");
}

TEST(Progress, ModesParseAndAnythingElseIsAUserError) {
  EXPECT_EQ(parse_enum<ProgressMode>("auto", "run.progress"), ProgressMode::kAuto);
  EXPECT_EQ(parse_enum<ProgressMode>("lines", "run.progress"), ProgressMode::kLines);
  EXPECT_EQ(parse_enum<ProgressMode>("off", "run.progress"), ProgressMode::kOff);
  EXPECT_THROW(parse_enum<ProgressMode>("bar", "run.progress"), UserError);
  // lines: never a bar, terminal or not.
  set_progress_options(ProgressMode::kLines, 5);
  EXPECT_FALSE(progress_bar_on_terminal());
  EXPECT_DOUBLE_EQ(progress_interval(), 5);
  set_progress_options(ProgressMode::kAuto, 30);
}

}  // namespace
}  // namespace sx

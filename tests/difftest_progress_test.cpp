// tracejit-difftest's progress display (tools/difftest/progress.h): the line's numbers, one
// self-updating line on a terminal, plain periodic lines otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "progress.h"

namespace {

using difftest::Progress;
using difftest::progress_line;
using testing::HasSubstr;
using testing::Not;

TEST(DifftestProgress, LineSaysDoneMismatchesRateAndTimeLeft) {
  // 100 of 1000 in 20 s: 5 programs/s, so 900 left take 180 s.
  EXPECT_EQ(progress_line(100, 1000, 0, 20.0),
            "100/1000 programs, 0 mismatches, 5.0 programs/s, 3m00s left");
  EXPECT_EQ(progress_line(10, 100000, 1, 4.0),  // 2.5/s: 99990 / 2.5 = 39996 s
            "10/100000 programs, 1 mismatch, 2.5 programs/s, 11h06m left");
  EXPECT_EQ(progress_line(3, 4, 2, 1.5), "3/4 programs, 2 mismatches, 2.0 programs/s, 1s left");
  EXPECT_THAT(progress_line(0, 10, 0, 0.0), HasSubstr("? left"));
}

TEST(DifftestProgress, TerminalRewritesOneLine) {
  std::ostringstream out;
  Progress p(out, /*terminal=*/true, 10, /*interval_s=*/1.0);
  p.update(1, 0, 0.1);  // the first update draws
  p.update(2, 0, 0.5);  // within the interval: not redrawn
  p.update(3, 0, 1.2);
  p.clear();            // a report follows on a clean line
  p.update(4, 1, 1.3);  // drawn again at once
  p.finish(10, 1, 2.0);
  const std::string s = out.str();
  EXPECT_EQ(s.find('\n'), s.size() - 1) << s;  // one line, ended only at the finish
  EXPECT_THAT(s, HasSubstr("\r[difftest] 1/10 programs"));
  EXPECT_THAT(s, Not(HasSubstr("2/10")));
  EXPECT_THAT(s, HasSubstr("\r[difftest] 3/10 programs"));
  EXPECT_THAT(s, HasSubstr("\r\x1b[K\r[difftest] 4/10 programs, 1 mismatch,"));
  EXPECT_THAT(
      s, HasSubstr("\r[difftest] 10/10 programs, 1 mismatch, 5.0 programs/s, 0s left\x1b[K\n"));
}

TEST(DifftestProgress, LogGetsPlainPeriodicLines) {
  std::ostringstream out;
  Progress p(out, /*terminal=*/false, 100, 0.2, /*log_interval_s=*/30);
  for (int i = 1; i <= 100; ++i) p.update(i, 0, i * 1.0);  // one program a second
  p.finish(100, 0, 100.0);
  const std::string s = out.str();
  EXPECT_EQ(s.find('\r'), std::string::npos);
  EXPECT_EQ(s.find('\x1b'), std::string::npos);
  // Lines at 30, 60 and 90 s.
  EXPECT_EQ(s,
            "[difftest] 30/100 programs, 0 mismatches, 1.0 programs/s, 1m10s left\n"
            "[difftest] 60/100 programs, 0 mismatches, 1.0 programs/s, 40s left\n"
            "[difftest] 90/100 programs, 0 mismatches, 1.0 programs/s, 10s left\n");
}

}  // namespace

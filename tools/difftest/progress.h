#pragma once
// Progress of a long tracejit-difftest run on stderr: on a terminal one line that rewrites
// itself ("\r... \x1b[K"), otherwise a plain line now and then, so that a log keeps a trace
// without a screenful of carriage returns.
#include <cstdint>
#include <ostream>
#include <string>

namespace difftest {

/// "1200/5000 programs, 0 mismatches, 85.3 programs/s, 44 s left" (time left from the mean
/// rate so far; "?" before any program is done).
std::string progress_line(int64_t done, int64_t total, int64_t mismatches, double elapsed_s);

class Progress {
 public:
  /// Redraws at most every `interval_s` on a terminal, writes a line every `log_interval_s`
  /// otherwise.
  Progress(std::ostream& out, bool terminal, int64_t total, double interval_s = 0.2,
           double log_interval_s = 30);
  /// After program `done` of the run, `elapsed_s` seconds in.
  void update(int64_t done, int64_t mismatches, double elapsed_s);
  /// Removes the self-updating line, so that a report starts on a clean line; the next update
  /// draws it again.
  void clear();
  /// The final state: on a terminal the line is left standing, ended with a newline.
  void finish(int64_t done, int64_t mismatches, double elapsed_s);

 private:
  std::ostream& out_;
  const bool terminal_;
  const int64_t total_;
  const double interval_s_;
  double last_s_ = -1;
  bool drawn_ = false;
};

}  // namespace difftest

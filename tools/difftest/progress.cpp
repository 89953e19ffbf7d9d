#include "progress.h"

#include "absl/strings/str_format.h"

namespace difftest {

std::string progress_line(int64_t done, int64_t total, int64_t mismatches, double elapsed_s) {
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  std::string left = "?";
  if (rate > 0) {
    const int64_t s = static_cast<int64_t>(static_cast<double>(total - done) / rate + 0.5);
    left = s >= 3600 ? absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60)
           : s >= 60 ? absl::StrFormat("%dm%02ds", s / 60, s % 60)
                     : absl::StrFormat("%ds", s);
  }
  return absl::StrFormat("%d/%d programs, %d mismatch%s, %.1f programs/s, %s left", done, total,
                         mismatches, mismatches == 1 ? "" : "es", rate, left);
}

Progress::Progress(std::ostream& out, bool terminal, int64_t total, double interval_s,
                   double log_interval_s)
    : out_(out),
      terminal_(terminal),
      total_(total),
      interval_s_(terminal ? interval_s : log_interval_s) {}

void Progress::update(int64_t done, int64_t mismatches, double elapsed_s) {
  if (last_s_ >= 0 && elapsed_s - last_s_ < interval_s_) return;
  if (last_s_ < 0 && !terminal_ && elapsed_s < interval_s_) return;  // short runs log nothing
  last_s_ = elapsed_s;
  const std::string line = "[difftest] " + progress_line(done, total_, mismatches, elapsed_s);
  if (terminal_) {
    out_ << "\r" << line << "\x1b[K" << std::flush;
    drawn_ = true;
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void Progress::clear() {
  if (!drawn_) return;
  out_ << "\r\x1b[K" << std::flush;
  drawn_ = false;
  last_s_ = -1;
}

void Progress::finish(int64_t done, int64_t mismatches, double elapsed_s) {
  if (!terminal_) return;
  out_ << "\r[difftest] " << progress_line(done, total_, mismatches, elapsed_s) << "\x1b[K\n"
       << std::flush;
}

}  // namespace difftest

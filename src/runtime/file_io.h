#pragma once
// File descriptors for the files tracejit writes itself (dumps, the disk cache): closed when
// they go out of scope, written in full or reported as failed.
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace tracejit::detail {

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Writes all of `bytes` to `fd`, retrying after signals; false on any short or failed write.
inline bool write_all(int fd, std::string_view bytes) {
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace tracejit::detail

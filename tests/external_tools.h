#pragma once
// Programs some tests use when the machine has them (Graphviz's dot, rsvg-convert, mpirun):
// found on PATH, never required.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/str_split.h"

namespace tracejit_test {

/// True when `program` is an executable file in a directory of PATH.
inline bool on_path(std::string_view program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty()))
    if (::access((std::string(dir) + "/" + std::string(program)).c_str(), X_OK) == 0) return true;
  return false;
}

/// Runs `command` with /bin/sh and returns its exit status (-1 when it did not exit).
inline int run_shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Files one compilation writes into TRACEJIT_DUMP_DIR: five texts, two pictures in DOT, and
/// their SVG renderings when Graphviz is installed.
inline size_t dump_files_per_compilation() { return on_path("dot") ? 9 : 7; }

}  // namespace tracejit_test

#include "runtime/dumps.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ir/dot.h"
#include "runtime/file_io.h"

namespace tracejit::detail {
namespace {

// Long enough for any readable name, short of NAME_MAX (255) with the ".SEQ.suffix" added.
constexpr size_t kMaxDumpNameLength = 100;

// Pictures of larger programs are left as .dot: Graphviz's layout of thousands of nodes takes
// longer than the compilation it shows.
constexpr size_t kMaxRenderedDotBytes = 512 * 1024;

std::atomic<int64_t> g_dump_sequence{0};

// A dump is a diagnostic: failing to write one must not fail the user's call. One warning per
// directory, not one per compilation.
void warn_dump_failure(const std::string& dir, const std::string& what) {
  static std::mutex mu;
  static absl::flat_hash_set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (!warned.insert(dir).second) return;
  std::cerr << "[jit] warning: " << what << " (TRACEJIT_DUMP_DIR=" << dir
            << "): no dumps are written there; compiled code runs as usual. Point "
               "TRACEJIT_DUMP_DIR at a writable directory\n";
}

// A dump file, created relative to the directory and never through a symlink planted in it.
int open_dump(int dir_fd, const std::string& file) {
  return ::openat(dir_fd, file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                  0644);
}

// Renders STEM.dot to STEM.svg with Graphviz's `dot` when it is on PATH; without it (or when it
// fails) there is no picture and no error: the .dot file is the dump. dot reads and writes the
// descriptors opened here, so it follows no path of its own.
void render_svg(int dir_fd, const std::string& stem) {
  Fd in{::openat(dir_fd, (stem + ".dot").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  Fd out{open_dump(dir_fd, stem + ".svg")};
  if (in.fd < 0 || out.fd < 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.fd, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  char arg0[] = "dot", arg1[] = "-Tsvg";
  char* argv[] = {arg0, arg1, nullptr};
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "dot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  bool ok =
      rc == 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) ::unlinkat(dir_fd, (stem + ".svg").c_str(), 0);  // no half-written picture
}

}  // namespace

std::string dump_file_name(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, kMaxDumpNameLength)) {
    bool safe = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    // A dot may not start the name (hidden files, "..") nor follow another dot.
    if (c == '.' && (out.empty() || out.back() == '.')) safe = false;
    out += safe ? c : '_';
  }
  if (!out.empty() && out.back() == '.') out.back() = '_';  // "x." + ".0001" would hold ".."
  return out.empty() ? "jit" : out;
}

bool dumps_requested() { return std::getenv("TRACEJIT_DUMP_DIR") != nullptr; }

void write_dumps(const std::string& name, const ir::Function& traced, const backend::Executable& exe) {
  const char* dir = std::getenv("TRACEJIT_DUMP_DIR");
  if (!dir || !*dir) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return warn_dump_failure(
        dir,
        absl::StrCat("cannot write dump files: cannot create the directory (", ec.message(), ")"));
  // Files are opened relative to the directory and never through a symlink planted in it.
  Fd dir_fd{::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0)
    return warn_dump_failure(
        dir, absl::StrCat("cannot write dump files: cannot open the directory (", std::strerror(errno), ")"));
  std::string base = absl::StrFormat("%s.%04d", dump_file_name(name), g_dump_sequence.fetch_add(1));
  const std::pair<const char*, std::string> files[] = {
      {".traced.txt", ir::to_string(traced)},     {".optimized.txt", exe.fused_ir()},
      {".ll", exe.llvm_ir()},                     {".opt.ll", exe.optimized_llvm_ir()},
      {".s", exe.assembly()},                     {".traced.dot", ir::to_dot(traced, name)},
      {".optimized.dot", exe.fused_dot()}};
  for (const auto& [suffix, text] : files) {
    std::string file = base + suffix;
    Fd out{open_dump(dir_fd.fd, file)};
    if (out.fd < 0 || !write_all(out.fd, text + "\n"))
      return warn_dump_failure(
          dir, absl::StrCat("cannot write dump file ", file, " (", std::strerror(errno), ")"));
  }
  for (const auto& [suffix, text] : files)
    if (absl::EndsWith(suffix, ".dot") && text.size() <= kMaxRenderedDotBytes)
      render_svg(dir_fd.fd, base + std::string(suffix, std::strlen(suffix) - 4));
}

}  // namespace tracejit::detail

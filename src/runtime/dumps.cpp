#include "runtime/dumps.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tracejit::detail {
namespace {

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

}  // namespace

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
  std::string base = absl::StrFormat("%s/%s.%04d", dir, name, g_dump_sequence.fetch_add(1));
  const std::pair<const char*, std::string> files[] = {
      {".traced.txt", ir::to_string(traced)},     {".optimized.txt", exe.fused_ir()},
      {".ll", exe.llvm_ir()},                     {".opt.ll", exe.optimized_llvm_ir()},
      {".s", exe.assembly()}};
  for (const auto& [suffix, text] : files) {
    std::ofstream out(base + suffix);
    out << text << "\n";
    if (!out) return warn_dump_failure(dir, absl::StrCat("cannot write dump file ", base, suffix));
  }
}

}  // namespace tracejit::detail

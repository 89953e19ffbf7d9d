#include "runtime/compile_pipeline.h"

#include <chrono>
#include <iostream>

#include "passes/pipeline.h"
#include "runtime/code_cache.h"
#include "runtime/code_key.h"
#include "runtime/disk_cache.h"
#include "runtime/tiered.h"

namespace tracejit::detail {
namespace {

PhaseTimes phase_times(double passes_s, const backend::BackendTimes& bt) {
  return {.passes_s = passes_s + bt.fusion_s, .lower_s = bt.lower_s, .llvm_opt_s = bt.llvm_opt_s,
          .codegen_s = bt.codegen_s};
}

}  // namespace

Compiled compile_traced(const ir::Function& traced, const std::string& name, const JitOptions& options,
                        bool want_texts) {
  auto t0 = std::chrono::steady_clock::now();
  auto optimized = std::make_shared<const ir::Function>(passes::optimize(traced));
  const std::string dir = disk_cache_dir(options);
  std::string key;
  if (options.share_code || !dir.empty()) key = code_key(*optimized, options);
  const double passes_s = seconds_since(t0);
  const bool reuse = !want_texts;  // cached code has no texts
  if (reuse && options.share_code)
    if (std::shared_ptr<const backend::Executable> exe = find_shared_code(key))
      return {std::move(exe), {.passes_s = passes_s}, CodeSource::kShared};
  const std::string full_key = dir.empty() ? "" : disk_key(key);
  if (reuse && !dir.empty()) {
    if (std::optional<backend::ObjectCode> code = load_entry(dir, full_key)) {
      try {
        std::shared_ptr<const backend::Executable> exe = backend::load(*optimized, *code);
        if (options.share_code) share_code(key, exe, exe->code_bytes());
        return {exe, phase_times(passes_s, exe->times()), CodeSource::kDisk};
      } catch (const Error& e) {
        std::cerr << "[jit] warning: compile cache entry " << dir << "/" << entry_file_name(full_key)
                  << " does not fit '" << name << "' (" << e.what() << "): compiling again\n";
      }
    }
  }
  const backend::CompileOptions compile_options{.name = name, .want_texts = want_texts,
                                                .fast_math = options.fast_math,
                                                .keep_object = !dir.empty()};
  // With a disk cache the optimized code is compiled at once and stored, so that the next
  // process loads it (a quick tier would store nothing for a function called once).
  std::shared_ptr<const backend::Executable> exe;
  if (!want_texts && dir.empty() && tiers_enabled(options)) {
    exe = compile_tiered(optimized, compile_options);
  } else {
    exe = backend::compile(*optimized, compile_options);
    if (const backend::ObjectCode* code = exe->object_code(); code && !dir.empty())
      store_entry(dir, full_key, *code);
  }
  if (options.share_code) share_code(std::move(key), exe, exe->code_bytes());
  return {exe, phase_times(passes_s, exe->times()), CodeSource::kCompiled};
}

}  // namespace tracejit::detail

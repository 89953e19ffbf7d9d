#pragma once
// jit's compile pipeline, written once for both JitCache::trace_and_add and JitCache::lower:
//   traced ir::Function -> passes::optimize -> code from the process's shared code, the disk
//   cache, or backend::compile (in two tiers, tiered.h) -> executable
#include <memory>
#include <string>

#include "backend/compile.h"
#include "ir/ir.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

/// Seconds spent in each phase of one compilation, split as JitStats counts them.
struct PhaseTimes {
  double passes_s = 0;  // IR passes and fusion
  double lower_s = 0;
  double llvm_opt_s = 0;
  double codegen_s = 0;  // a disk hit: linking its object
};

/// Where an executable's code came from.
enum class CodeSource { kCompiled, kShared, kDisk };

struct Compiled {
  std::shared_ptr<const backend::Executable> exe;
  PhaseTimes times;
  CodeSource source = CodeSource::kCompiled;
};

/// Optimizes and compiles `traced` (no captures) under `name`, with the backend settings that
/// `options` asks for; `want_texts` keeps every stage's text in the executable (and so compiles
/// afresh, at once and fully optimized).
Compiled compile_traced(const ir::Function& traced, const std::string& name, const JitOptions& options,
                        bool want_texts);

}  // namespace tracejit::detail

#pragma once
// jit's compile pipeline, written once for both JitCache::trace_and_add and JitCache::lower:
//   traced ir::Function -> passes::optimize -> backend::compile -> executable
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
  double codegen_s = 0;
};

struct Compiled {
  std::shared_ptr<const backend::Executable> exe;
  PhaseTimes times;
};

/// Optimizes and compiles `traced` (no captures) under `name`, with the backend settings that
/// `options` asks for; `want_texts` keeps every stage's text in the executable.
Compiled compile_traced(const ir::Function& traced, const std::string& name, const JitOptions& options,
                        bool want_texts);

}  // namespace tracejit::detail

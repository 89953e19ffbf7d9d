#include "runtime/compile_pipeline.h"

#include <chrono>

#include "passes/pipeline.h"

namespace tracejit::detail {

Compiled compile_traced(const ir::Function& traced, const std::string& name, const JitOptions& options,
                        bool want_texts) {
  auto t0 = std::chrono::steady_clock::now();
  ir::Function optimized = passes::optimize(traced);
  double passes_s = seconds_since(t0);
  auto exe = backend::compile(optimized, backend::CompileOptions{.name = name, .want_texts = want_texts,
                                                                 .fast_math = options.fast_math});
  const backend::BackendTimes& bt = exe->times();
  PhaseTimes times{.passes_s = passes_s + bt.fusion_s, .lower_s = bt.lower_s,
                   .llvm_opt_s = bt.llvm_opt_s, .codegen_s = bt.codegen_s};
  return {std::move(exe), times};
}

}  // namespace tracejit::detail

#pragma once
// Two-tier compilation: a new signature first runs quick code (CompileOptions::quick: LLVM's
// light pipeline and fastest code generation, ~5x cheaper to make); the call that reaches
// kTierUpCalls compiles the optimized code on its own thread and swaps it in with one atomic
// pointer store. Calls on other threads meanwhile run the quick code, whole; both tiers compute
// the same values (no fast-math reassociation differs between them unless JitOptions::fast_math
// is set). The quick code stays alive with the executable, so a call that started on it may
// finish there. A function called once never pays for the optimized compile.
//
// Why not a background thread: it raced the process's exit. A compile still running when
// exit() destroys LLVM's function-local statics (created by the compiles of other threads
// after any handler of ours could be registered) crashed in code generation, in the test suite
// and under mpirun. Compiling on a calling thread has no such window.
#include <memory>

#include "backend/compile.h"
#include "ir/ir.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

/// The call of a signature's quick code that compiles the optimized code (the second).
inline constexpr int64_t kTierUpCalls = 2;

/// Whether `options` asks for tiers: JitOptions::tiered or TRACEJIT_TIERED=1, and not
/// TRACEJIT_TIERED=0. TRACEJIT_TIERED=quick keeps the quick tier alone (never optimized), for
/// measuring it. Off by default: the tiers may differ in the last bits of some float results
/// (the difftest's second-call check found 1-3 ulp differences), and a jitted function should
/// not change its answer between calls.
bool tiers_enabled(const JitOptions& options);

/// Compiles `fn` with `options` at once as the quick tier; its kTierUpCalls-th call compiles
/// the optimized code. The executable's times() are the quick tier's.
std::shared_ptr<const backend::Executable> compile_tiered(std::shared_ptr<const ir::Function> fn,
                                                          const backend::CompileOptions& options);

/// How many times, in this process, optimized code replaced quick code.
int64_t tier_swaps();

}  // namespace tracejit::detail

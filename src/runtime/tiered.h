#pragma once
// Two-tier compilation: a new signature first runs quick code (CompileOptions::quick: LLVM's
// light pipeline and fastest code generation, ~5x cheaper to make); the call that reaches
// kTierUpCalls compiles the optimized code (the full IR pipeline and -O2 machine code, which a
// single compile skips for latency: orc_jit.h) on the calling thread and swaps it in with one
// atomic pointer store. Calls on other threads meanwhile run the quick code, whole. Both tiers
// compute the same values, bit for bit: elementwise code keeps IEEE order in both; a program
// with a float sum, which the lowering marks reassociable so that only the full IR pipeline
// vectorizes it (in another order), starts on the standard compile instead of quick code, the
// same IR as the optimized tier's. The first tier's code stays alive with the executable, so a
// call that started on it may finish there. A function called once never pays for the
// optimized compile.
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
/// measuring it. Off by default: the second call then pays for a second, slower compile.
bool tiers_enabled(const JitOptions& options);

/// Whether quick code for `fn` computes what the optimized code does, bit for bit: not when a
/// float reduce_sum (marked reassociable, so the optimized IR pipeline vectorizes it and sums
/// in another order) is anywhere in it, regions included, nor under fast-math. Else the first
/// tier is the standard compile (the optimized IR, fast code generation), which the optimized
/// tier differs from in its machine code only.
bool quick_tier_exact(const ir::Function& fn, bool fast_math);


/// Compiles `fn` with `options` at once as the first tier (quick code where quick_tier_exact,
/// or with TRACEJIT_TIERED=quick; else the standard compile); its kTierUpCalls-th call compiles
/// the optimized code: the optimized IR and full (-O2) code generation. The executable's
/// times() are the first tier's.
std::shared_ptr<const backend::Executable> compile_tiered(std::shared_ptr<const ir::Function> fn,
                                                          const backend::CompileOptions& options);

/// How many times, in this process, optimized code replaced quick code.
int64_t tier_swaps();

}  // namespace tracejit::detail

#pragma once
// Two-tier compilation: a new signature first runs quick code (CompileOptions::quick: LLVM's
// light pipeline and fastest code generation, ~5x cheaper to make); the call that reaches
// kTierUpCalls compiles the optimized code on its own thread and swaps it in with one atomic
// pointer store. Calls on other threads meanwhile run the quick code, whole. Both tiers compute
// the same values, bit for bit: elementwise code keeps IEEE order in both, and programs with a
// float sum, which the lowering marks reassociable so that only the optimized pipeline
// vectorizes it (in another order), skip the quick tier. The quick code stays alive with the executable, so a call that started on it may
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
/// measuring it. Off by default: the quick tier only serves programs without float sums (see
/// quick_tier_exact), and the second call then pays for a second compile.
bool tiers_enabled(const JitOptions& options);

/// Whether quick code for `fn` computes what the optimized code does, bit for bit: not when a
/// float reduce_sum (marked reassociable, so the optimized code vectorizes it and sums in
/// another order) is anywhere in it, regions included, nor under fast-math. Else the signature
/// compiles optimized at once.
bool quick_tier_exact(const ir::Function& fn, bool fast_math);
/// Whether a signature of `fn` compiles in two tiers: tiers_enabled(options), and either the
/// tiers agree (quick_tier_exact) or TRACEJIT_TIERED=quick keeps the quick code for good.
bool use_tiers(const ir::Function& fn, const JitOptions& options);

/// Compiles `fn` with `options` at once as the quick tier; its kTierUpCalls-th call compiles
/// the optimized code. The executable's times() are the quick tier's.
std::shared_ptr<const backend::Executable> compile_tiered(std::shared_ptr<const ir::Function> fn,
                                                          const backend::CompileOptions& options);

/// How many times, in this process, optimized code replaced quick code.
int64_t tier_swaps();

}  // namespace tracejit::detail

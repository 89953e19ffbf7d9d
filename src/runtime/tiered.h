#pragma once
// Two-tier compilation: a new signature first runs quick code (CompileOptions::quick: LLVM's
// light pipeline and fastest code generation, ~5x cheaper to make), while one background thread
// compiles the optimized code and swaps it in with one atomic pointer store. Calls during the
// swap run one tier or the other, whole; both tiers compute the same values (no fast-math
// reassociation differs between them unless JitOptions::fast_math is set). The quick code stays
// alive with the executable, so a call that started on it may finish there.
//
// An executable dropped before its background compile starts is not compiled at all; one that
// fails to compile keeps its quick code (with a warning). At exit the queue is dropped and the
// compile in progress finishes before the process goes on tearing down.
#include <functional>
#include <memory>

#include "backend/compile.h"
#include "ir/ir.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

/// Whether `options` asks for tiers: JitOptions::tiered and not TRACEJIT_TIERED=0.
/// TRACEJIT_TIERED=quick keeps the quick tier alone (no background compile), for measuring it.
bool tiers_enabled(const JitOptions& options);

/// Compiles `fn` with `options` at once as the quick tier and queues the optimized compile;
/// `on_optimized` runs on the background thread with the optimized executable before it is
/// swapped in (the disk cache stores it there). The executable's times() are the quick tier's.
std::shared_ptr<const backend::Executable> compile_tiered(
    std::shared_ptr<const ir::Function> fn, const backend::CompileOptions& options,
    std::function<void(const backend::Executable&)> on_optimized);

/// True when `exe` (from compile_tiered) runs its optimized code now.
bool runs_optimized(const backend::Executable& exe);

/// How many times, in this process, optimized code replaced quick code.
int64_t tier_swaps();

/// Waits until the background thread has finished every compile queued so far.
void wait_for_background_compiles();
/// From now on, compile in one tier (tiers_enabled() is false): for processes where a
/// background compile is not safe (tj::distributed under mpirun, see collectives.cpp).
void disable_background_compiles();

}  // namespace tracejit::detail

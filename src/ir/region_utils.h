#pragma once
// Rewrites of whole Functions that the passes and AD share.
#include <memory>

#include "ir/ir.h"

namespace tracejit::ir {

/// Replaces every call equation of `fn` (and of the calls it inlines) by the called function's
/// equations, and with `custom_vjp` every custom_vjp equation by its primal program (what runs
/// once AD no longer needs fwd and bwd); returns whether there was one. Regions of other
/// primitives are left alone.
bool inline_calls(Function& fn, bool custom_vjp);
/// `fn` with its calls (and custom_vjp primals) inlined; `fn` itself when it has none.
std::shared_ptr<const Function> inline_calls(std::shared_ptr<const Function> fn, bool custom_vjp);

/// `fn` without its effects that have no results (debug_print), also inside its regions; `fn`
/// itself when it has none. Effects with results (all_sum) stay: later equations read them.
std::shared_ptr<const Function> strip_effects(std::shared_ptr<const Function> fn);

}  // namespace tracejit::ir

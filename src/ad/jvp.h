#pragma once
// The JVP rule table (jvp_rules.cpp, jvp_control.cpp) and the forward-mode replay (jvp.cpp)
// that applies it per equation. A tangent is an Array of its primal's shape and dtype; an
// invalid (default) Array is a symbolic zero, so values that depend on no tangent cost nothing.
// Only float values carry tangents.
#include <span>
#include <utility>
#include <vector>

#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::ad {

/// What a JVP rule sees of one equation: its primal operands, their tangents (invalid where
/// zero; at least one is valid), and its primal results.
struct JvpArgs {
  ir::Prim prim;
  const ir::Params& params;
  std::span<const Array> in;
  std::span<const Array> tin;

  const Array& x() const { return in[0]; }
  const Array& y() const { return in[1]; }
};

/// A rule returns one tangent per result (invalid for a zero tangent). `outs` holds the primal
/// results, bound by the replay before the rule runs; a higher-order primitive's rule binds
/// instead one equation computing results and tangents together, and fills `outs` itself.
using JvpRule = std::vector<Array> (*)(const JvpArgs& a, std::vector<Array>& outs);

/// The rule of `p`, written with public ops (and bind), so it is itself traceable: jvp of jvp,
/// jvp of grad and jit of jvp need nothing more.
JvpRule jvp_rule(ir::Prim p);

/// The rules of the higher-order primitives (jvp_control.cpp).
std::vector<Array> call_jvp(const JvpArgs& a, std::vector<Array>& outs);
std::vector<Array> cond_jvp(const JvpArgs& a, std::vector<Array>& outs);
std::vector<Array> while_jvp(const JvpArgs& a, std::vector<Array>& outs);
std::vector<Array> scan_jvp(const JvpArgs& a, std::vector<Array>& outs);

/// Replays `fn` on `primals` (one per input) and `captured` with `tangents` (one per input,
/// invalid for zero), through bind: returns the outputs and their tangents (invalid for zero).
std::pair<std::vector<Array>, std::vector<Array>> jvp_replay(const ir::Function& fn,
                                                             std::span<const Array> primals,
                                                             std::span<const Array> captured,
                                                             std::span<const Array> tangents);

/// The tangent, or zeros of `like`'s shape and dtype where it is a symbolic zero.
Array tangent_or_zeros(const Array& tangent, const Array& like);

}  // namespace tracejit::ad

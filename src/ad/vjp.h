#pragma once
// The VJP rule table (vjp_rules.cpp) that the reverse sweep (vjp.cpp) applies per equation.
#include <span>

#include "absl/container/inlined_vector.h"
#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::ad {

/// What a VJP rule sees of one equation: its primal operands and result, the result's
/// cotangent, and which operands want a cotangent (those that depend on a differentiated input).
struct RuleArgs {
  const ir::Params& params;
  std::span<const Array> in;
  const Array& out;
  const Array& ct;
  std::span<const bool> need;

  const Array& x() const { return in[0]; }
  const Array& y() const { return in[1]; }
};

/// One cotangent per operand, with the operand's shape and dtype; an invalid (default) Array
/// where the operand was not asked for or receives nothing.
using Cotangents = absl::InlinedVector<Array, 3>;
using VjpRule = Cotangents (*)(const RuleArgs&);

/// The rule of `p`, written with public ops so that it is itself traceable; null when no
/// cotangent flows through p at all (comparisons, bit operations, sign, stop_gradient...), so
/// that the sweep treats its results as constants.
VjpRule vjp_rule(ir::Prim p);

}  // namespace tracejit::ad

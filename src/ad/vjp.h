#pragma once
// The VJP rule table (vjp_rules.cpp, vjp_control.cpp) that the reverse sweep (vjp.cpp) applies
// per equation.
#include <span>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::ad {

/// What a VJP rule sees of one equation: its primal operands and results, the results'
/// cotangents (an invalid Array where a result received none; the first is always valid for
/// single-result primitives), which operands want a cotangent (those that depend on a
/// differentiated input), and the residuals its forward rule returned, if it has one.
struct RuleArgs {
  const ir::Params& params;
  std::span<const Array> in;
  std::span<const Array> outs;
  std::span<const Array> cts;
  std::span<const bool> need;
  std::span<const Array> residuals;
  const Array& out;  // outs[0]
  const Array& ct;   // cts[0]

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

/// A forward rule binds, in place of the equation, a program that computes its results and
/// also returns residuals for the backward rule (a loop that also keeps its carries). `need`
/// says which operands are differentiated. Returns the results; fills `residuals`.
using ForwardRule = std::vector<Array> (*)(const ir::Params& params, std::span<const Array> in,
                                           std::span<const bool> need,
                                           std::vector<Array>& residuals);
/// The forward rule of `p`; null for primitives whose forward is the equation itself.
ForwardRule forward_rule(ir::Prim p);

/// broadcast_in_dim of a reduction's result back to the operand's `shape`, undoing `axes`.
Array unreduce(const Array& a, const Shape& shape, const std::vector<int64_t>& axes);

/// The rule of all_sum in both modes: a derivative through a sum over the ranks is not
/// offered; `transform` ("grad", "jvp") names the caller in the tj::Error, which says what to
/// do instead.
[[noreturn]] void raise_not_differentiable(std::string_view transform);

/// The rules of the higher-order primitives (vjp_control.cpp).
Cotangents cond_rule(const RuleArgs& r);
Cotangents while_rule(const RuleArgs& r);
Cotangents scan_rule(const RuleArgs& r);
std::vector<Array> while_forward(const ir::Params& params, std::span<const Array> in,
                                 std::span<const bool> need, std::vector<Array>& residuals);
std::vector<Array> scan_forward(const ir::Params& params, std::span<const Array> in,
                                std::span<const bool> need, std::vector<Array>& residuals);
Cotangents custom_vjp_rule(const RuleArgs& r);
std::vector<Array> custom_vjp_forward(const ir::Params& params, std::span<const Array> in,
                                      std::span<const bool> need, std::vector<Array>& residuals);

}  // namespace tracejit::ad

// One VJP rule per primitive: given an equation's primal operands, its result and the result's
// cotangent, the cotangent of each operand. Rules are written with public ops (plus
// broadcast_in_dim, bound directly since no public op spells it), so they are traced like any
// user code: grad(grad(f)) and jit(grad(f)) need no special cases. Elementwise binary
// primitives see operands already broadcast to one shape by the public ops, so no rule has to
// undo NumPy broadcasting: broadcast_in_dim's own rule does that.
#include <algorithm>
#include <numeric>

#include "ad/vjp.h"
#include "base/errors.h"
#include "trace/trace_state.h"
#include "tracejit/ops.h"

namespace tracejit::ad {

Array unreduce(const Array& a, const Shape& shape, const std::vector<int64_t>& axes) {
  if (axes.empty()) return a;
  ir::Params p{.shape = shape};
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) p.axes.push_back(i);
  return detail::bind1(ir::Prim::kBroadcast, {a}, p);
}

void raise_not_differentiable(std::string_view transform) {
  detail::raise<Error>(transform, "tj::distributed::all_sum is not differentiable: differentiate "
                       "each rank's local loss, then sum or average the gradients with "
                       "tj::distributed::all_sum or average_gradients");
}

namespace {

using ir::Prim;

/// An empty cotangent per operand, for a rule to fill in where `need` asks.
Cotangents none(const RuleArgs& r) { return Cotangents(r.in.size()); }

Cotangents add_rule(const RuleArgs& r) {
  Cotangents out = none(r);
  if (r.need[0]) out[0] = r.ct;
  if (r.need[1]) out[1] = r.ct;
  return out;
}

Cotangents mul_rule(const RuleArgs& r) {
  Cotangents out = none(r);
  if (r.need[0]) out[0] = r.ct * r.y();
  if (r.need[1]) out[1] = r.ct * r.x();
  return out;
}

Cotangents div_rule(const RuleArgs& r) {
  Cotangents out = none(r);
  if (r.need[0]) out[0] = r.ct / r.y();
  if (r.need[1]) out[1] = -(r.ct * r.out) / r.y();  // -ct x / y^2
  return out;
}

Cotangents pow_rule(const RuleArgs& r) {
  // JAX's rule with its guards: d/dx is 0 where y == 0 (so 0^0 does not give 0 * inf), and
  // d/dy takes log(1) where x == 0 (so 0^y gives 0, not 0 * -inf).
  const Array &x = r.x(), &y = r.y();
  Cotangents out = none(r);
  if (r.need[0]) out[0] = r.ct * where(y == 0, 0, y * pow(x, y - 1));
  if (r.need[1]) out[1] = r.ct * log(where(x == 0, 1, x)) * r.out;
  return out;
}

/// max and min: the result's cotangent goes to the operand that was chosen, split evenly on a
/// tie (JAX's rule), so that max(x, x) has derivative 1 and both operands get 0.5.
Cotangents max_min_rule(const RuleArgs& r) {
  auto share = [&](const Array& mine, const Array& other) {
    return where(mine == r.out, where(other == r.out, r.ct * 0.5, r.ct), 0);
  };
  Cotangents out = none(r);
  if (r.need[0]) out[0] = share(r.x(), r.y());
  if (r.need[1]) out[1] = share(r.y(), r.x());
  return out;
}

Cotangents select_rule(const RuleArgs& r) {
  // select(cond, on_true, on_false): the condition is bool and never needs a cotangent.
  const Array& cond = r.in[0];
  Cotangents out = none(r);
  if (r.need[1]) out[1] = where(cond, r.ct, 0);
  if (r.need[2]) out[2] = where(cond, 0, r.ct);
  return out;
}

Cotangents matmul_rule(const RuleArgs& r) {
  Cotangents out = none(r);
  // Both operands have the batch dimensions of the result; transpose the last two axes.
  auto t = [](const Array& a) {
    Axes perm(static_cast<size_t>(a.ndim()));
    std::iota(perm.begin(), perm.end(), int64_t{0});
    std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
    return transpose(a, perm);
  };
  if (r.need[0]) out[0] = matmul(r.ct, t(r.y()));
  if (r.need[1]) out[1] = matmul(t(r.x()), r.ct);
  return out;
}

Cotangents reduce_max_rule(const RuleArgs& r) {
  // JAX's rule: the cotangent is divided among the positions equal to the maximum.
  const Shape& shape = r.x().shape();
  Array hits = astype(r.x() == unreduce(r.out, shape, r.params.axes), r.x().dtype());
  Array count = sum(hits, Axes(r.params.axes.begin(), r.params.axes.end()));
  return {hits * unreduce(r.ct / count, shape, r.params.axes)};
}

Cotangents broadcast_rule(const RuleArgs& r) {
  // Sum over the dimensions the broadcast created or stretched from size 1, then restore the
  // operand's size-1 dimensions with a reshape.
  const Shape& in_shape = r.x().shape();
  const Shape& out_shape = r.out.shape();
  const std::vector<int64_t>& dims = r.params.axes;
  Axes summed;
  for (int64_t d = 0; d < static_cast<int64_t>(out_shape.size()); ++d)
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) summed.push_back(d);
  for (size_t i = 0; i < dims.size(); ++i)
    if (in_shape[i] == 1 && out_shape[static_cast<size_t>(dims[i])] != 1) summed.push_back(dims[i]);
  Array ct = summed.empty() ? r.ct : sum(r.ct, summed);
  return {reshape(ct, in_shape)};
}

Cotangents slice_rule(const RuleArgs& r) {
  // Pad the cotangent back to the operand's shape with zero blocks, one axis at a time.
  const Shape& in_shape = r.x().shape();
  Array ct = r.ct;
  for (size_t i = 0; i < in_shape.size(); ++i) {
    int64_t before = r.params.axes[i], after = in_shape[i] - r.params.limits[i];
    if (before == 0 && after == 0) continue;
    auto zero_block = [&](int64_t size) {
      Shape block = ct.shape();
      block[i] = size;
      return zeros(block, ct.dtype());
    };
    std::vector<Array> parts;
    if (before > 0) parts.push_back(zero_block(before));
    parts.push_back(ct);
    if (after > 0) parts.push_back(zero_block(after));
    ct = concatenate(parts, static_cast<int64_t>(i));
  }
  return {ct};
}

Cotangents concatenate_rule(const RuleArgs& r) {
  // Each operand's cotangent is its slice of the result's.
  Cotangents out = none(r);
  const size_t axis = static_cast<size_t>(r.params.axis);
  int64_t offset = 0;
  for (size_t k = 0; k < r.in.size(); ++k) {
    const int64_t size = r.in[k].shape()[axis];
    if (r.need[k]) {
      Axes starts(r.ct.shape().size(), 0);
      Axes limits(r.ct.shape().begin(), r.ct.shape().end());
      starts[axis] = offset;
      limits[axis] = offset + size;
      out[k] = slice(r.ct, starts, limits);
    }
    offset += size;
  }
  return out;
}

Cotangents transpose_rule(const RuleArgs& r) {
  Axes inverse(r.params.axes.size());
  for (size_t i = 0; i < inverse.size(); ++i)
    inverse[static_cast<size_t>(r.params.axes[i])] = static_cast<int64_t>(i);
  return {transpose(r.ct, inverse)};
}

}  // namespace

// Single-operand rules need no `need` check: an equation is differentiated only when one of
// its operands is.
VjpRule vjp_rule(Prim p) {
  switch (p) {
    case Prim::kNeg:
      return [](const RuleArgs& r) -> Cotangents { return {-r.ct}; };
    case Prim::kExp:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct * r.out}; };
    case Prim::kLog:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct / r.x()}; };
    case Prim::kLog1p:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct / (r.x() + 1)}; };
    case Prim::kSin:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct * cos(r.x())}; };
    case Prim::kCos:
      return [](const RuleArgs& r) -> Cotangents { return {-(r.ct * sin(r.x()))}; };
    case Prim::kTanh:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct * (1 - r.out * r.out)}; };
    case Prim::kSqrt:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct * 0.5 / r.out}; };
    case Prim::kAbs:
      return [](const RuleArgs& r) -> Cotangents { return {r.ct * sign(r.x())}; };
    case Prim::kConvert:
      // Reached only from a float operand (integer values carry no cotangent).
      return [](const RuleArgs& r) -> Cotangents { return {astype(r.ct, r.x().dtype())}; };
    case Prim::kAdd:
      return add_rule;
    case Prim::kMul:
      return mul_rule;
    case Prim::kDiv:
      return div_rule;
    case Prim::kPow:
      return pow_rule;
    case Prim::kMax:
    case Prim::kMin:
      return max_min_rule;
    case Prim::kSelect:
      return select_rule;
    case Prim::kReduceSum:
      return [](const RuleArgs& r) -> Cotangents {
        return {unreduce(r.ct, r.x().shape(), r.params.axes)};
      };
    case Prim::kReduceMax:
      return reduce_max_rule;
    case Prim::kBroadcast:
      return broadcast_rule;
    case Prim::kReshape:
      return [](const RuleArgs& r) -> Cotangents { return {reshape(r.ct, r.x().shape())}; };
    case Prim::kTranspose:
      return transpose_rule;
    case Prim::kSlice:
      return slice_rule;
    case Prim::kConcatenate:
      return concatenate_rule;
    case Prim::kMatmul:
      return matmul_rule;
    // No cotangent flows: the result is piecewise constant in the operands (sign), not a float
    // function of them (comparisons, bit operations, bitcast), has no operands (iota), or is
    // declared constant (stop_gradient).
    case Prim::kSign:
    case Prim::kStopGradient:
    case Prim::kBitcast:
    case Prim::kAnd:
    case Prim::kOr:
    case Prim::kXor:
    case Prim::kShl:
    case Prim::kShr:
    case Prim::kEq:
    case Prim::kNe:
    case Prim::kLt:
    case Prim::kLe:
    case Prim::kGt:
    case Prim::kGe:
    case Prim::kIota:
    case Prim::kDebugPrint:  // an effect with no result: printed once by the forward replay
      return nullptr;
    case Prim::kAllSum:
      return [](const RuleArgs&) -> Cotangents { raise_not_differentiable("grad"); };
    case Prim::kCall:  // the sweep inlines calls before it starts (ir::inline_calls)
      return nullptr;
    case Prim::kCond:
      return cond_rule;
    case Prim::kWhile:
      return while_rule;
    case Prim::kScan:
      return scan_rule;
    case Prim::kCustomVjp:
      return custom_vjp_rule;
  }
  detail::fail_internal(__FILE__, __LINE__, "vjp_rule: unknown primitive");
}

ForwardRule forward_rule(Prim p) {
  if (p == Prim::kWhile) return while_forward;
  if (p == Prim::kScan) return scan_forward;
  if (p == Prim::kCustomVjp) return custom_vjp_forward;
  return nullptr;
}

}  // namespace tracejit::ad

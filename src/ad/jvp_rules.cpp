// One JVP rule per primitive: given an equation's primal operands, their tangents and its
// results, the results' tangents. Like the VJP rules they are written with public ops (and
// bind for primitives no public op spells), so forward mode composes with every transform.
// A symbolic zero (an invalid Array) never becomes a computation: the helpers below drop
// terms whose tangent is zero.
#include "ad/jvp.h"
#include "ad/vjp.h"
#include "base/errors.h"
#include "trace/trace_state.h"
#include "tracejit/ops.h"

namespace tracejit::ad {
namespace {

using ir::Prim;
using Tangents = std::vector<Array>;

// Sums of tangent terms where an invalid Array is zero.
Array plus(const Array& a, const Array& b) {
  if (!a.valid()) return b;
  if (!b.valid()) return a;
  return a + b;
}
// t * f, or zero when t is zero. `f` is computed only when it is needed.
template <class F>
Array times(const Array& t, F&& f) {
  return t.valid() ? Array(t * f()) : Array();
}

// Primitives linear in their single operand: the same equation maps the tangent.
Tangents linear(const JvpArgs& a, std::vector<Array>&) {
  return {detail::bind1(a.prim, {a.tin[0]}, a.params)};
}

Tangents none(const JvpArgs&, std::vector<Array>& outs) { return Tangents(outs.size()); }

Tangents div_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  // d(x / y) = dx / y - dy * (x / y) / y.
  return {plus(times(a.tin[0], [&] { return 1 / a.y(); }),
               times(a.tin[1], [&] { return -(outs[0] / a.y()); }))};
}

Tangents pow_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  // The guards of the VJP rule: no 0 * inf at y == 0 (d/dx) or x == 0 (d/dy).
  const Array &x = a.x(), &y = a.y();
  return {plus(times(a.tin[0], [&] { return where(y == 0, 0, y * pow(x, y - 1)); }),
               times(a.tin[1], [&] { return log(where(x == 0, 1, x)) * outs[0]; }))};
}

Tangents max_min_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  // The chosen operand's tangent; half of each on a tie, as JAX (and the VJP rule).
  const Array& out = outs[0];
  auto share = [&](const Array& mine, const Array& other) {
    return where(mine == out, where(other == out, 0.5, 1.0), 0.0);
  };
  auto weight = [&](const Array& w) { return astype(w, out.dtype()); };
  return {plus(times(a.tin[0], [&] { return weight(share(a.x(), a.y())); }),
               times(a.tin[1], [&] { return weight(share(a.y(), a.x())); }))};
}

Tangents select_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  const Array& cond = a.in[0];
  return {where(cond, tangent_or_zeros(a.tin[1], outs[0]), tangent_or_zeros(a.tin[2], outs[0]))};
}

Tangents matmul_jvp(const JvpArgs& a, std::vector<Array>&) {
  auto mm = [](const Array& x, const Array& y) { return detail::bind1(Prim::kMatmul, {x, y}); };
  return {plus(a.tin[0].valid() ? mm(a.tin[0], a.y()) : Array(),
               a.tin[1].valid() ? mm(a.x(), a.tin[1]) : Array())};
}

Tangents reduce_max_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  // The mean of the tangents at the positions equal to the maximum (the VJP rule transposed).
  const Array& x = a.x();
  const Axes axes(a.params.axes.begin(), a.params.axes.end());
  Array hits = astype(x == unreduce(outs[0], x.shape(), a.params.axes), x.dtype());
  return {sum(a.tin[0] * hits, axes) / sum(hits, axes)};
}

Tangents concatenate_jvp(const JvpArgs& a, std::vector<Array>&) {
  std::vector<Array> parts;
  for (size_t k = 0; k < a.in.size(); ++k) parts.push_back(tangent_or_zeros(a.tin[k], a.in[k]));
  return {detail::bind1(Prim::kConcatenate, parts, a.params)};
}

}  // namespace

JvpRule jvp_rule(Prim p) {
  switch (p) {
    case Prim::kNeg:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents { return {-a.tin[0]}; };
    case Prim::kExp:
      return [](const JvpArgs& a, std::vector<Array>& o) -> Tangents { return {a.tin[0] * o[0]}; };
    case Prim::kLog:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents { return {a.tin[0] / a.x()}; };
    case Prim::kLog1p:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {a.tin[0] / (a.x() + 1)};
      };
    case Prim::kSin:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {a.tin[0] * cos(a.x())};
      };
    case Prim::kCos:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {-(a.tin[0] * sin(a.x()))};
      };
    case Prim::kTanh:
      return [](const JvpArgs& a, std::vector<Array>& o) -> Tangents {
        return {a.tin[0] * (1 - o[0] * o[0])};
      };
    case Prim::kSqrt:
      return [](const JvpArgs& a, std::vector<Array>& o) -> Tangents {
        return {a.tin[0] * 0.5 / o[0]};
      };
    case Prim::kAbs:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {a.tin[0] * sign(a.x())};
      };
    case Prim::kConvert:
      // Float to float; a tangent of an integer or bool result is dropped by the replay.
      return [](const JvpArgs& a, std::vector<Array>& o) -> Tangents {
        return {is_float(o[0].dtype()) ? astype(a.tin[0], o[0].dtype()) : Array()};
      };
    case Prim::kAdd:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {plus(a.tin[0], a.tin[1])};
      };
    case Prim::kMul:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        return {plus(times(a.tin[0], [&] { return a.y(); }), times(a.tin[1], [&] { return a.x(); }))};
      };
    case Prim::kDiv:
      return div_jvp;
    case Prim::kPow:
      return pow_jvp;
    case Prim::kMax:
    case Prim::kMin:
      return max_min_jvp;
    case Prim::kSelect:
      return select_jvp;
    case Prim::kReduceMax:
      return reduce_max_jvp;
    case Prim::kReduceSum:
    case Prim::kBroadcast:
    case Prim::kReshape:
    case Prim::kTranspose:
    case Prim::kSlice:
      return linear;
    case Prim::kConcatenate:
      return concatenate_jvp;
    case Prim::kMatmul:
      return matmul_jvp;
    // Zero tangents: piecewise constant (sign), not a float function of the operands
    // (comparisons, bit operations, bitcast), no operands (iota), declared constant
    // (stop_gradient), or no result (debug_print, which the replay still runs once).
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
    case Prim::kDebugPrint:
      return none;
    case Prim::kAllSum:
      return
          [](const JvpArgs&, std::vector<Array>&) -> Tangents { raise_not_differentiable("jvp"); };
    case Prim::kCall:
      return call_jvp;
    case Prim::kCond:
      return cond_jvp;
    case Prim::kWhile:
      return while_jvp;
    case Prim::kScan:
      return scan_jvp;
    case Prim::kCustomVjp:
      return [](const JvpArgs& a, std::vector<Array>&) -> Tangents {
        detail::raise<Error>("jvp", "cannot differentiate the tj::custom_vjp function '", a.params.text,
                             "' in forward mode: it defines only a reverse-mode rule (as in "
                             "JAX); use grad or vjp, or differentiate the plain function");
      };
  }
  detail::fail_internal(__FILE__, __LINE__, "jvp_rule: unknown primitive");
}

}  // namespace tracejit::ad

// One batching rule per primitive: given an equation's operands (batched ones carry the batch
// axis first), the equation that computes all lanes at once. Rules are written with bind and
// public ops, so a batched program is itself traced, differentiated and compiled like any
// other. A rule runs only when some operand is batched; its results are then batched too,
// except where a rule says otherwise (none of these do: the loops in batch_control.cpp may).
#include <numeric>

#include "base/errors.h"
#include "batch/batch.h"
#include "trace/trace_state.h"
#include "tracejit/ops.h"

namespace tracejit::batch {

Array broadcast_lanes(const Array& a, int64_t size) {
  ir::Params p;
  p.shape = {size};
  p.shape.insert(p.shape.end(), a.shape().begin(), a.shape().end());
  for (int64_t i = 0; i < a.ndim(); ++i) p.axes.push_back(i + 1);
  return detail::bind1(ir::Prim::kBroadcast, {a}, p);
}

Array move_axis(const Array& a, int64_t from, int64_t to) {
  if (from == to) return a;
  Axes perm;
  for (int64_t i = 0; i < a.ndim(); ++i)
    if (i != from) perm.push_back(i);
  perm.insert(perm.begin() + to, from);
  return transpose(a, perm);
}

Array BatchArgs::moved(size_t k) const {
  return batched[k] ? in[k] : broadcast_lanes(in[k], size);
}

namespace {

using ir::Prim;
using Results = std::vector<Array>;

// Axis lists of the unbatched equation, shifted past the batch axis.
std::vector<int64_t> shifted(const std::vector<int64_t>& axes) {
  std::vector<int64_t> out;
  for (int64_t a : axes) out.push_back(a + 1);
  return out;
}
// A result shape with the batch axis in front.
Shape with_lanes(int64_t size, const Shape& shape) {
  Shape out{size};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

Results bind_batched(const BatchArgs& a, std::span<const Array> in, const ir::Params& params,
                     Flags& out_batched) {
  Results out = detail::bind(a.prim, in, params);
  out_batched.assign(out.size(), true);
  return out;
}

// Elementwise primitives: every operand with the batch axis, the same equation.
Results elementwise(const BatchArgs& a, Flags& ob) {
  Results in;
  for (size_t k = 0; k < a.in.size(); ++k) in.push_back(a.moved(k));
  return bind_batched(a, in, a.params, ob);
}

// Primitives whose parameters name axes of their single operand.
Results reduce(const BatchArgs& a, Flags& ob) {
  ir::Params p = a.params;
  p.axes = shifted(p.axes);
  return bind_batched(a, a.in, p, ob);
}

Results broadcast(const BatchArgs& a, Flags& ob) {
  ir::Params p = a.params;
  p.shape = with_lanes(a.size, p.shape);
  p.axes = shifted(p.axes);
  p.axes.insert(p.axes.begin(), 0);
  return bind_batched(a, a.in, p, ob);
}

Results reshape_rule(const BatchArgs& a, Flags& ob) {
  ir::Params p = a.params;
  p.shape = with_lanes(a.size, p.shape);
  return bind_batched(a, a.in, p, ob);
}

Results transpose_rule(const BatchArgs& a, Flags& ob) {
  ir::Params p = a.params;
  p.axes = shifted(p.axes);
  p.axes.insert(p.axes.begin(), 0);
  return bind_batched(a, a.in, p, ob);
}

Results slice_rule(const BatchArgs& a, Flags& ob) {
  ir::Params p = a.params;
  p.axes.insert(p.axes.begin(), 0);
  p.limits.insert(p.limits.begin(), a.size);
  return bind_batched(a, a.in, p, ob);
}

Results concatenate_rule(const BatchArgs& a, Flags& ob) {
  Results in;
  for (size_t k = 0; k < a.in.size(); ++k) in.push_back(a.moved(k));
  ir::Params p = a.params;
  p.axis += 1;
  return bind_batched(a, in, p, ob);
}

Results matmul_rule(const BatchArgs& a, Flags& ob) {
  // A batch of left operands times one right matrix is one product over all their rows (the
  // right operand is not copied per lane); otherwise the batched matmul over [B, ...] operands.
  const Array& x = a.in[0];
  const Array& y = a.in[1];
  if (a.batched[0] && !a.batched[1] && y.ndim() == 2) {
    const Shape& xs = x.shape();
    Shape out(xs.begin(), xs.end() - 1);
    const Array rows = reshape(x, {shape_size(out), xs.back()});
    out.push_back(y.shape().back());
    ob.assign(1, true);
    return {reshape(detail::bind1(Prim::kMatmul, {rows, y}), out)};
  }
  const Array ins[] = {a.moved(0), a.moved(1)};
  return bind_batched(a, ins, a.params, ob);
}

// A primitive without operands never sees a batched one; listed for the switch's sake.
Results unbatched(const BatchArgs& a, Flags& ob) {
  Results out = detail::bind(a.prim, a.in, a.params);
  ob.assign(out.size(), false);
  return out;
}

// debug_print prints once per lane, in lane order, each with that lane's values (as JAX's
// vmap of jax.debug.print does); unbatched operands print the same in every lane.
Results debug_print_rule(const BatchArgs& a, Flags& ob) {
  ob.clear();
  std::vector<Array> lanes(a.in.size());
  for (size_t k = 0; k < a.in.size(); ++k)
    if (a.batched[k]) lanes[k] = a.moved(k);
  std::vector<Array> args(a.in.begin(), a.in.end());
  for (int64_t i = 0; i < a.size; ++i) {
    for (size_t k = 0; k < a.in.size(); ++k)
      if (a.batched[k]) args[k] = lanes[k][i];
    detail::bind(a.prim, args, a.params);
  }
  return {};
}

}  // namespace

BatchRule batch_rule(Prim p) {
  switch (p) {
    case Prim::kNeg: case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin:
    case Prim::kCos: case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign:
    case Prim::kStopGradient: case Prim::kConvert: case Prim::kBitcast:
    case Prim::kAdd: case Prim::kMul: case Prim::kDiv: case Prim::kPow: case Prim::kMax:
    case Prim::kMin: case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl:
    case Prim::kShr: case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe:
    case Prim::kGt: case Prim::kGe: case Prim::kSelect:
      return elementwise;
    case Prim::kReduceSum:
    case Prim::kReduceMax:
      return reduce;
    case Prim::kBroadcast:
      return broadcast;
    case Prim::kReshape:
      return reshape_rule;
    case Prim::kTranspose:
      return transpose_rule;
    case Prim::kSlice:
      return slice_rule;
    case Prim::kConcatenate:
      return concatenate_rule;
    case Prim::kIota:
      return unbatched;
    case Prim::kMatmul:
      return matmul_rule;
    case Prim::kDebugPrint:
      return debug_print_rule;
    case Prim::kAllSum:
      // An elementwise sum over ranks: the batched value summed at once is every lane summed.
      return elementwise;
    case Prim::kCall:
      return call_batch;
    case Prim::kCond:
      return cond_batch;
    case Prim::kWhile:
      return while_batch;
    case Prim::kScan:
      return scan_batch;
    case Prim::kCustomVjp:
      return custom_vjp_batch;
  }
  detail::fail_internal(__FILE__, __LINE__, "batch_rule: unknown primitive");
}

}  // namespace tracejit::batch

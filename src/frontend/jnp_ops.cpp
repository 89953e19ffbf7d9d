// The wider jnp surface built from public ops (no primitive of its own, so no rule elsewhere):
// stack, eye, rounding, clip, min, argmax/argmin.
#include <cmath>

#include "base/array_impl.h"
#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit {
namespace {

using detail::raise;

// `of` names what the axis indexes (the operand, or stack's result).
int64_t normalize_axis(std::string_view op, int64_t axis, int64_t rank, std::string_view of) {
  const int64_t n = axis < 0 ? axis + rank : axis;
  if (n < 0 || n >= rank)
    raise<IndexError>(op, "axis ", axis, " is out of range for ", of, " of rank ", rank,
                      rank == 0 ? "; a 0-d array has no axes"
                                : detail::cat("; valid axes run from ", -rank, " to ", rank - 1));
  return n;
}

// (x + c) - c with c = 2^(mantissa bits) rounds to an integer, half to even, in the current
// (nearest-even) rounding mode; values that large are integers already. The sign of zero is
// kept (round(-0.3) is -0.0, as in NumPy). No gradient flows, as in JAX.
Array round_half_even(const Array& x) {
  // c weakly typed in x's dtype, so that round keeps x's type (a weak f32 stays weak f32).
  const Array big = Array::scalar(x.dtype(), x.dtype() == DType::f64 ? 4503599627370496.0 : 8388608.0,
                                  /*weak=*/true);
  Array c = where(x < 0, -big, big);
  Array r = where(abs(x) < big, (x + c) - c, x);
  return stop_gradient(where(r == 0, x * 0, r));
}

Array as_int32(const Array& a) { return a.dtype() == DType::bool_ ? astype(a, DType::i32) : a; }

// The order-reversing map used to turn a max into a min: -x for floats, ~x for integers.
Array reverse_order(const Array& x) {
  if (is_float(x.dtype())) return -x;
  return x ^ astype(Array(-1), x.dtype());
}

}  // namespace

Array stack(const std::vector<Array>& arrays, int64_t axis) {
  if (arrays.empty()) raise<ShapeError>("stack", "needs at least one array");
  const Shape& shape = detail::impl_of(arrays[0], "stack").type.shape;
  const int64_t ax =
      normalize_axis("stack", axis, static_cast<int64_t>(shape.size()) + 1,
                     detail::cat("the stack of ", arrays.size(), " arrays of shape ", shape_str(shape)));
  std::vector<Array> expanded;
  for (const Array& a : arrays) {
    detail::impl_of(a, "stack");
    if (a.shape() != shape)
      raise<ShapeError>("stack", "all arrays must have one shape, got ", shape_str(shape), " and ",
                        shape_str(a.shape()), "; reshape or broadcast them first");
    Shape s = shape;
    s.insert(s.begin() + ax, 1);
    expanded.push_back(reshape(a, s));
  }
  return concatenate(expanded, ax);
}

Array eye(int64_t n, DType dtype) {
  if (n < 0) raise<ShapeError>("eye", "needs a non-negative size, got ", n);
  Array i = arange(n);
  return astype(reshape(i, {n, 1}) == reshape(i, {1, n}), dtype);
}

Array round(const Array& a) {
  detail::impl_of(a, "round");
  return is_float(a.dtype()) ? round_half_even(a) : a;
}
Array floor(const Array& a) {
  detail::impl_of(a, "floor");
  if (!is_float(a.dtype())) return a;
  Array r = round_half_even(a);
  return stop_gradient(where(r > a, r - 1, r));
}
Array ceil(const Array& a) {
  detail::impl_of(a, "ceil");
  if (!is_float(a.dtype())) return a;
  Array r = round_half_even(a);
  return stop_gradient(where(r < a, r + 1, r));
}

Array clip(const Array& a, const Array& lo, const Array& hi) { return minimum(maximum(a, lo), hi); }

Array min(const Array& a) {
  detail::impl_of(a, "reduce_min");
  Axes all;
  for (int64_t i = 0; i < a.ndim(); ++i) all.push_back(i);
  return min(a, all);
}
Array min(const Array& a, const Axes& axes) {
  detail::impl_of(a, "reduce_min");
  if (a.dtype() == DType::bool_) return astype(min(astype(a, DType::i32), axes), DType::bool_);
  return reverse_order(max(reverse_order(a), axes));
}

namespace {

// The first index along `axis` where `hit` is true, else the first where `fallback` is.
Array first_index(const Array& hit, int64_t axis, int64_t n) {
  Shape s(static_cast<size_t>(hit.ndim()), 1);
  s[static_cast<size_t>(axis)] = n;
  Array idx = broadcast_to(reshape(arange(n), s), hit.shape());
  return min(where(hit, idx, n), {axis});
}

Array arg_best(std::string_view op, const Array& a_in, int64_t axis, bool want_max) {
  detail::impl_of(a_in, op);
  Array a = as_int32(a_in);
  const int64_t ax = normalize_axis(op, axis, a.ndim(), type_str(a_in.dtype(), a_in.shape()));
  const int64_t n = a.shape()[static_cast<size_t>(ax)];
  if (n == 0) raise<ShapeError>(op, "of an empty axis of ", type_str(a.dtype(), a.shape()), " has no answer");
  Array best = want_max ? max(a, {ax}) : min(a, {ax});
  Shape kept = a.shape();
  kept[static_cast<size_t>(ax)] = 1;
  Array hit = a == reshape(best, kept);
  if (is_float(a.dtype())) {
    // NaN is both the maximum and the minimum: its first position wins.
    Array nan = a != a;
    Array any_nan = max(astype(nan, DType::i32), {ax}) > 0;
    hit = where(reshape(any_nan, kept), nan, hit);
  }
  return first_index(hit, ax, n);
}

}  // namespace

Array argmax(const Array& a, int64_t axis) { return arg_best("argmax", a, axis, true); }
Array argmin(const Array& a, int64_t axis) { return arg_best("argmin", a, axis, false); }
Array argmax(const Array& a) { return argmax(reshape(a, {-1}), 0); }
Array argmin(const Array& a) { return argmin(reshape(a, {-1}), 0); }

}  // namespace tracejit

// Public array operations: check the arguments, resolve weak types and broadcasting into
// explicit conversions and broadcast_in_dim, then bind primitives. Derived operations
// (subtraction, square, mean, ...) are written here in terms of primitives and get no rules of
// their own anywhere else.
#include "tracejit/ops.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_join.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "base/promotion.h"
#include "trace/eager.h"
#include "trace/trace_state.h"

namespace tracejit {
namespace {

using detail::bind1;
using detail::impl_of;
using detail::raise;
using ir::Prim;

std::string types_str(std::initializer_list<const Array*> xs) {
  return absl::StrJoin(xs, ", ", [](std::string* out, const Array* a) {
    absl::StrAppend(out, ir::type_str(a->impl()->type));
  });
}

// Converts `a` to `to.dtype`, weak when `a` or `to` is: concrete values are converted on the
// host, so a C++ scalar enters the IR as a literal of the right dtype, as in JAX's jaxprs.
Array convert_weak(const Array& a, detail::WeakDType to) {
  const detail::ArrayImpl& impl = *a.impl();
  if (impl.type.dtype == to.dtype) return a;
  const bool weak = impl.type.weak || to.weak;
  if (impl.is_tracer())
    return bind1(Prim::kConvert, {a}, ir::Params{.dtype = to.dtype, .weak_type = weak});
  ir::Type strong{to.dtype, impl.type.shape, false};
  Array in[] = {a};
  ir::Type out_type[] = {strong};
  Array out = detail::eval_eager(Prim::kConvert, in, ir::Params{.dtype = to.dtype}, out_type)[0];
  out.impl()->type.weak = weak;
  return out;
}
Array convert_weak(const Array& a, DType dtype) { return convert_weak(a, {dtype, false}); }

// The dtype operands are promoted to (base/promotion.h: JAX's table, or strict mode's error).
detail::WeakDType common_dtype(std::string_view op, std::span<const Array> xs) {
  absl::InlinedVector<const base::Type*, 4> types;
  for (const Array& x : xs) types.push_back(&x.impl()->type);
  return detail::result_type(op, types);
}

// Widens `out` by NumPy's rule to take `s`; false where a dimension
// differs and neither is 1 (those two sizes are left in `clash`).
bool broadcast_into(Shape& out, const Shape& s, std::pair<int64_t, int64_t>* clash = nullptr) {
  if (s.size() > out.size()) out.insert(out.begin(), s.size() - out.size(), 1);
  for (size_t i = 0; i < s.size(); ++i) {
    int64_t& o = out[out.size() - s.size() + i];
    if (s[i] == o || s[i] == 1) continue;
    if (o != 1) {
      if (clash) *clash = {o, s[i]};
      return false;
    }
    o = s[i];
  }
  return true;
}

Shape broadcast_shapes(std::string_view op, std::span<const Array> xs) {
  Shape out;
  std::pair<int64_t, int64_t> clash;
  for (const Array& x : xs) {
    if (broadcast_into(out, x.shape(), &clash)) continue;
    std::vector<std::string> types;
    for (const Array& y : xs) types.push_back(ir::type_str(y.impl()->type));
    raise<ShapeError>(op, "cannot broadcast shapes of ", absl::StrJoin(types, ", "),
                      ": dimension sizes ", clash.first, " and ", clash.second,
                      " differ and neither is 1; reshape or transpose one operand");
  }
  return out;
}

// broadcast_in_dim that aligns trailing dimensions, NumPy style.
Array broadcast_to_shape(const Array& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  ir::Params p{.shape = shape};
  size_t lead = shape.size() - a.shape().size();
  for (size_t i = 0; i < a.shape().size(); ++i) p.axes.push_back(static_cast<int64_t>(lead + i));
  return bind1(Prim::kBroadcast, {a}, p);
}

// Validates operands, unifies their dtypes and shapes; returns them ready for the primitive.
std::vector<Array> prepare(std::string_view op, std::initializer_list<Array> args) {
  std::vector<Array> xs(args);
  for (const Array& x : xs) impl_of(x, op);
  detail::WeakDType d = common_dtype(op, xs);
  Shape shape = broadcast_shapes(op, xs);
  for (Array& x : xs) x = broadcast_to_shape(convert_weak(x, d), shape);
  return xs;
}

Array binary(Prim p, std::string_view op, const Array& a, const Array& b) {
  std::vector<Array> xs = prepare(op, {a, b});
  return bind1(p, xs);
}

// Unary transcendental functions promote integers and bools to f32, as jax.numpy does.
Array float_unary(Prim p, const Array& a) {
  const detail::ArrayImpl& impl = impl_of(a, ir::prim_name(p));
  Array x = is_float(impl.type.dtype) ? a : convert_weak(a, DType::f32);
  return bind1(p, {x});
}

Axes normalize_axes(std::string_view op, const Axes& axes, const Array& x) {
  const int64_t rank = x.ndim();
  Axes out;
  for (int64_t a : axes) {
    int64_t n = a < 0 ? a + rank : a;
    if (n < 0 || n >= rank)
      raise<IndexError>(op, "axis ", a, " is out of range for ", ir::type_str(x.impl()->type),
                        " (rank ", rank, "); ",
                        rank == 0 ? std::string("a 0-d array has no axes: reduce it with no axes")
                                  : absl::StrCat("valid axes run from ", -rank, " to ", rank - 1));
    if (std::find(out.begin(), out.end(), n) != out.end())
      raise<IndexError>(op, "axis ", a, " is repeated in (", absl::StrJoin(axes, ", "), ") for ",
                        ir::type_str(x.impl()->type), "; list each axis at most once");
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every axis of `a` (checked valid first, through `checked`, so errors name the caller's op).
Axes all_axes(const detail::ArrayImpl& checked, const Array& a) {
  Axes axes;
  for (int64_t i = 0; i < a.ndim(); ++i) axes.push_back(i);
  return axes;
}

int64_t reduced_count(const Array& a, const Axes& axes) {
  int64_t n = 1;
  for (int64_t ax : axes) n *= a.shape()[static_cast<size_t>(ax)];
  return n;
}

}  // namespace

// Constructors: a scalar broadcast to the shape, as JAX's jnp.full.
Array full(const Shape& shape, double value, DType dtype) {
  detail::check_shape("full", shape);
  return broadcast_to_shape(Array::scalar(dtype, value, false), shape);
}
Array zeros(const Shape& shape, DType dtype) { return full(shape, 0, dtype); }
Array ones(const Shape& shape, DType dtype) { return full(shape, 1, dtype); }
Array zeros_like(const Array& a) { return zeros(a.shape(), a.dtype()); }
Array ones_like(const Array& a) { return ones(a.shape(), a.dtype()); }
Array arange(int64_t n, DType dtype) {
  if (n < 0) raise<ShapeError>("arange", "needs a non-negative count, got ", n, "; pass n >= 0");
  return bind1(Prim::kIota, {}, ir::Params{.shape = {n}, .axis = 0, .dtype = dtype});
}

Array operator+(const Array& a, const Array& b) { return binary(Prim::kAdd, "add", a, b); }
Array operator*(const Array& a, const Array& b) { return binary(Prim::kMul, "mul", a, b); }
Array operator/(const Array& a, const Array& b) {
  // True division, as jnp.true_divide: integer and bool operands divide in f32.
  std::vector<Array> xs = prepare("div", {a, b});
  if (!is_float(xs[0].dtype()))
    for (Array& x : xs) x = convert_weak(x, DType::f32);
  return bind1(Prim::kDiv, xs);
}
Array operator-(const Array& a) { return bind1(Prim::kNeg, {a}); }
Array operator-(const Array& a, const Array& b) {
  std::vector<Array> xs = prepare("sub", {a, b});
  if (xs[0].dtype() == DType::bool_)
    raise<TypeError>("sub", "cannot subtract bool arrays ", types_str({&a, &b}),
                     "; use ^ for a logical difference, or tj::astype to a number type");
  return bind1(Prim::kAdd, {xs[0], -xs[1]});
}
Array operator==(const Array& a, const Array& b) { return binary(Prim::kEq, "eq", a, b); }
Array operator!=(const Array& a, const Array& b) { return binary(Prim::kNe, "ne", a, b); }
Array operator<(const Array& a, const Array& b) { return binary(Prim::kLt, "lt", a, b); }
Array operator<=(const Array& a, const Array& b) { return binary(Prim::kLe, "le", a, b); }
Array operator>(const Array& a, const Array& b) { return binary(Prim::kGt, "gt", a, b); }
Array operator>=(const Array& a, const Array& b) { return binary(Prim::kGe, "ge", a, b); }
Array operator&(const Array& a, const Array& b) { return binary(Prim::kAnd, "and", a, b); }
Array operator|(const Array& a, const Array& b) { return binary(Prim::kOr, "or", a, b); }
Array operator^(const Array& a, const Array& b) { return binary(Prim::kXor, "xor", a, b); }
Array operator<<(const Array& a, const Array& b) { return binary(Prim::kShl, "shift_left", a, b); }
Array operator>>(const Array& a, const Array& b) { return binary(Prim::kShr, "shift_right", a, b); }

Array exp(const Array& a) { return float_unary(Prim::kExp, a); }
Array log(const Array& a) { return float_unary(Prim::kLog, a); }
Array log1p(const Array& a) { return float_unary(Prim::kLog1p, a); }
Array sin(const Array& a) { return float_unary(Prim::kSin, a); }
Array cos(const Array& a) { return float_unary(Prim::kCos, a); }
Array tanh(const Array& a) { return float_unary(Prim::kTanh, a); }
Array sqrt(const Array& a) { return float_unary(Prim::kSqrt, a); }
Array abs(const Array& a) { return bind1(Prim::kAbs, {a}); }
Array sign(const Array& a) { return bind1(Prim::kSign, {a}); }
Array square(const Array& a) { return a * a; }
Array pow(const Array& a, const Array& b) {
  // Integers stay integers (exact exponentiation, as jnp.power); bools count as i32.
  std::vector<Array> xs = prepare("pow", {a, b});
  if (xs[0].dtype() == DType::bool_) {
    xs[0] = astype(xs[0], DType::i32);
    xs[1] = astype(xs[1], DType::i32);
  }
  return bind1(Prim::kPow, xs);
}
Array maximum(const Array& a, const Array& b) { return binary(Prim::kMax, "max", a, b); }
Array minimum(const Array& a, const Array& b) { return binary(Prim::kMin, "min", a, b); }
Array where(const Array& cond, const Array& a, const Array& b) {
  impl_of(cond, "select");
  Array c = cond.dtype() == DType::bool_ ? cond : cond != 0;
  std::vector<Array> xs = prepare("select", {a, b});
  Shape shape = broadcast_shapes("select", std::vector<Array>{c, xs[0], xs[1]});
  return bind1(Prim::kSelect, {broadcast_to_shape(c, shape), broadcast_to_shape(xs[0], shape),
                                broadcast_to_shape(xs[1], shape)});
}

Array sum(const Array& a) { return sum(a, all_axes(impl_of(a, "reduce_sum"), a)); }
Array sum(const Array& a, const Axes& axes) {
  impl_of(a, "reduce_sum");
  Array x = a.dtype() == DType::bool_ ? astype(a, DType::i32) : a;
  Axes ax = normalize_axes("reduce_sum", axes, a);
  return bind1(Prim::kReduceSum, {x}, ir::Params{.axes = ax});
}
Array mean(const Array& a) { return mean(a, all_axes(impl_of(a, "mean"), a)); }
Array mean(const Array& a, const Axes& axes) {
  impl_of(a, "mean");
  Axes ax = normalize_axes("mean", axes, a);
  Array x = is_float(a.dtype()) ? a : astype(a, DType::f32);
  return sum(x, ax) / Array::scalar(x.dtype(), static_cast<double>(reduced_count(a, ax)), true);
}
Array max(const Array& a) { return max(a, all_axes(impl_of(a, "reduce_max"), a)); }
Array max(const Array& a, const Axes& axes) {
  impl_of(a, "reduce_max");
  Axes ax = normalize_axes("reduce_max", axes, a);
  if (reduced_count(a, ax) == 0 && !ax.empty())
    raise<ShapeError>("reduce_max", "cannot take the max of a zero-size reduction of ",
                      ir::type_str(a.impl()->type), ": it has no identity");
  return bind1(Prim::kReduceMax, {a}, ir::Params{.axes = ax});
}

Array reshape(const Array& a, const Shape& shape) {
  impl_of(a, "reshape");
  Shape s = shape;
  auto minus = std::count(s.begin(), s.end(), -1);
  if (minus > 1) raise<ShapeError>("reshape", "at most one dimension may be -1, got ", shape_str(shape));
  if (minus == 1) {
    int64_t known = 1;
    for (int64_t d : s) known *= d == -1 ? 1 : d;
    if (known == 0 || a.size() % known != 0)
      raise<ShapeError>("reshape", "cannot reshape ", ir::type_str(a.impl()->type), " to ",
                        shape_str(shape), ": ", a.size(), " elements do not divide evenly");
    *std::find(s.begin(), s.end(), -1) = a.size() / known;
  }
  if (s == a.shape()) return a;
  return bind1(Prim::kReshape, {a}, ir::Params{.shape = s});
}
Array broadcast_to(const Array& a, const Shape& shape) {
  impl_of(a, "broadcast_to");
  if (a.shape().size() > shape.size())
    raise<ShapeError>("broadcast_to", "cannot broadcast ", ir::type_str(a.impl()->type),
                      " to the lower-rank shape ", shape_str(shape));
  // Checked here, not only by the primitive's shape rule, so that the error names broadcast_to.
  const size_t lead = shape.size() - a.shape().size();
  for (size_t i = 0; i < a.shape().size(); ++i)
    if (a.shape()[i] != 1 && a.shape()[i] != shape[lead + i])
      raise<ShapeError>("broadcast_to", "cannot broadcast ", ir::type_str(a.impl()->type), " to ",
                        shape_str(shape), ": dimension ", i, " has size ", a.shape()[i],
                        ", which is neither 1 nor ", shape[lead + i],
                        "; only size-1 dimensions stretch (reshape or slice the array first)");
  return broadcast_to_shape(a, shape);
}
Array transpose(const Array& a, const Axes& perm) {
  impl_of(a, "transpose");
  Axes p;
  for (int64_t x : perm) p.push_back(x < 0 ? x + a.ndim() : x);
  return bind1(Prim::kTranspose, {a}, ir::Params{.axes = p});
}
Array matmul(const Array& a, const Array& b) {
  impl_of(a, "matmul");
  impl_of(b, "matmul");
  if (a.ndim() == 0 || b.ndim() == 0)
    raise<ShapeError>("matmul", "takes operands of rank 1 or more, got ", types_str({&a, &b}),
                      "; use * for scalars");
  detail::WeakDType d = common_dtype("matmul", std::vector<Array>{a, b});
  Array x = convert_weak(a, d), y = convert_weak(b, d);
  // NumPy's 1-d rules: a vector on the left is a row, on the right a column; its axis is
  // dropped from the result.
  if (a.ndim() == 1) x = reshape(x, {1, a.shape()[0]});
  if (b.ndim() == 1) y = reshape(y, {b.shape()[0], 1});
  const Shape& xs = x.shape();
  const Shape& ys = y.shape();
  const int64_t m = xs[xs.size() - 2], k = xs.back(), k2 = ys[ys.size() - 2], n = ys.back();
  if (k != k2)
    raise<ShapeError>("matmul", "cannot multiply ", types_str({&a, &b}),
                      ": contracting dimensions ", k, " and ", k2,
                      " differ; transpose an operand or reshape it so the inner dimensions agree");
  const Shape xb(xs.begin(), xs.end() - 2), yb(ys.begin(), ys.end() - 2);
  Shape batch = xb;
  if (!broadcast_into(batch, yb))
    raise<ShapeError>("matmul", "cannot broadcast the batch dimensions ", shape_str(xb), " and ",
                      shape_str(yb), " of ", types_str({&a, &b}),
                      "; batch dimensions must be equal or 1");
  Array r;
  if (yb.empty() && !xb.empty()) {
    // [..., m, k] @ [k, n]: one matrix product over all rows, b is not copied per batch.
    Shape full = batch;
    full.insert(full.end(), {m, n});
    r = reshape(bind1(Prim::kMatmul, {reshape(x, {shape_size(batch) * m, k}), y}), full);
  } else {
    auto with_batch = [&](const Array& v, int64_t rows, int64_t cols) {
      Shape s = batch;
      s.insert(s.end(), {rows, cols});
      return v.shape() == s ? v : broadcast_to(v, s);
    };
    r = bind1(Prim::kMatmul, {with_batch(x, m, k), with_batch(y, k, n)});
  }
  Shape out = batch;
  if (a.ndim() > 1) out.push_back(m);
  if (b.ndim() > 1) out.push_back(n);
  return r.shape() == out ? r : reshape(r, out);
}
Array slice(const Array& a, const Axes& starts, const Axes& limits) {
  impl_of(a, "slice");
  return bind1(Prim::kSlice, {a}, ir::Params{.axes = starts, .limits = limits});
}
Array concatenate(const std::vector<Array>& arrays, int64_t axis) {
  if (arrays.empty()) raise<ShapeError>("concatenate", "needs at least one array");
  for (const Array& x : arrays) impl_of(x, "concatenate");
  int64_t rank = arrays[0].ndim();
  if (rank == 0) raise<ShapeError>("concatenate", "cannot concatenate 0-d arrays; reshape them to [1]");
  int64_t ax = axis < 0 ? axis + rank : axis;
  if (ax < 0 || ax >= rank)
    raise<IndexError>("concatenate", "axis ", axis, " is out of range for ",
                      ir::type_str(arrays[0].impl()->type), "; axes of a rank-", rank,
                      " array run from ", -rank, " to ", rank - 1);
  detail::WeakDType d = common_dtype("concatenate", arrays);
  std::vector<Array> xs;
  for (const Array& x : arrays) xs.push_back(convert_weak(x, d));
  if (xs.size() == 1) return xs[0];
  return bind1(Prim::kConcatenate, xs, ir::Params{.axis = ax});
}

Array astype(const Array& a, DType dtype) {
  const detail::ArrayImpl& impl = impl_of(a, "astype");
  if (impl.type.dtype == dtype && !impl.type.weak) return a;
  return bind1(Prim::kConvert, {a}, ir::Params{.dtype = dtype});
}
Array bitcast(const Array& a, DType dtype) {
  impl_of(a, "bitcast");
  return bind1(Prim::kBitcast, {a}, ir::Params{.dtype = dtype});
}
Array stop_gradient(const Array& a) {
  impl_of(a, "stop_gradient");
  if (!is_float(a.dtype())) return a;
  return bind1(Prim::kStopGradient, {a});
}

}  // namespace tracejit

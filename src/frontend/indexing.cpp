// Static and dynamic indexing built from public ops: slice with a step, take, dynamic_slice,
// dynamic_update_slice and x.at(i) updates. Gathers are selects of a one-hot mask maximised
// over the indexed axis (max(where(mask, x, lowest))): exact for every element, -0.0, NaN and
// infinities included, where a sum would turn -0.0 into +0.0 (and a multiply let NaN and inf
// elsewhere in); their VJP is the scatter that the select and reduce_max rules give. They
// cost the indexed axis's length per output element: fine for the sizes ports index, not a
// gather kernel.
#include <limits>

#include "base/array_impl.h"
#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit {
namespace {

using detail::raise;

int64_t normalize_axis(std::string_view op, int64_t axis, const Array& a) {
  const int64_t rank = a.ndim();
  const int64_t n = axis < 0 ? axis + rank : axis;
  if (n < 0 || n >= rank)
    raise<IndexError>(op, "axis ", axis, " is out of range for ", type_str(a.dtype(), a.shape()),
                      rank == 0 ? "; a 0-d array has no axes"
                                : detail::cat("; valid axes run from ", -rank, " to ", rank - 1));
  return n;
}

// An integer index array as i32; a float or bool one is a TypeError naming `op`.
Array index_array(std::string_view op, const Array& i, std::string_view what) {
  detail::impl_of(i, op);
  if (!is_integer(i.dtype()))
    raise<TypeError>(op, what, " must be an integer array, got ", type_str(i.dtype(), i.shape()),
                     "; convert it with tj::astype(", what, ", tj::DType::i32)");
  return i.dtype() == DType::i32 ? i : astype(i, DType::i32);
}

// A scalar start index (dynamic_slice, at): i32, 0-d.
Array scalar_index(std::string_view op, const Array& i, std::string_view what) {
  Array r = index_array(op, i, what);
  if (r.ndim() != 0)
    raise<ShapeError>(op, what, " must be a scalar, got ", type_str(i.dtype(), i.shape()));
  return r;
}

// `v` along axis `axis` of a rank-`rank` shape: reshaped to 1 everywhere else.
Array along(const Array& v, int64_t axis, int64_t rank) {
  Shape s(static_cast<size_t>(rank), 1);
  s[static_cast<size_t>(axis)] = v.size();
  return reshape(v, s);
}

// The fill of a gather's unselected elements: the lowest value of a's dtype (-inf for floats),
// weakly typed when a is (a gather keeps its operand's weak type, as in JAX).
Array lowest_of(const Array& a) {
  const double lowest = is_float(a.dtype())       ? -std::numeric_limits<double>::infinity()
                        : a.dtype() == DType::i32 ? std::numeric_limits<int32_t>::lowest()
                                                  : 0.0;
  return Array::scalar(a.dtype(), lowest, a.weak_type());
}

}  // namespace

Array slice(const Array& a, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  detail::impl_of(a, "slice");
  const int64_t ax = normalize_axis("slice", axis, a);
  if (step < 1) raise<IndexError>("slice", "needs a step of at least 1, got ", step);
  const int64_t n = a.shape()[static_cast<size_t>(ax)];
  auto clamp = [&](int64_t i) { return std::clamp(i < 0 ? i + n : i, int64_t{0}, n); };
  const int64_t lo = clamp(start), hi = std::max(lo, clamp(stop));
  Axes starts(static_cast<size_t>(a.ndim()), 0), limits(a.shape().begin(), a.shape().end());
  starts[static_cast<size_t>(ax)] = lo;
  limits[static_cast<size_t>(ax)] = hi;
  Array s = slice(a, starts, limits);
  if (step == 1 || hi - lo <= 1) return s;
  // Pad the range to a multiple of step, view it as [count, step] and keep column 0.
  const int64_t count = (hi - lo + step - 1) / step, pad = count * step - (hi - lo);
  if (pad > 0) {
    Shape ps = s.shape();
    ps[static_cast<size_t>(ax)] = pad;
    s = concatenate({s, zeros(ps, s.dtype())}, ax);
  }
  Shape split = s.shape();
  split[static_cast<size_t>(ax)] = count;
  split.insert(split.begin() + ax + 1, step);
  Array v = reshape(s, split);
  Axes vs(split.size(), 0), vl(split.begin(), split.end());
  vl[static_cast<size_t>(ax) + 1] = 1;
  Shape out = s.shape();
  out[static_cast<size_t>(ax)] = count;
  return reshape(slice(v, vs, vl), out);
}

Array take(const Array& a, const Array& indices, int64_t axis) {
  detail::impl_of(a, "take");
  Array idx = index_array("take", indices, "indices");
  const int64_t ax = normalize_axis("take", axis, a);
  const int64_t n = a.shape()[static_cast<size_t>(ax)];
  if (a.dtype() == DType::bool_) return astype(take(astype(a, DType::i32), indices, axis), DType::bool_);
  if (n == 0 && idx.size() > 0)
    raise<IndexError>("take", "cannot take from the empty axis ", axis, " of ",
                      type_str(a.dtype(), a.shape()));
  idx = clip(idx, 0, n - 1);
  // a with the axis moved last, then room for the index dimensions before the rest.
  const int64_t rank = a.ndim(), irank = idx.ndim();
  Axes perm;
  for (int64_t i = 0; i < rank; ++i)
    if (i != ax) perm.push_back(i);
  perm.push_back(ax);
  Array moved = transpose(a, perm);
  Shape pre(a.shape().begin(), a.shape().begin() + ax), post(a.shape().begin() + ax + 1, a.shape().end());
  Shape xs = pre;
  xs.insert(xs.end(), static_cast<size_t>(irank), 1);
  xs.insert(xs.end(), post.begin(), post.end());
  xs.push_back(n);
  Shape ms(pre.size(), 1);
  ms.insert(ms.end(), idx.shape().begin(), idx.shape().end());
  ms.insert(ms.end(), post.size(), 1);
  ms.push_back(n);
  Array mask = reshape(reshape(idx, [&] {
                         Shape s = idx.shape();
                         s.push_back(1);
                         return s;
                       }()) == arange(n), ms);
  const int64_t last = static_cast<int64_t>(xs.size()) - 1;
  if (n == 0) {  // no indices either: an empty result
    Shape out = pre;
    out.insert(out.end(), idx.shape().begin(), idx.shape().end());
    out.insert(out.end(), post.begin(), post.end());
    return broadcast_to(lowest_of(a), out);
  }
  return max(where(mask, reshape(moved, xs), lowest_of(a)), {last});
}

Array dynamic_slice(const Array& a, const std::vector<Array>& starts, const Shape& sizes) {
  detail::impl_of(a, "dynamic_slice");
  const size_t rank = a.shape().size();
  if (starts.size() != rank || sizes.size() != rank)
    raise<ShapeError>("dynamic_slice", "needs one start and one size per axis of ",
                      type_str(a.dtype(), a.shape()), ", got ", starts.size(), " starts and ",
                      sizes.size(), " sizes");
  Array out = a;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t dim = a.shape()[i], size = sizes[i];
    if (size < 0 || size > dim)
      raise<ShapeError>("dynamic_slice", "size ", size, " along axis ", i, " does not fit the dimension ",
                        dim, " of ", type_str(a.dtype(), a.shape()), "; sizes must be between 0 and the dimension");
    Array s = clip(scalar_index("dynamic_slice", starts[i], "start"), 0, dim - size);
    if (size == dim) continue;
    const int64_t ax = static_cast<int64_t>(i);
    if (!s.is_tracer()) {
      const int64_t lo = s.item<int32_t>();
      out = slice(out, ax, lo, lo + size);
    } else {
      out = take(out, s + arange(size), ax);
    }
  }
  return out;
}

Array dynamic_update_slice(const Array& a, const Array& update, const std::vector<Array>& starts) {
  detail::impl_of(a, "dynamic_update_slice");
  detail::impl_of(update, "dynamic_update_slice");
  const size_t rank = a.shape().size();
  if (update.shape().size() != rank || starts.size() != rank)
    raise<ShapeError>("dynamic_update_slice", "needs an update of ", type_str(a.dtype(), a.shape()),
                      "'s rank and one start per axis, got ", type_str(update.dtype(), update.shape()),
                      " and ", starts.size(), " starts");
  Array u = update.dtype() == a.dtype() ? update : astype(update, a.dtype());
  std::vector<Array> s;
  for (size_t i = 0; i < rank; ++i) {
    if (u.shape()[i] > a.shape()[i])
      raise<ShapeError>("dynamic_update_slice", "the update ", type_str(update.dtype(), update.shape()),
                        " is larger than the operand ", type_str(a.dtype(), a.shape()), " along axis ", i,
                        "; slice the update to fit");
    s.push_back(clip(scalar_index("dynamic_update_slice", starts[i], "start"), 0, a.shape()[i] - u.shape()[i]));
  }
  // An empty update writes nothing (there is no row of it to read); the result is typed as
  // where(mask, u, a), strong unless both are weak.
  if (u.size() == 0) return u.weak_type() || !a.weak_type() ? a : astype(a, a.dtype());
  Array mask = Array(true);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t dim = a.shape()[i], usize = u.shape()[i];
    if (usize == dim) continue;
    // Position j of the result reads row j - s of the update, where that is in range.
    const int64_t ax = static_cast<int64_t>(i);
    Array rel = arange(dim) - s[i];
    u = take(u, clip(rel, 0, usize - 1), ax);
    mask = mask & along((rel >= 0) & (rel < usize), ax, static_cast<int64_t>(rank));
  }
  return where(mask, u, a);
}

// x.at(i): one row along axis 0, selected by a mask so that a traced index works.
ArrayAt Array::at(const Array& index) const { return ArrayAt(*this, index); }

namespace {

struct Row {
  Array mask;  // bool, [n, 1, ...]: true at the updated row (nowhere when out of range)
  Array value; // the update converted to the array's dtype
};

Row row_of(const Array& a, const Array& index, const Array& v, std::string_view op) {
  detail::impl_of(a, op);
  detail::impl_of(v, op);
  if (a.ndim() == 0) raise<IndexError>(op, "cannot index a 0-d array ", type_str(a.dtype(), a.shape()));
  Array i = scalar_index(op, index, "index");
  const int64_t n = a.shape()[0];
  i = where(i < 0, i + n, i);
  Shape rest(a.shape().begin() + 1, a.shape().end());
  Array value = v.dtype() == a.dtype() ? v : astype(v, a.dtype());
  if (value.ndim() > static_cast<int64_t>(rest.size()))
    raise<ShapeError>(op, "the update ", type_str(v.dtype(), v.shape()), " does not fit a row ",
                      shape_str(rest), " of ", type_str(a.dtype(), a.shape()));
  return {along(arange(n) == i, 0, a.ndim()), broadcast_to(value, rest)};
}

}  // namespace

Array ArrayAt::set(const Array& v) const {
  Row r = row_of(array_, index_, v, "at.set");
  return where(r.mask, r.value, array_);
}
Array ArrayAt::add(const Array& v) const {
  Row r = row_of(array_, index_, v, "at.add");
  return where(r.mask, array_ + r.value, array_);
}
Array ArrayAt::multiply(const Array& v) const {
  Row r = row_of(array_, index_, v, "at.multiply");
  return where(r.mask, array_ * r.value, array_);
}
Array ArrayAt::min(const Array& v) const {
  Row r = row_of(array_, index_, v, "at.min");
  return where(r.mask, minimum(array_, r.value), array_);
}
Array ArrayAt::max(const Array& v) const {
  Row r = row_of(array_, index_, v, "at.max");
  return where(r.mask, maximum(array_, r.value), array_);
}
Array ArrayAt::get() const {
  detail::impl_of(array_, "at.get");
  Array i = scalar_index("at.get", index_, "index");
  const int64_t n = array_.ndim() > 0 ? array_.shape()[0] : 0;
  return take(array_, where(i < 0, i + n, i), 0);
}

}  // namespace tracejit

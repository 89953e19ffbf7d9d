// Eager evaluation of every primitive on host buffers. Clarity over speed: this is the
// reference that compiled code is checked against, so each rule is the plainest loop that
// states the semantics (XLA's where C++ leaves them undefined: integer division by zero,
// out-of-range shifts, float-to-int conversion).
#include "trace/eager.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "base/debug_format.h"
#include "base/dtype_dispatch.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "distributed/collectives.h"

namespace tracejit::detail {
namespace {

using ir::Prim;

template <class T>
T* out_data(Array& a) { return static_cast<T*>(a.impl()->elements); }
template <class T>
const T* in_data(const Array& a) { return a.impl()->data<T>(); }

// Calls f(off_a, off_b) for every index of `shape` in row-major order, where off_x is
// base_x + sum(index_k * strides_x[k]).
template <class F>
void for_each_offset(const Shape& shape, const std::vector<int64_t>& sa, int64_t base_a,
                     const std::vector<int64_t>& sb, int64_t base_b, F&& f) {
  const size_t rank = shape.size();
  if (shape_size(shape) == 0) return;
  std::vector<int64_t> idx(rank, 0);
  int64_t a = base_a, b = base_b;
  while (true) {
    f(a, b);
    size_t k = rank;
    while (k > 0) {
      --k;
      if (++idx[k] < shape[k]) {
        a += sa[k];
        b += sb[k];
        break;
      }
      a -= sa[k] * (shape[k] - 1);
      b -= sb[k] * (shape[k] - 1);
      idx[k] = 0;
      if (k == 0) return;
    }
    if (rank == 0) return;
  }
}

// Copies the strided view (src_base, src_strides) over `shape` into a row-major destination.
void strided_copy(DType d, const Shape& shape, const void* src, int64_t src_base,
                  const std::vector<int64_t>& src_strides, void* dst, int64_t dst_base,
                  const std::vector<int64_t>& dst_strides) {
  int64_t es = dtype_size(d);
  auto* s = static_cast<const char*>(src);
  auto* t = static_cast<char*>(dst);
  for_each_offset(shape, src_strides, src_base, dst_strides, dst_base,
                  [&](int64_t a, int64_t b) { std::memcpy(t + b * es, s + a * es, es); });
}

template <class T>
T int_div(T a, T b) {
  if (b == 0) return static_cast<T>(-1);  // XLA: x / 0 is all ones bits
  if constexpr (std::is_signed_v<T>)
    if (a == std::numeric_limits<T>::min() && b == -1) return a;  // XLA: no trap on overflow
  return a / b;
}

// Integer a^b by squaring, wrapping as multiplication does. A negative exponent gives 1 / a^|b|
// truncated: 1 for a = 1, +-1 for a = -1, else 0 (XLA's integer pow, which lax.pow follows).
template <class T>
T int_pow(T a, T b) {
  if constexpr (std::is_signed_v<T>)
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint32_t result = 1, base = static_cast<uint32_t>(a);
  for (uint32_t e = static_cast<uint32_t>(b); e != 0; e >>= 1) {
    if (e & 1) result *= base;
    base *= base;
  }
  return static_cast<T>(result);
}

template <class T>
T shift_left(T a, T b) {
  using U = std::make_unsigned_t<T>;
  if (static_cast<U>(b) >= 32) return 0;
  return static_cast<T>(static_cast<U>(a) << static_cast<U>(b));
}
template <class T>
T shift_right(T a, T b) {
  using U = std::make_unsigned_t<T>;
  if constexpr (std::is_signed_v<T>) {
    if (static_cast<U>(b) >= 32) return a < 0 ? -1 : 0;  // arithmetic shift fills with the sign
    return static_cast<T>(a >> b);
  } else {
    if (b >= 32) return 0;
    return a >> b;
  }
}

// Wrapping arithmetic for integers (C++ signed overflow is undefined; XLA wraps).
template <class T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  else return a + b;
}
template <class T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
  else return a * b;
}

// NaN-propagating max/min, as XLA's.
template <class T>
T max_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a > b ? a : b;
}
// reduce_max's step: max_of, except that +0 beats -0 (IEEE maximum). A tie of zeros then gives
// the same bits in any order of the elements, as compiled reductions, which run in any order.
template <class T>
T reduce_max_of(T acc, T x) {
  if constexpr (std::is_floating_point_v<T>) {
    if (acc == x) return std::signbit(acc) ? x : acc;
  }
  return max_of(acc, x);
}
template <class T>
T min_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a < b ? a : b;
}

// Float to integer conversion saturates and maps NaN to 0 (LLVM's fptosi.sat / fptoui.sat).
template <class To, class From>
To convert_value(From x) {
  if constexpr (std::is_same_v<To, bool>) {
    return x != From(0);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(x)) return 0;
    if (x <= static_cast<From>(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    if (x >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(x);
  } else {
    return static_cast<To>(x);
  }
}

template <class T>
T unary_value(Prim p, T x) {
  if constexpr (std::is_same_v<T, bool>) {
    fail_internal(__FILE__, __LINE__, "unary primitive on bool");
  } else {
    switch (p) {
      case Prim::kNeg:
        if constexpr (std::is_integral_v<T>) return static_cast<T>(0u - static_cast<uint32_t>(x));
        else return -x;
      case Prim::kAbs:
        if constexpr (std::is_unsigned_v<T>) return x;
        else if constexpr (std::is_integral_v<T>) return x < 0 ? static_cast<T>(0u - static_cast<uint32_t>(x)) : x;
        else return std::fabs(x);
      case Prim::kSign:
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(x) || x == T(0)) return x;  // NaN stays NaN, -0 stays -0 (as XLA)
        }
        return static_cast<T>((x > T(0)) - (x < T(0)));
      case Prim::kExp: return static_cast<T>(std::exp(x));
      case Prim::kLog: return static_cast<T>(std::log(x));
      case Prim::kLog1p: return static_cast<T>(std::log1p(x));
      case Prim::kSin: return static_cast<T>(std::sin(x));
      case Prim::kCos: return static_cast<T>(std::cos(x));
      case Prim::kTanh: return static_cast<T>(std::tanh(x));
      case Prim::kSqrt: return static_cast<T>(std::sqrt(x));
      default: fail_internal(__FILE__, __LINE__, "not a unary primitive");
    }
  }
}

template <class T>
T binary_value(Prim p, T a, T b) {
  switch (p) {
    case Prim::kMax: return max_of(a, b);
    case Prim::kMin: return min_of(a, b);
    default: break;
  }
  if constexpr (std::is_same_v<T, bool>) {
    switch (p) {
      case Prim::kAnd: return a && b;
      case Prim::kOr: return a || b;
      case Prim::kXor: return a != b;
      default: fail_internal(__FILE__, __LINE__, "binary primitive on bool");
    }
  } else {
    switch (p) {
      case Prim::kAdd: return wrap_add(a, b);
      case Prim::kMul: return wrap_mul(a, b);
      case Prim::kDiv:
        if constexpr (std::is_integral_v<T>) return int_div(a, b);
        else return a / b;
      case Prim::kPow:
        if constexpr (std::is_floating_point_v<T>) return std::pow(a, b);
        else return int_pow(a, b);
      default: break;
    }
    if constexpr (std::is_integral_v<T>) {
      switch (p) {
        case Prim::kAnd: return a & b;
        case Prim::kOr: return a | b;
        case Prim::kXor: return a ^ b;
        case Prim::kShl: return shift_left(a, b);
        case Prim::kShr: return shift_right(a, b);
        default: break;
      }
    }
    fail_internal(__FILE__, __LINE__, "not a binary primitive for this dtype");
  }
}

template <class T>
bool compare_value(Prim p, T a, T b) {
  switch (p) {
    case Prim::kEq: return a == b;
    case Prim::kNe: return a != b;
    case Prim::kLt: return a < b;
    case Prim::kLe: return a <= b;
    case Prim::kGt: return a > b;
    case Prim::kGe: return a >= b;
    default: fail_internal(__FILE__, __LINE__, "not a comparison");
  }
}

// Output strides for reducing `in_shape` over `axes`: 0 along reduced axes.
std::vector<int64_t> reduce_out_strides(const Shape& in_shape, const std::vector<int64_t>& axes) {
  Shape kept;
  for (size_t i = 0; i < in_shape.size(); ++i)
    if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) == axes.end())
      kept.push_back(in_shape[i]);
  std::vector<int64_t> ks = row_major_strides(kept), out(in_shape.size(), 0);
  size_t j = 0;
  for (size_t i = 0; i < in_shape.size(); ++i)
    if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) == axes.end()) out[i] = ks[j++];
  return out;
}

void eval_into(Prim p, std::span<const Array> in, const ir::Params& params, Array& out) {
  const ir::Type& ot = out.impl()->type;
  const int64_t n = ot.size();
  switch (p) {
    case Prim::kNeg: case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin:
    case Prim::kCos: case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign:
      dispatch(ot.dtype, [&]<class T>() {
        const T* x = in_data<T>(in[0]);
        T* y = out_data<T>(out);
        for (int64_t i = 0; i < n; ++i) y[i] = unary_value<T>(p, x[i]);
      });
      return;
    case Prim::kStopGradient: case Prim::kReshape:
      std::memcpy(out.impl()->elements, in[0].impl()->elements,
                  static_cast<size_t>(n * dtype_size(ot.dtype)));
      return;
    case Prim::kConvert:
      dispatch(in[0].dtype(), [&]<class From>() {
        dispatch(ot.dtype, [&]<class To>() {
          const From* x = in_data<From>(in[0]);
          To* y = out_data<To>(out);
          for (int64_t i = 0; i < n; ++i) y[i] = convert_value<To, From>(x[i]);
        });
      });
      return;
    case Prim::kBitcast:
      std::memcpy(out.impl()->elements, in[0].impl()->elements,
                  static_cast<size_t>(n * dtype_size(ot.dtype)));
      return;
    case Prim::kAdd: case Prim::kMul: case Prim::kDiv: case Prim::kPow: case Prim::kMax:
    case Prim::kMin: case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl:
    case Prim::kShr:
      dispatch(ot.dtype, [&]<class T>() {
        const T* a = in_data<T>(in[0]);
        const T* b = in_data<T>(in[1]);
        T* y = out_data<T>(out);
        for (int64_t i = 0; i < n; ++i) y[i] = binary_value<T>(p, a[i], b[i]);
      });
      return;
    case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe:
      dispatch(in[0].dtype(), [&]<class T>() {
        const T* a = in_data<T>(in[0]);
        const T* b = in_data<T>(in[1]);
        bool* y = out_data<bool>(out);
        for (int64_t i = 0; i < n; ++i) y[i] = compare_value<T>(p, a[i], b[i]);
      });
      return;
    case Prim::kSelect:
      dispatch(ot.dtype, [&]<class T>() {
        const bool* c = in_data<bool>(in[0]);
        const T* a = in_data<T>(in[1]);
        const T* b = in_data<T>(in[2]);
        T* y = out_data<T>(out);
        for (int64_t i = 0; i < n; ++i) y[i] = c[i] ? a[i] : b[i];
      });
      return;
    case Prim::kReduceSum: case Prim::kReduceMax:
      dispatch(ot.dtype, [&]<class T>() {
        const T* x = in_data<T>(in[0]);
        T* y = out_data<T>(out);
        T init = p == Prim::kReduceSum ? T(0)
                 : std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                         : std::numeric_limits<T>::lowest();
        for (int64_t i = 0; i < n; ++i) y[i] = init;
        const Shape& xs = in[0].shape();
        if constexpr (std::is_floating_point_v<T>) {
          if (p == Prim::kReduceSum) {
            // An accurate sum: in f64 with Neumaier's compensation, so an f32 sum is the exact
            // sum rounded once (within its last bit), whatever the order or length.
            std::vector<double> sum(static_cast<size_t>(n), 0.0), comp(static_cast<size_t>(n), 0.0);
            for_each_offset(xs, row_major_strides(xs), 0, reduce_out_strides(xs, params.axes), 0,
                            [&](int64_t a, int64_t b) {
                              double& s = sum[static_cast<size_t>(b)];
                              const double v = static_cast<double>(x[a]), t = s + v;
                              if (std::isfinite(t))  // inf and NaN sums need no compensation
                                comp[static_cast<size_t>(b)] +=
                                    std::fabs(s) >= std::fabs(v) ? (s - t) + v : (v - t) + s;
                              s = t;
                            });
            for (int64_t i = 0; i < n; ++i) {
              const double s = sum[static_cast<size_t>(i)];
              y[i] = static_cast<T>(std::isfinite(s) ? s + comp[static_cast<size_t>(i)] : s);
            }
            return;
          }
        }
        for_each_offset(xs, row_major_strides(xs), 0, reduce_out_strides(xs, params.axes), 0,
                        [&](int64_t a, int64_t b) {
                          y[b] = p == Prim::kReduceSum ? binary_value<T>(Prim::kAdd, y[b], x[a])
                                                       : reduce_max_of(y[b], x[a]);
                        });
      });
      return;
    case Prim::kBroadcast: {
      const Shape& xs = in[0].shape();
      std::vector<int64_t> xst = row_major_strides(xs), src(ot.shape.size(), 0);
      for (size_t i = 0; i < params.axes.size(); ++i)
        if (xs[i] != 1) src[static_cast<size_t>(params.axes[i])] = xst[i];
      strided_copy(ot.dtype, ot.shape, in[0].impl()->elements, 0, src,
                   out.impl()->elements, 0, row_major_strides(ot.shape));
      return;
    }
    case Prim::kTranspose: {
      std::vector<int64_t> xst = row_major_strides(in[0].shape()), src;
      for (int64_t a : params.axes) src.push_back(xst[static_cast<size_t>(a)]);
      strided_copy(ot.dtype, ot.shape, in[0].impl()->elements, 0, src,
                   out.impl()->elements, 0, row_major_strides(ot.shape));
      return;
    }
    case Prim::kSlice: {
      std::vector<int64_t> xst = row_major_strides(in[0].shape());
      int64_t base = 0;
      for (size_t i = 0; i < xst.size(); ++i) base += params.axes[i] * xst[i];
      strided_copy(ot.dtype, ot.shape, in[0].impl()->elements, base, xst,
                   out.impl()->elements, 0, row_major_strides(ot.shape));
      return;
    }
    case Prim::kConcatenate: {
      std::vector<int64_t> ost = row_major_strides(ot.shape);
      int64_t offset = 0;
      for (const Array& x : in) {
        strided_copy(ot.dtype, x.shape(), x.impl()->elements, 0, row_major_strides(x.shape()),
                     out.impl()->elements, offset * ost[static_cast<size_t>(params.axis)], ost);
        offset += x.shape()[static_cast<size_t>(params.axis)];
      }
      return;
    }
    case Prim::kIota:
      dispatch(ot.dtype, [&]<class T>() {
        T* y = out_data<T>(out);
        std::vector<int64_t> st = row_major_strides(ot.shape);
        int64_t stride = st[static_cast<size_t>(params.axis)];
        int64_t extent = ot.shape[static_cast<size_t>(params.axis)];
        for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>((i / stride) % extent);
      });
      return;
    case Prim::kMatmul:
      dispatch(ot.dtype, [&]<class T>() {
        if constexpr (!std::is_same_v<T, bool>) {
          const T* a = in_data<T>(in[0]);
          const T* b = in_data<T>(in[1]);
          T* y = out_data<T>(out);
          // [..., m, k] x [..., k, n]: one product per batch index, rows in order.
          const Shape& as = in[0].shape();
          const size_t r = as.size();
          const int64_t m = as[r - 2], k = as[r - 1], cols = in[1].shape()[r - 1];
          const int64_t count = shape_size(Shape(as.begin(), as.end() - 1));  // rows, all batches
          for (int64_t i = 0; i < count * cols; ++i) y[i] = T(0);
          for (int64_t i = 0; i < count; ++i) {
            const T* brows = b + (i / m) * k * cols;
            for (int64_t kk = 0; kk < k; ++kk)
              for (int64_t j = 0; j < cols; ++j)
                y[i * cols + j] = wrap_add(y[i * cols + j], wrap_mul(a[i * k + kk], brows[kk * cols + j]));
          }
        }
      });
      return;
    case Prim::kDebugPrint:
      break;  // no result: eval_eager prints it
    case Prim::kAllSum:
      all_sum_buffer(in[0].impl()->elements, out.impl()->elements, ot);
      return;
    case Prim::kCall: case Prim::kCond: case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
      break;  // eval_eager hands them to eval_region
  }
  fail_internal(__FILE__, __LINE__, "unknown primitive");
}

}  // namespace

std::vector<int64_t> row_major_strides(const Shape& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  // Non-empty shapes passed check_shape, so these products fit; an empty array's strides are
  // never used and may wrap ({0, 2^62, 2^62}), which unsigned arithmetic keeps defined.
  for (size_t i = shape.size(); i-- > 1;)
    st[i - 1] = static_cast<int64_t>(static_cast<uint64_t>(st[i]) * static_cast<uint64_t>(shape[i]));
  return st;
}

std::vector<Array> eval_eager(ir::Prim prim, std::span<const Array> in, const ir::Params& params,
                              std::span<const ir::Type> out_types) {
  // The identity primitives share their operand's buffer rather than copying it.
  if ((prim == Prim::kStopGradient || prim == Prim::kReshape || prim == Prim::kBitcast) &&
      out_types[0].weak == in[0].weak_type()) {
    return {retyped(*in[0].impl(), out_types[0])};
  }
  if (prim == Prim::kDebugPrint) {
    emit_debug(params.text, in);
    return {};
  }
  if (ir::has_regions(prim)) return eval_region(prim, in, params, out_types);
  std::vector<Array> outs;
  for (const ir::Type& t : out_types) outs.push_back(make_concrete(t));
  eval_into(prim, in, params, outs[0]);
  return outs;
}

}  // namespace tracejit::detail

// Every public op and operator evaluated eagerly (outside any trace) against values worked out
// by hand: across dtypes, 0-d and size-0 arrays, NumPy broadcasting, JAX's weak typing of C++
// scalars, and XLA's semantics where C++ leaves them undefined (integer division by zero,
// out-of-range shifts, wrapping, saturating float-to-int conversion). Transcendental results
// were checked against NumPy and are compared with a stated absolute tolerance; everything else
// is exact. Error messages are tested in errors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <vector>

#include "base/array_impl.h"
#include "promotion_mode.h"
#include "tracejit/array.h"
#include "tracejit/dtype.h"
#include "tracejit/error.h"
#include "tracejit/jit.h"
#include "tracejit/ops.h"
#include "trace/trace_state.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::Shape;

namespace {

constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr uint32_t kUMax = std::numeric_limits<uint32_t>::max();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();
// Tolerances for transcendental functions (absolute; results are O(1)): a few ULPs of the type.
constexpr double kTolF32 = 1e-6;
constexpr double kTolF64 = 1e-14;

template <class T>
Array A(const std::vector<T>& values, const Shape& shape) {
  return tj::array(values, shape);
}
template <class T>
Array A(const std::vector<T>& values) {
  return tj::array(values);
}
// A strong (non-weak) 0-d array.
template <class T>
Array S(T value) {
  return tj::array(std::vector<T>{value}, {});
}

template <class T>
bool same_value(T got, T want, double tol) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(want)) return std::isnan(got);
    if (got == want || tol == 0) return got == want;  // exact, and infinities
    return std::abs(static_cast<double>(got) - static_cast<double>(want)) <= tol;
  } else {
    return got == want;
  }
}

// `a` has T's dtype, `shape`, and `want` (row-major). tol 0 is exact (NaN matches NaN only).
template <class T>
testing::AssertionResult Is(const Array& a, const Shape& shape, const std::vector<T>& want,
                            double tol = 0) {
  if (!a.valid()) return testing::AssertionFailure() << "empty array";
  if (a.dtype() != tj::dtype_of<T>())
    return testing::AssertionFailure() << "dtype " << a.dtype() << ", want " << tj::dtype_of<T>();
  if (a.shape() != shape)
    return testing::AssertionFailure()
           << "shape " << tj::shape_str(a.shape()) << ", want " << tj::shape_str(shape);
  std::vector<T> got = a.to_vector<T>();
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < got.size(); ++i) ok = same_value<T>(got[i], want[i], tol);
  if (ok) return testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(10);
  os << "values {";
  for (size_t i = 0; i < got.size(); ++i) os << (i ? ", " : "") << +got[i];
  os << "}, want {";
  for (size_t i = 0; i < want.size(); ++i) os << (i ? ", " : "") << +want[i];
  os << "}";
  return testing::AssertionFailure() << os.str();
}

// Numeric dtypes that all ops with small integer values must agree on.
template <class T>
class EagerNumeric : public testing::Test {};
using NumericTypes = testing::Types<float, double, int32_t, uint32_t>;
TYPED_TEST_SUITE(EagerNumeric, NumericTypes);

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and metadata.

TEST(EagerConstruct, ScalarsMapCppTypesAndAreWeak) {
  EXPECT_TRUE(Is<float>(Array(1.5f), {}, {1.5f}));
  EXPECT_TRUE(Is<double>(Array(2.5), {}, {2.5}));
  EXPECT_TRUE(Is<int32_t>(Array(-7), {}, {-7}));
  EXPECT_TRUE(Is<uint32_t>(Array(uint32_t{7}), {}, {7u}));
  EXPECT_TRUE(Is<uint32_t>(Array(kUMax), {}, {kUMax}));
  EXPECT_TRUE(Is<bool>(Array(true), {}, {true}));
  EXPECT_TRUE(Is<int32_t>(Array(int64_t{3}), {}, {3}));  // other signed integers → i32
  for (const Array& a : {Array(1.5f), Array(2.5), Array(1), Array(1u), Array(false)}) {
    EXPECT_TRUE(a.weak_type());
    EXPECT_EQ(a.ndim(), 0);
    EXPECT_EQ(a.size(), 1);
    EXPECT_FALSE(a.is_tracer());
  }
}

TEST(EagerConstruct, ArrayFromValuesEveryDtype) {
  Array f = A<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(f.ndim(), 2);
  EXPECT_EQ(f.size(), 6);
  EXPECT_FALSE(f.weak_type());
  EXPECT_TRUE(Is<float>(f, {2, 3}, {1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(Is<double>(A<double>({0.1, -2.5}), {2}, {0.1, -2.5}));
  EXPECT_TRUE(Is<int32_t>(A<int32_t>({kIntMin, kIntMax}, {2, 1}), {2, 1}, {kIntMin, kIntMax}));
  EXPECT_TRUE(Is<uint32_t>(A<uint32_t>({0, kUMax}), {2}, {0, kUMax}));
  EXPECT_TRUE(Is<bool>(A<bool>({true, false, true}), {3}, {true, false, true}));
  EXPECT_TRUE(Is<float>(tj::array({1.f, 2.f, 3.f, 4.f}, {2, 2}), {2, 2}, {1, 2, 3, 4}));
  EXPECT_TRUE(Is<int32_t>(S<int32_t>(5), {}, {5}));
  EXPECT_FALSE(S<int32_t>(5).weak_type());
}

TEST(EagerConstruct, SizeZeroArrays) {
  Array a = A<float>({}, {0});
  EXPECT_EQ(a.size(), 0);
  EXPECT_EQ(a.ndim(), 1);
  EXPECT_TRUE(a.to_vector<float>().empty());
  Array b = A<int32_t>({}, {2, 0, 3});
  EXPECT_EQ(b.size(), 0);
  EXPECT_EQ(b.shape(), (Shape{2, 0, 3}));
}

TEST(EagerConstruct, ZerosOnesFull) {
  EXPECT_TRUE(Is<float>(tj::zeros({2, 2}), {2, 2}, {0, 0, 0, 0}));
  EXPECT_TRUE(Is<int32_t>(tj::ones({3}, DType::i32), {3}, {1, 1, 1}));
  EXPECT_TRUE(Is<bool>(tj::ones({2}, DType::bool_), {2}, {true, true}));
  EXPECT_TRUE(Is<double>(tj::full({2}, 2.5, DType::f64), {2}, {2.5, 2.5}));
  EXPECT_TRUE(Is<uint32_t>(tj::full({2}, -1, DType::u32), {2}, {kUMax, kUMax}));  // wraps
  EXPECT_TRUE(Is<int32_t>(tj::full({3}, 2.7, DType::i32), {3}, {2, 2, 2}));       // truncates
  EXPECT_TRUE(Is<int32_t>(tj::full({}, 3, DType::i32), {}, {3}));
  EXPECT_TRUE(Is<float>(tj::zeros({0, 3}), {0, 3}, {}));
  EXPECT_FALSE(tj::zeros({2}).weak_type());
  Array x = A<uint32_t>({5, 6}, {1, 2});
  EXPECT_TRUE(Is<uint32_t>(tj::zeros_like(x), {1, 2}, {0, 0}));
  EXPECT_TRUE(Is<uint32_t>(tj::ones_like(x), {1, 2}, {1, 1}));
}

TEST(EagerConstruct, Arange) {
  EXPECT_TRUE(Is<int32_t>(tj::arange(5), {5}, {0, 1, 2, 3, 4}));
  EXPECT_TRUE(Is<float>(tj::arange(3, DType::f32), {3}, {0, 1, 2}));
  EXPECT_TRUE(Is<double>(tj::arange(2, DType::f64), {2}, {0, 1}));
  EXPECT_TRUE(Is<uint32_t>(tj::arange(4, DType::u32), {4}, {0, 1, 2, 3}));
  EXPECT_TRUE(Is<int32_t>(tj::arange(0), {0}, {}));
}

TEST(EagerConstruct, DtypeAndTypeNames) {
  EXPECT_EQ(tj::dtype_name(DType::f32), "f32");
  EXPECT_EQ(tj::dtype_name(DType::f64), "f64");
  EXPECT_EQ(tj::dtype_name(DType::i32), "i32");
  EXPECT_EQ(tj::dtype_name(DType::u32), "u32");
  EXPECT_EQ(tj::dtype_name(DType::bool_), "bool");
  EXPECT_EQ(tj::type_str(DType::f32, {3, 4}), "f32[3,4]");
  EXPECT_EQ(tj::type_str(DType::i32, {}), "i32[]");
}

TEST(EagerConstruct, PrintsLikeJax) {  // lightly: format_test.cpp owns printing
  EXPECT_EQ(Array(1).str(), "1");
  EXPECT_EQ(A<float>({1, 2, 3}).str(), "[1. 2. 3.]");
  std::ostringstream os;
  os << A<bool>({true, false});
  EXPECT_EQ(os.str(), "[ True False]");
  EXPECT_EQ(Array().str(), "Array(uninitialized)");
}

TEST(EagerConstruct, CopiesShareTheValue) {
  Array a = A<float>({1, 2});
  Array b = a;
  EXPECT_EQ(b.impl(), a.impl());
  Array c = a + 1;  // a new value; a is unchanged (arrays are immutable)
  EXPECT_TRUE(Is<float>(a, {2}, {1, 2}));
  EXPECT_TRUE(Is<float>(c, {2}, {2, 3}));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic and comparisons, the same small values in every numeric dtype.

TYPED_TEST(EagerNumeric, AddSubMulDiv) {
  using T = TypeParam;
  Array a = A<T>({6, 8, 10, 12}, {2, 2}), b = A<T>({1, 2, 5, 4}, {2, 2});
  EXPECT_TRUE(Is<T>(a + b, {2, 2}, {7, 10, 15, 16}));
  EXPECT_TRUE(Is<T>(a - b, {2, 2}, {5, 6, 5, 8}));
  EXPECT_TRUE(Is<T>(a * b, {2, 2}, {6, 16, 50, 48}));
  // True division: integers divide in f32 (jnp.true_divide); exact here in every dtype.
  if constexpr (std::is_floating_point_v<T>) EXPECT_TRUE(Is<T>(a / b, {2, 2}, {6, 4, 2, 3}));
  else EXPECT_TRUE(Is<float>(a / b, {2, 2}, {6, 4, 2, 3}));
  EXPECT_FALSE((a + b).weak_type());
}

TYPED_TEST(EagerNumeric, ScalarOnEitherSideKeepsDtype) {
  using T = TypeParam;
  Array x = A<T>({6, 8, 10, 12});
  EXPECT_TRUE(Is<T>(x * 2, {4}, {12, 16, 20, 24}));
  EXPECT_TRUE(Is<T>(2 * x, {4}, {12, 16, 20, 24}));
  EXPECT_TRUE(Is<T>(x + 1, {4}, {7, 9, 11, 13}));
  EXPECT_TRUE(Is<T>(1 + x, {4}, {7, 9, 11, 13}));
  EXPECT_TRUE(Is<T>(x - 1, {4}, {5, 7, 9, 11}));
  EXPECT_TRUE(Is<T>(20 - x, {4}, {14, 12, 10, 8}));
  if constexpr (std::is_floating_point_v<T>) {
    EXPECT_TRUE(Is<T>(x / 2, {4}, {3, 4, 5, 6}));
    EXPECT_TRUE(Is<T>(24 / x, {4}, {4, 3, T(2.4), 2}));
  } else {  // true division in f32
    EXPECT_TRUE(Is<float>(x / 2, {4}, {3, 4, 5, 6}));
    EXPECT_TRUE(Is<float>(24 / x, {4}, {4, 3, 2.4f, 2}));
  }
  EXPECT_TRUE(Is<T>(x * 2u, {4}, {12, 16, 20, 24}));
  EXPECT_TRUE(Is<T>(x + true, {4}, {7, 9, 11, 13}));
  EXPECT_FALSE((x * 2).weak_type());
}

TYPED_TEST(EagerNumeric, Comparisons) {
  using T = TypeParam;
  Array a = A<T>({1, 2, 3}), b = A<T>({3, 2, 1});
  EXPECT_TRUE(Is<bool>(a == b, {3}, {false, true, false}));
  EXPECT_TRUE(Is<bool>(a != b, {3}, {true, false, true}));
  EXPECT_TRUE(Is<bool>(a < b, {3}, {true, false, false}));
  EXPECT_TRUE(Is<bool>(a <= b, {3}, {true, true, false}));
  EXPECT_TRUE(Is<bool>(a > b, {3}, {false, false, true}));
  EXPECT_TRUE(Is<bool>(a >= b, {3}, {false, true, true}));
  EXPECT_TRUE(Is<bool>(a >= 2, {3}, {false, true, true}));
  EXPECT_TRUE(Is<bool>(2 < a, {3}, {false, false, true}));
}

TYPED_TEST(EagerNumeric, MaximumMinimumWhere) {
  using T = TypeParam;
  Array a = A<T>({1, 5, 3}), b = A<T>({4, 2, 3});
  EXPECT_TRUE(Is<T>(tj::maximum(a, b), {3}, {4, 5, 3}));
  EXPECT_TRUE(Is<T>(tj::minimum(a, b), {3}, {1, 2, 3}));
  EXPECT_TRUE(Is<T>(tj::maximum(a, 2), {3}, {2, 5, 3}));
  EXPECT_TRUE(Is<T>(tj::where(a > b, a, b), {3}, {4, 5, 3}));
  EXPECT_TRUE(Is<T>(tj::where(A<bool>({true, false, true}), a, 0), {3}, {1, 0, 3}));
}

TYPED_TEST(EagerNumeric, ReductionsAndShapes) {
  using T = TypeParam;
  Array a = A<T>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(Is<T>(tj::sum(a), {}, {21}));
  EXPECT_TRUE(Is<T>(tj::sum(a, {0}), {3}, {5, 7, 9}));
  EXPECT_TRUE(Is<T>(tj::max(a, {1}), {2}, {3, 6}));
  EXPECT_TRUE(Is<T>(tj::transpose(a, {1, 0}), {3, 2}, {1, 4, 2, 5, 3, 6}));
  EXPECT_TRUE(Is<T>(tj::reshape(a, {3, 2}), {3, 2}, {1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(Is<T>(tj::concatenate({a, a}, 1), {2, 6}, {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
  EXPECT_TRUE(Is<T>(tj::slice(a, {0, 1}, {2, 2}), {2, 1}, {2, 5}));
  EXPECT_TRUE(Is<T>(tj::broadcast_to(a[1], {2, 3}), {2, 3}, {4, 5, 6, 4, 5, 6}));
  // [[1,2,3],[4,5,6]] @ [1,1,1] = [6, 15].
  EXPECT_TRUE(Is<T>(tj::matmul(a, A<T>({1, 1, 1})), {2}, {6, 15}));
  EXPECT_TRUE(Is<T>(tj::stop_gradient(a), {2, 3}, {1, 2, 3, 4, 5, 6}));
}

TYPED_TEST(EagerNumeric, ZeroDimAndSizeZero) {
  using T = TypeParam;
  EXPECT_TRUE(Is<T>(S<T>(2) + S<T>(3), {}, {5}));
  EXPECT_TRUE(Is<T>(S<T>(2) * A<T>({1, 2, 3}), {3}, {2, 4, 6}));
  EXPECT_TRUE(Is<bool>(S<T>(2) == S<T>(2), {}, {true}));
  Array e = A<T>({}, {0, 2});
  EXPECT_TRUE(Is<T>(e + 1, {0, 2}, {}));
  EXPECT_TRUE(Is<T>(e * A<T>({1, 2}), {0, 2}, {}));
  EXPECT_TRUE(Is<bool>(e < e, {0, 2}, {}));
  EXPECT_TRUE(Is<T>(tj::sum(e), {}, {0}));
  EXPECT_TRUE(Is<T>(tj::sum(e, {0}), {2}, {0, 0}));
  EXPECT_TRUE(Is<T>(tj::transpose(e, {1, 0}), {2, 0}, {}));
}

// ---------------------------------------------------------------------------------------------
// Float-only arithmetic.

TEST(EagerFloat, DivisionByZeroAndInexactQuotients) {
  EXPECT_TRUE(Is<float>(A<float>({1, -1, 0}) / 0.f, {3}, {kInf, -kInf, kNaN}));
  EXPECT_TRUE(Is<float>(A<float>({1}) / 3, {1}, {1.f / 3.f}));  // round to nearest
  EXPECT_TRUE(Is<double>(A<double>({1}) / 3, {1}, {1.0 / 3.0}));
  EXPECT_TRUE(Is<float>(A<float>({0.1f}) + 0.2f, {1}, {0.1f + 0.2f}));  // f32 addition
}

TEST(EagerFloat, NegationAndSignedZero) {
  Array a = -A<float>({1.5f, -2, 0});
  EXPECT_TRUE(Is<float>(a, {3}, {-1.5f, 2, 0}));
  EXPECT_TRUE(std::signbit(a.to_vector<float>()[2]));  // -(+0) is -0
  EXPECT_TRUE(Is<double>(-A<double>({0.25}), {1}, {-0.25}));
  EXPECT_TRUE(Is<float>(-Array(2.f), {}, {-2.f}));
}

TEST(EagerFloat, NaNComparisons) {
  Array n = A<float>({kNaN, 1});
  EXPECT_TRUE(Is<bool>(n == n, {2}, {false, true}));
  EXPECT_TRUE(Is<bool>(n != n, {2}, {true, false}));
  EXPECT_TRUE(Is<bool>(n < kInf, {2}, {false, true}));
  EXPECT_TRUE(Is<bool>(n >= -kInf, {2}, {false, true}));
}

// ---------------------------------------------------------------------------------------------
// Weak typing of C++ scalars.

TEST(EagerWeak, FloatScalarOnF32StaysF32) {
  Array x = A<float>({1, 3});
  EXPECT_TRUE(Is<float>(x * 0.5, {2}, {0.5f, 1.5f}));  // a double scalar does not widen x
  EXPECT_TRUE(Is<float>(x * 0.5f, {2}, {0.5f, 1.5f}));
  EXPECT_TRUE(Is<float>(1 - x, {2}, {0, -2}));
  EXPECT_TRUE(Is<float>(0.25 + x, {2}, {1.25f, 3.25f}));
}

TEST(EagerWeak, FloatScalarOnF64StaysF64) {
  Array x = A<double>({0.1});
  // The f32 scalar 2 converts exactly; 0.1 * 2 is exact in binary, so the f64 product is 0.2.
  EXPECT_TRUE(Is<double>(x * 2.f, {1}, {0.2}));
  EXPECT_TRUE(Is<double>(x + 0.5, {1}, {0.6}));  // 0.1 + 0.5 rounds to the double 0.6
}

TEST(EagerWeak, IntScalarOnI32StaysI32) {
  Array n = A<int32_t>({1, 2});
  EXPECT_TRUE(Is<int32_t>(n + 1, {2}, {2, 3}));
  EXPECT_TRUE(Is<int32_t>(n * -3, {2}, {-3, -6}));
  EXPECT_TRUE(Is<int32_t>(n + true, {2}, {2, 3}));  // bool scalar: lower kind, takes i32
  EXPECT_TRUE(Is<int32_t>(S<int32_t>(4) - 5, {}, {-1}));
}

TEST(EagerWeak, FloatScalarWithIntegerArrayGivesF32) {
  // As JAX: jnp.array([1, 2], int32) * 0.5 -> float32 [0.5, 1.].
  Array n = A<int32_t>({1, 2});
  EXPECT_TRUE(Is<float>(n * 0.5, {2}, {0.5f, 1.f}));
  EXPECT_TRUE(Is<float>(n + 1.5f, {2}, {2.5f, 3.5f}));
  EXPECT_TRUE(Is<float>(0.5f * A<uint32_t>({4}), {1}, {2.f}));
  EXPECT_TRUE(Is<bool>(n > 1.5f, {2}, {false, true}));
  // JAX's result_type: the join of i32 and a weak float is the weak float f*, so weakly typed.
  EXPECT_TRUE((n * 0.5).weak_type());
}

TEST(EagerWeak, ScalarsWithBoolArrays) {
  Array b = A<bool>({true, false});
  EXPECT_TRUE(Is<int32_t>(b + 1, {2}, {2, 1}));        // JAX: bool + int -> int32
  EXPECT_TRUE(Is<float>(b * 0.5f, {2}, {0.5f, 0.f}));  // bool * float -> float32
  EXPECT_TRUE(Is<bool>(b & true, {2}, {true, false}));
  EXPECT_TRUE(Is<bool>(b == false, {2}, {false, true}));
}

TEST(EagerWeak, TwoScalarsStayWeak) {
  Array p = Array(2) * Array(3);
  EXPECT_TRUE(Is<int32_t>(p, {}, {6}));
  EXPECT_TRUE(p.weak_type());
  Array q = Array(2) + Array(0.5f);  // int and float scalars: float
  EXPECT_TRUE(Is<float>(q, {}, {2.5f}));
  EXPECT_TRUE(q.weak_type());
  Array r = Array(1.5f) * S<float>(2);  // a strong operand makes the result strong
  EXPECT_FALSE(r.weak_type());
  EXPECT_TRUE(Is<float>(r, {}, {3.f}));
}

TEST(EagerWeak, StrongArraysOfDifferentDtypesThrowUnderStrictPromotion) {
  StrictPromotion strict;
  Array f = A<float>({1}), d = A<double>({1}), i = A<int32_t>({1}), u = A<uint32_t>({1}),
        b = A<bool>({true});
  EXPECT_THROW(f + d, tj::TypeError);
  EXPECT_THROW(i * u, tj::TypeError);
  EXPECT_THROW(f - i, tj::TypeError);
  EXPECT_THROW(i < f, tj::TypeError);
  EXPECT_THROW(b & i, tj::TypeError);
  EXPECT_THROW(tj::maximum(f, d), tj::TypeError);
  EXPECT_THROW(tj::where(b, f, i), tj::TypeError);
  EXPECT_THROW(tj::matmul(f, i), tj::TypeError);
  EXPECT_THROW(tj::concatenate({f, i}), tj::TypeError);
  // A strong 0-d array is not a weak scalar.
  EXPECT_THROW(f + S<double>(1), tj::TypeError);
}

// ---------------------------------------------------------------------------------------------
// NumPy broadcasting.

TEST(EagerBroadcast, ColumnPlusRow) {
  // [3,1] + [4] -> [3,4]: out[i,j] = col[i] + row[j].
  Array col = A<float>({0, 10, 20}, {3, 1}), row = A<float>({1, 2, 3, 4});
  EXPECT_TRUE(Is<float>(col + row, {3, 4}, {1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24}));
  EXPECT_TRUE(Is<float>(row + col, {3, 4}, {1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24}));
}

TEST(EagerBroadcast, ScalarWithMatrix) {
  Array m = A<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(Is<int32_t>(S<int32_t>(10) + m, {2, 3}, {11, 12, 13, 14, 15, 16}));
  EXPECT_TRUE(Is<int32_t>(m * S<int32_t>(-1), {2, 3}, {-1, -2, -3, -4, -5, -6}));
  EXPECT_TRUE(Is<int32_t>(A<int32_t>({100}, {1, 1}) - m, {2, 3}, {99, 98, 97, 96, 95, 94}));
}

TEST(EagerBroadcast, OuterProductAndRowwise) {
  // [2,1] * [1,3]: outer product of (1,2) and (1,10,100).
  Array a = A<double>({1, 2}, {2, 1}), b = A<double>({1, 10, 100}, {1, 3});
  EXPECT_TRUE(Is<double>(a * b, {2, 3}, {1, 10, 100, 2, 20, 200}));
  // [2,3] / [3]: each row divided by (1, 2, 4).
  Array m = A<float>({2, 4, 8, 1, 1, 1}, {2, 3});
  EXPECT_TRUE(Is<float>(m / A<float>({1, 2, 4}), {2, 3}, {2, 2, 2, 1, 0.5f, 0.25f}));
}

TEST(EagerBroadcast, RankThree) {
  // [2,1,3] + [4,1] -> [2,4,3]: out[i,j,k] = (3i + k) + 10j.
  Array a = tj::reshape(tj::arange(6), {2, 1, 3});
  Array b = A<int32_t>({0, 10, 20, 30}, {4, 1});
  std::vector<int32_t> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) want.push_back(3 * i + k + 10 * j);
  EXPECT_TRUE(Is<int32_t>(a + b, {2, 4, 3}, want));
}

TEST(EagerBroadcast, SizeZeroDimensions) {
  EXPECT_TRUE(Is<float>(A<float>({}, {0}) + A<float>({5}), {0}, {}));  // [0] + [1] -> [0]
  EXPECT_TRUE(Is<float>(A<float>({}, {2, 0}) * A<float>({1, 2}, {2, 1}), {2, 0}, {}));
  EXPECT_TRUE(Is<bool>(A<int32_t>({}, {0, 3}) == A<int32_t>({1, 2, 3}), {0, 3}, {}));
  EXPECT_THROW(A<float>({}, {0}) + A<float>({1, 2, 3}), tj::ShapeError);  // 0 vs 3
}

TEST(EagerBroadcast, ComparisonsAndWhere) {
  Array col = A<int32_t>({1, 2, 3}, {3, 1}), row = A<int32_t>({2, 3});
  EXPECT_TRUE(Is<bool>(col < row, {3, 2}, {true, true, false, true, false, false}));
  // where([3,1] cond, [2] a, scalar b) -> [3,2].
  EXPECT_TRUE(Is<int32_t>(tj::where(col >= 2, row, 0), {3, 2}, {0, 0, 2, 3, 2, 3}));
}

TEST(EagerBroadcast, BroadcastTo) {
  EXPECT_TRUE(Is<float>(tj::broadcast_to(A<float>({1, 2, 3}), {2, 3}), {2, 3}, {1, 2, 3, 1, 2, 3}));
  EXPECT_TRUE(
      Is<float>(tj::broadcast_to(A<float>({1, 2}, {2, 1}), {2, 3}), {2, 3}, {1, 1, 1, 2, 2, 2}));
  EXPECT_TRUE(Is<int32_t>(tj::broadcast_to(Array(7), {2, 2}), {2, 2}, {7, 7, 7, 7}));
  EXPECT_TRUE(Is<bool>(tj::broadcast_to(A<bool>({true}), {0}), {0}, {}));
  Array same = A<float>({1, 2});
  EXPECT_TRUE(Is<float>(tj::broadcast_to(same, {2}), {2}, {1, 2}));
  EXPECT_THROW(tj::broadcast_to(A<float>({1, 2, 3}), {4}), tj::ShapeError);
}

// ---------------------------------------------------------------------------------------------
// Integers: XLA's semantics where C++'s are undefined or differ.

TEST(EagerInt, I32Wraps) {
  Array big = A<int32_t>({kIntMax, kIntMin});
  EXPECT_TRUE(Is<int32_t>(big + 1, {2}, {kIntMin, kIntMin + 1}));
  EXPECT_TRUE(Is<int32_t>(big - 1, {2}, {kIntMax - 1, kIntMax}));
  // 65536^2 = 2^32 wraps to 0; 46341^2 = 2147488281 = 2^32 - 2147479015 wraps to -2147479015.
  EXPECT_TRUE(
      Is<int32_t>(A<int32_t>({65536, 46341}) * A<int32_t>({65536, 46341}), {2}, {0, -2147479015}));
  EXPECT_TRUE(Is<int32_t>(-A<int32_t>({kIntMin, 5}), {2}, {kIntMin, -5}));
  EXPECT_TRUE(Is<int32_t>(tj::sum(A<int32_t>({kIntMax, 2})), {}, {kIntMin + 1}));
}

TEST(EagerInt, U32Wraps) {
  Array u = A<uint32_t>({kUMax, 0, 0x80000000u});
  EXPECT_TRUE(Is<uint32_t>(u + 1u, {3}, {0, 1, 0x80000001u}));
  EXPECT_TRUE(Is<uint32_t>(u - 1, {3}, {kUMax - 1, kUMax, 0x7FFFFFFFu}));
  EXPECT_TRUE(Is<uint32_t>(u * 2, {3}, {kUMax - 1, 0, 0}));
  EXPECT_TRUE(Is<uint32_t>(-A<uint32_t>({1, 0}), {2}, {kUMax, 0}));
  EXPECT_TRUE(Is<uint32_t>(A<uint32_t>({kUMax}) + A<uint32_t>({kUMax}), {1}, {kUMax - 1}));
  EXPECT_TRUE(Is<bool>(A<uint32_t>({kUMax, 0}) > 1u, {2}, {true, false}));  // unsigned order
}

// The div primitive on integers (tj's `/` divides integers in f32; lax.div keeps them).
namespace {
Array int_div(const Array& a, const Array& b) { return tj::detail::bind1(tj::ir::Prim::kDiv, {a, b}); }
}  // namespace

TEST(EagerInt, DivisionTruncatesTowardZero) {
  Array a = A<int32_t>({7, -7, 7, -7, 1}), b = A<int32_t>({2, 2, -2, -2, 3});
  EXPECT_TRUE(Is<int32_t>(int_div(a, b), {5}, {3, -3, -3, 3, 0}));
  EXPECT_TRUE(Is<uint32_t>(int_div(A<uint32_t>({7, kUMax}), A<uint32_t>({2, 2})), {2}, {3, 0x7FFFFFFFu}));
  EXPECT_TRUE(Is<float>(a / b, {5}, {3.5f, -3.5f, -3.5f, 3.5f, 1 / 3.f}));
}

TEST(EagerInt, DivisionByZeroGivesAllOnes) {
  // XLA: x / 0 has every bit set (-1 signed, 0xFFFFFFFF unsigned); INT_MIN / -1 is INT_MIN.
  EXPECT_TRUE(Is<int32_t>(int_div(A<int32_t>({5, -5, 0}), A<int32_t>({0, 0, 0})), {3}, {-1, -1, -1}));
  EXPECT_TRUE(Is<uint32_t>(int_div(A<uint32_t>({5, 0}), A<uint32_t>({0, 0})), {2}, {kUMax, kUMax}));
  EXPECT_TRUE(Is<int32_t>(int_div(A<int32_t>({kIntMin}), A<int32_t>({-1})), {1}, {kIntMin}));
}

TEST(EagerInt, Bitwise) {
  Array a = A<int32_t>({0b1100, -1}), b = A<int32_t>({0b1010, 5});
  EXPECT_TRUE(Is<int32_t>(a & b, {2}, {0b1000, 5}));
  EXPECT_TRUE(Is<int32_t>(a | b, {2}, {0b1110, -1}));
  EXPECT_TRUE(Is<int32_t>(a ^ b, {2}, {0b0110, -6}));  // ~5 == -6
  Array u = A<uint32_t>({0xFFFF0000u});
  EXPECT_TRUE(Is<uint32_t>(u ^ 0x0F0F0F0Fu, {1}, {0xF0F00F0Fu}));
  EXPECT_TRUE(Is<uint32_t>(u & 0x00FFFF00u, {1}, {0x00FF0000u}));
  EXPECT_TRUE(Is<uint32_t>(u | 1u, {1}, {0xFFFF0001u}));
}

TEST(EagerInt, ShiftsInRange) {
  Array one = A<uint32_t>({1, 1, 1});
  EXPECT_TRUE(Is<uint32_t>(one << A<uint32_t>({0, 1, 31}), {3}, {1, 2, 0x80000000u}));
  // u32 >> is logical, i32 >> arithmetic.
  EXPECT_TRUE(Is<uint32_t>(A<uint32_t>({kUMax, 0x80000000u}) >> 28u, {2}, {15, 8}));
  EXPECT_TRUE(Is<int32_t>(A<int32_t>({-8, -1, 8}) >> 1, {3}, {-4, -1, 4}));
  EXPECT_TRUE(Is<int32_t>(A<int32_t>({1}) << 31, {1}, {kIntMin}));
  EXPECT_TRUE(Is<int32_t>(A<int32_t>({-1}) << 4, {1}, {-16}));
}

TEST(EagerInt, ShiftsByBitWidthOrMore) {
  // XLA: shift amounts are unsigned; >= 32 gives 0, or the sign for an arithmetic >>.
  EXPECT_TRUE(
      Is<uint32_t>(A<uint32_t>({1, kUMax, 5}) << A<uint32_t>({32, 33, kUMax}), {3}, {0, 0, 0}));
  EXPECT_TRUE(Is<uint32_t>(A<uint32_t>({kUMax, 1}) >> A<uint32_t>({32, 100}), {2}, {0, 0}));
  Array s = A<int32_t>({-8, 8, -8, 8});
  EXPECT_TRUE(Is<int32_t>(s >> A<int32_t>({32, 32, 100, -1}), {4}, {-1, 0, -1, 0}));
  EXPECT_TRUE(Is<int32_t>(s << A<int32_t>({32, 40, -1, 31}), {4}, {0, 0, 0, 0}));
}

TEST(EagerBool, LogicalOperators) {
  Array p = A<bool>({true, true, false, false}), q = A<bool>({true, false, true, false});
  EXPECT_TRUE(Is<bool>(p & q, {4}, {true, false, false, false}));
  EXPECT_TRUE(Is<bool>(p | q, {4}, {true, true, true, false}));
  EXPECT_TRUE(Is<bool>(p ^ q, {4}, {false, true, true, false}));
  EXPECT_TRUE(Is<bool>(p == q, {4}, {true, false, false, true}));
  EXPECT_TRUE(Is<bool>(p > q, {4}, {false, true, false, false}));  // false < true
}

TEST(EagerBool, MaxMinSumMeanOfBools) {
  Array p = A<bool>({true, false, true}), q = A<bool>({false, false, true});
  EXPECT_TRUE(Is<bool>(tj::maximum(p, q), {3}, {true, false, true}));   // or
  EXPECT_TRUE(Is<bool>(tj::minimum(p, q), {3}, {false, false, true}));  // and
  EXPECT_TRUE(Is<bool>(tj::max(p), {}, {true}));
  EXPECT_TRUE(Is<int32_t>(tj::sum(p), {}, {2}));  // counts, as jnp.sum
  EXPECT_TRUE(Is<float>(tj::mean(p), {}, {2.f / 3.f}));
  EXPECT_TRUE(Is<bool>(tj::where(p, q, true), {3}, {false, true, true}));
}

// ---------------------------------------------------------------------------------------------
// Elementwise maths. References from NumPy (float32 and float64).

TEST(EagerMath, ExpLogF32) {
  EXPECT_TRUE(Is<float>(tj::exp(A<float>({0, 1, -1, 2})), {4},
                        {1.f, 2.7182819f, 0.36787942f, 7.3890557f}, 4 * kTolF32));
  EXPECT_TRUE(Is<float>(tj::log(A<float>({1, 2, 0.5f, 0, -1})), {5},
                        {0.f, 0.69314718f, -0.69314718f, -kInf, kNaN}, kTolF32));
  EXPECT_TRUE(Is<float>(tj::exp(A<float>({-kInf, kInf})), {2}, {0, kInf}));
}

TEST(EagerMath, Log1pIsAccurateNearZero) {
  // log(1 + 1e-7f) would lose most digits; log1p keeps them: 9.9999994e-08 in f32.
  EXPECT_TRUE(Is<float>(tj::log1p(A<float>({0, 1e-7f})), {2}, {0, 9.9999994e-08f}, 1e-13));
  EXPECT_TRUE(Is<float>(tj::log1p(A<float>({1})), {1}, {0.69314718f}, kTolF32));
  EXPECT_TRUE(Is<double>(tj::log1p(A<double>({1e-10})), {1}, {9.999999999500001e-11}, 1e-24));
  EXPECT_TRUE(Is<float>(tj::log1p(A<float>({-1})), {1}, {-kInf}));
}

TEST(EagerMath, TrigAndTanh) {
  EXPECT_TRUE(
      Is<float>(tj::sin(A<float>({0, 0.5f, -1})), {3}, {0, 0.47942555f, -0.84147102f}, kTolF32));
  EXPECT_TRUE(
      Is<float>(tj::cos(A<float>({0, 0.5f, -1})), {3}, {1, 0.87758255f, 0.54030228f}, kTolF32));
  EXPECT_TRUE(Is<float>(tj::tanh(A<float>({0, 1, -20, 0.5f})), {4},
                        {0, 0.76159418f, -1, 0.46211720f}, kTolF32));
  EXPECT_TRUE(Is<double>(tj::sin(A<double>({1})), {1}, {0.8414709848078965}, kTolF64));
  EXPECT_TRUE(Is<double>(tj::tanh(A<double>({0.5})), {1}, {0.46211715726000974}, kTolF64));
}

TEST(EagerMath, SqrtF32AndF64) {
  EXPECT_TRUE(Is<float>(tj::sqrt(A<float>({4, 0.25f, 0, -1})), {4}, {2, 0.5f, 0, kNaN}));
  EXPECT_TRUE(Is<float>(tj::sqrt(A<float>({2})), {1}, {1.41421354f}, kTolF32));
  EXPECT_TRUE(Is<double>(tj::exp(A<double>({1})), {1}, {2.718281828459045}, kTolF64));
  EXPECT_TRUE(Is<double>(tj::log(A<double>({10})), {1}, {2.3025850929940455}, kTolF64));
}

TEST(EagerMath, TranscendentalsPromoteIntegersToF32) {
  // As jnp: exp of an int32 array is float32.
  EXPECT_TRUE(Is<float>(tj::exp(A<int32_t>({0, 1})), {2}, {1.f, 2.7182819f}, 4 * kTolF32));
  EXPECT_TRUE(Is<float>(tj::sqrt(A<int32_t>({4, 9})), {2}, {2, 3}));
  EXPECT_TRUE(Is<float>(tj::log(A<uint32_t>({1})), {1}, {0}));
  EXPECT_TRUE(Is<float>(tj::cos(A<bool>({false})), {1}, {1}));
  EXPECT_TRUE(Is<float>(tj::exp(Array(0)), {}, {1}));  // a weak int scalar too
}

TEST(EagerMath, AbsAndSign) {
  EXPECT_TRUE(Is<float>(tj::abs(A<float>({-1.5f, 0, 2, -kInf})), {4}, {1.5f, 0, 2, kInf}));
  EXPECT_TRUE(Is<double>(tj::abs(A<double>({-0.5})), {1}, {0.5}));
  EXPECT_TRUE(Is<int32_t>(tj::abs(A<int32_t>({-3, 3, kIntMin})), {3}, {3, 3, kIntMin}));  // wraps
  EXPECT_TRUE(Is<uint32_t>(tj::abs(A<uint32_t>({kUMax})), {1}, {kUMax}));
  EXPECT_TRUE(Is<float>(tj::sign(A<float>({-2, 0, 3, kNaN})), {4}, {-1, 0, 1, kNaN}));
  EXPECT_TRUE(Is<int32_t>(tj::sign(A<int32_t>({-5, 0, 7})), {3}, {-1, 0, 1}));
  EXPECT_TRUE(Is<uint32_t>(tj::sign(A<uint32_t>({0, 5})), {2}, {0, 1}));
  EXPECT_TRUE(Is<double>(tj::sign(A<double>({-0.5})), {1}, {-1}));
}

TEST(EagerMath, Square) {
  EXPECT_TRUE(Is<float>(tj::square(A<float>({-3, 0.5f})), {2}, {9, 0.25f}));
  EXPECT_TRUE(Is<int32_t>(tj::square(A<int32_t>({-4, 46341})), {2}, {16, -2147479015}));  // wraps
  EXPECT_TRUE(Is<uint32_t>(tj::square(A<uint32_t>({7})), {1}, {49}));
}

TEST(EagerMath, Pow) {
  EXPECT_TRUE(Is<float>(tj::pow(A<float>({2, 4, 9, 0}), A<float>({3, 0.5f, -0.5f, 0})), {4},
                        {8, 2, 1.f / 3.f, 1}, kTolF32));
  EXPECT_TRUE(Is<float>(tj::pow(A<float>({3, -2}), 2), {2}, {9, 4}));
  EXPECT_TRUE(Is<float>(tj::pow(2, A<float>({-1, 10})), {2}, {0.5f, 1024}));
  EXPECT_TRUE(Is<float>(tj::pow(A<float>({-8}), 1.f / 3), {1}, {kNaN}));  // negative base
  EXPECT_TRUE(Is<double>(tj::pow(A<double>({2}), 0.5), {1}, {1.4142135623730951}, kTolF64));
  // Integer operands: the values are exact whatever the result dtype.
  EXPECT_EQ(tj::pow(A<int32_t>({2, 3}), A<int32_t>({3, 2})).to_vector<int>(),
            (std::vector<int>{8, 9}));
}

TEST(EagerMath, PowOfIntegersStaysInteger) {
  // jnp.power(int32, int32) is int32, computed exactly: [2,3] ** [3,2] = [8, 9].
  EXPECT_TRUE(Is<int32_t>(tj::pow(A<int32_t>({2, 3}), A<int32_t>({3, 2})), {2}, {8, 9}));
  // Negative exponents truncate 1 / a^|b|: 1 for 1, +-1 for -1 (odd, even), 0 otherwise; x^0 = 1.
  // 3^21 = 10460353203 wraps mod 2^32 to 1870418611, and 2^31 to INT_MIN, as multiplication does.
  Array base = A<int32_t>({1, -1, -1, 2, 0, -3, 0, 5, 3, 2, -2});
  Array expo = A<int32_t>({-5, -3, -2, -1, -1, -2, 0, 0, 21, 31, 3});
  const std::vector<int32_t> want = {1, -1, 1, 0, 0, 0, 1, 1, 1870418611, INT32_MIN, -8};
  EXPECT_TRUE(Is<int32_t>(tj::pow(base, expo), {11}, want));
  auto jitted = tj::jit([](const Array& a, const Array& b) { return tj::pow(a, b); });
  EXPECT_EQ(jitted(base, expo).dtype(), DType::i32);
  EXPECT_EQ(jitted(base, expo).to_vector<int32_t>(), want);
  // u32 (2^31 fits), a weak C++ exponent keeps i32, bools count as i32.
  EXPECT_TRUE(Is<uint32_t>(tj::pow(A<uint32_t>({2, 7}), A<uint32_t>({31, 2})), {2}, {2147483648u, 49}));
  EXPECT_EQ(jitted(A<uint32_t>({2, 7}), A<uint32_t>({31, 2})).to_vector<uint32_t>(),
            (std::vector<uint32_t>{2147483648u, 49}));
  EXPECT_TRUE(Is<int32_t>(tj::pow(A<int32_t>({-3, 4}), 3), {2}, {-27, 64}));
  EXPECT_TRUE(Is<int32_t>(tj::pow(A<bool>({true, false}), A<bool>({false, true})), {2}, {1, 0}));
}

TEST(EagerMath, MaximumMinimumPropagateNaN) {
  Array a = A<float>({1, kNaN, 3, kNaN}), b = A<float>({kNaN, 2, 1, kNaN});
  EXPECT_TRUE(Is<float>(tj::maximum(a, b), {4}, {kNaN, kNaN, 3, kNaN}));
  EXPECT_TRUE(Is<float>(tj::minimum(a, b), {4}, {kNaN, kNaN, 1, kNaN}));
  EXPECT_TRUE(Is<double>(tj::maximum(A<double>({-kInf, 2}), 0), {2}, {0, 2}));
  EXPECT_TRUE(Is<int32_t>(tj::minimum(A<int32_t>({kIntMin, 4}), -3), {2}, {kIntMin, -3}));
  EXPECT_TRUE(Is<uint32_t>(tj::maximum(A<uint32_t>({kUMax, 4}), 5u), {2}, {kUMax, 5}));
}

TEST(EagerMath, WhereSelectsWithoutPropagating) {
  Array c = A<bool>({true, false, true});
  EXPECT_TRUE(
      Is<float>(tj::where(c, A<float>({1, kNaN, 3}), A<float>({kNaN, 20, 30})), {3}, {1, 20, 3}));
  // A non-bool condition means != 0, as jnp.where.
  EXPECT_TRUE(Is<float>(tj::where(A<int32_t>({0, 2, -1}), 1.f, 0.f), {3}, {0, 1, 1}));
  EXPECT_TRUE(Is<double>(tj::where(Array(false), A<double>({1, 2}), 5), {2}, {5, 5}));
  EXPECT_TRUE(Is<int32_t>(tj::where(S<bool>(true), S<int32_t>(1), S<int32_t>(2)), {}, {1}));
}

TEST(EagerMath, ElementwiseOnZeroDimAndSizeZero) {
  EXPECT_TRUE(Is<float>(tj::exp(S<float>(0)), {}, {1}));
  EXPECT_TRUE(Is<float>(tj::sqrt(A<float>({}, {0, 2})), {0, 2}, {}));
  EXPECT_TRUE(Is<int32_t>(tj::abs(A<int32_t>({}, {0})), {0}, {}));
  EXPECT_TRUE(Is<float>(tj::maximum(A<float>({}, {3, 0}), 1.f), {3, 0}, {}));
}

// ---------------------------------------------------------------------------------------------
// Reductions.

TEST(EagerReduce, SumOverAxes) {
  Array a = A<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(Is<float>(tj::sum(a), {}, {21}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {0}), {3}, {5, 7, 9}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {1}), {2}, {6, 15}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {-1}), {2}, {6, 15}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {-2}), {3}, {5, 7, 9}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {1, 0}), {}, {21}));
  EXPECT_TRUE(Is<float>(tj::sum(a, {}), {2, 3}, {1, 2, 3, 4, 5, 6}));  // no axes: identity
}

TEST(EagerReduce, SumRankThreeSeveralAxes) {
  // x[i,j,k] = 12i + 4j + k over [2,3,4]. Summing over i and k: 8 terms per j:
  // 32j + 12*(0+1)*4 + (0+1+2+3)*2 = 32j + 60.
  Array x = tj::reshape(tj::arange(24), {2, 3, 4});
  EXPECT_TRUE(Is<int32_t>(tj::sum(x, {0, 2}), {3}, {60, 92, 124}));
  EXPECT_TRUE(Is<int32_t>(tj::sum(x, {-1, 0}), {3}, {60, 92, 124}));
  // The max over i and k is at i = 1, k = 3: 15 + 4j.
  EXPECT_TRUE(Is<int32_t>(tj::max(x, {2, -3}), {3}, {15, 19, 23}));
  EXPECT_TRUE(Is<int32_t>(tj::sum(x), {}, {276}));  // 0 + ... + 23 = 23*24/2
}

TEST(EagerReduce, SumOfZeroDimAndSizeZero) {
  EXPECT_TRUE(Is<double>(tj::sum(S<double>(2.5)), {}, {2.5}));
  EXPECT_TRUE(Is<float>(tj::sum(A<float>({}, {0})), {}, {0}));
  EXPECT_TRUE(Is<uint32_t>(tj::sum(A<uint32_t>({}, {0, 3}), {0}), {3}, {0, 0, 0}));
  EXPECT_TRUE(Is<uint32_t>(tj::sum(A<uint32_t>({}, {0, 3}), {1}), {0}, {}));
}

TEST(EagerReduce, Mean) {
  Array a = A<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(Is<float>(tj::mean(a), {}, {3.5f}));
  EXPECT_TRUE(Is<float>(tj::mean(a, {0}), {3}, {2.5f, 3.5f, 4.5f}));
  EXPECT_TRUE(Is<float>(tj::mean(a, {-1}), {2}, {2, 5}));
  EXPECT_TRUE(Is<double>(tj::mean(A<double>({1, 2, 3, 4}, {2, 2}), {1}), {2}, {1.5, 3.5}));
  EXPECT_TRUE(Is<float>(tj::mean(A<int32_t>({1, 2})), {}, {1.5f}));  // integers: f32 mean
  EXPECT_TRUE(Is<float>(tj::mean(A<float>({}, {0})), {}, {kNaN}));   // 0 / 0, as NumPy
}

TEST(EagerReduce, Max) {
  Array a = A<float>({1, 6, 3, 4, 5, 2}, {2, 3});
  EXPECT_TRUE(Is<float>(tj::max(a), {}, {6}));
  EXPECT_TRUE(Is<float>(tj::max(a, {0}), {3}, {4, 6, 3}));
  EXPECT_TRUE(Is<float>(tj::max(a, {-1}), {2}, {6, 5}));
  EXPECT_TRUE(Is<float>(tj::max(A<float>({-kInf, -kInf})), {}, {-kInf}));
  EXPECT_TRUE(Is<int32_t>(tj::max(A<int32_t>({-5, -2, kIntMin})), {}, {-2}));
  EXPECT_TRUE(Is<uint32_t>(tj::max(A<uint32_t>({3, kUMax, 0})), {}, {kUMax}));
  EXPECT_TRUE(Is<int32_t>(tj::max(S<int32_t>(-4)), {}, {-4}));
  EXPECT_TRUE(Is<float>(tj::max(A<float>({}, {0, 3}), {1}), {0}, {}));  // nothing reduced away
  EXPECT_TRUE(Is<float>(tj::max(a, {}), {2, 3}, {1, 6, 3, 4, 5, 2}));   // no axes: identity
}

TEST(EagerReduce, MaxPropagatesNaN) {
  EXPECT_TRUE(Is<float>(tj::max(A<float>({1, kNaN, 3})), {}, {kNaN}));
  EXPECT_TRUE(Is<float>(tj::max(A<float>({kNaN, 1, 2, 3}, {2, 2}), {1}), {2}, {kNaN, 3}));
  EXPECT_TRUE(Is<double>(tj::max(A<double>({1, 2, 3, kNaN}, {2, 2}), {0}), {2}, {3, kNaN}));
}

// ---------------------------------------------------------------------------------------------
// Shapes.

TEST(EagerShape, Reshape) {
  Array a = tj::arange(6, DType::f32);
  EXPECT_TRUE(Is<float>(tj::reshape(a, {2, 3}), {2, 3}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(Is<float>(tj::reshape(a, {3, -1}), {3, 2}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(Is<float>(tj::reshape(a, {-1, 1, 2}), {3, 1, 2}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(Is<float>(tj::reshape(tj::reshape(a, {2, 3}), {-1}), {6}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(Is<int32_t>(tj::reshape(A<int32_t>({5}, {1, 1}), {}), {}, {5}));
  EXPECT_TRUE(Is<int32_t>(tj::reshape(Array(5), {1, 1}), {1, 1}, {5}));
  EXPECT_TRUE(Is<float>(tj::reshape(A<float>({}, {0, 3}), {-1}), {0}, {}));
  EXPECT_TRUE(Is<float>(tj::reshape(A<float>({}, {0, 3}), {3, 0}), {3, 0}, {}));
}

TEST(EagerShape, Transpose) {
  Array a = tj::reshape(tj::arange(6), {2, 3});  // [[0,1,2],[3,4,5]]
  EXPECT_TRUE(Is<int32_t>(tj::transpose(a, {1, 0}), {3, 2}, {0, 3, 1, 4, 2, 5}));
  EXPECT_TRUE(Is<int32_t>(tj::transpose(a, {-1, -2}), {3, 2}, {0, 3, 1, 4, 2, 5}));
  EXPECT_TRUE(Is<int32_t>(tj::transpose(a, {0, 1}), {2, 3}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(Is<float>(tj::transpose(S<float>(2), {}), {}, {2}));
}

TEST(EagerShape, TransposeRankThree) {
  // out[k,i,j] = x[i,j,k] = 12i + 4j + k, for perm (2, 0, 1) of [2,3,4].
  Array x = tj::reshape(tj::arange(24), {2, 3, 4});
  std::vector<int32_t> want;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(12 * i + 4 * j + k);
  EXPECT_TRUE(Is<int32_t>(tj::transpose(x, {2, 0, 1}), {4, 2, 3}, want));
}

TEST(EagerShape, Slice) {
  Array a = tj::reshape(tj::arange(12), {3, 4});  // rows 0..3, 4..7, 8..11
  EXPECT_TRUE(Is<int32_t>(tj::slice(a, {1, 1}, {3, 3}), {2, 2}, {5, 6, 9, 10}));
  EXPECT_TRUE(Is<int32_t>(tj::slice(a, {0, 3}, {3, 4}), {3, 1}, {3, 7, 11}));
  EXPECT_TRUE(Is<int32_t>(tj::slice(a, {1, 0}, {1, 4}), {0, 4}, {}));  // empty
  EXPECT_TRUE(
      Is<int32_t>(tj::slice(a, {0, 0}, {3, 4}), {3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_TRUE(Is<double>(tj::slice(A<double>({1, 2, 3, 4, 5, 6}), {2}, {5}), {3}, {3, 4, 5}));
  EXPECT_TRUE(Is<float>(tj::slice(S<float>(1), {}, {}), {}, {1}));
}

TEST(EagerShape, Concatenate) {
  Array a = A<float>({1, 2, 3, 4}, {2, 2}), b = A<float>({5, 6}, {1, 2});
  EXPECT_TRUE(Is<float>(tj::concatenate({a, b}), {3, 2}, {1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(
      Is<float>(tj::concatenate({a, tj::transpose(b, {1, 0})}, 1), {2, 3}, {1, 2, 5, 3, 4, 6}));
  EXPECT_TRUE(
      Is<float>(tj::concatenate({a, tj::transpose(b, {1, 0})}, -1), {2, 3}, {1, 2, 5, 3, 4, 6}));
  EXPECT_TRUE(Is<int32_t>(tj::concatenate({A<int32_t>({1}), A<int32_t>({2, 3}), A<int32_t>({4})}),
                          {4}, {1, 2, 3, 4}));
  EXPECT_TRUE(Is<float>(tj::concatenate({A<float>({}, {0, 2}), b}), {1, 2}, {5, 6}));
  EXPECT_TRUE(Is<bool>(tj::concatenate({A<bool>({true}), A<bool>({false})}), {2}, {true, false}));
  EXPECT_TRUE(Is<float>(tj::concatenate({b}), {1, 2}, {5, 6}));
  EXPECT_TRUE(Is<float>(tj::concatenate({A<float>({}, {2, 0}), a, A<float>({}, {2, 0})}, 1), {2, 2},
                        {1, 2, 3, 4}));
}

TEST(EagerShape, MatmulTwoD) {
  // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]]:
  // [1*7+2*9+3*11, 1*8+2*10+3*12; 4*7+5*9+6*11, 4*8+5*10+6*12] = [58, 64; 139, 154].
  Array a = A<float>({1, 2, 3, 4, 5, 6}, {2, 3}), b = A<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  EXPECT_TRUE(Is<float>(tj::matmul(a, b), {2, 2}, {58, 64, 139, 154}));
  // b @ a: [3,2] @ [2,3] -> [3,3]; row r of b is (b0, b1): b0*(1,2,3) + b1*(4,5,6).
  EXPECT_TRUE(Is<float>(tj::matmul(b, a), {3, 3}, {39, 54, 69, 49, 68, 87, 59, 82, 105}));
  EXPECT_TRUE(Is<int32_t>(tj::matmul(A<int32_t>({1, -1}, {1, 2}), A<int32_t>({3, 5}, {2, 1})),
                          {1, 1}, {-2}));
  EXPECT_TRUE(Is<double>(tj::matmul(A<double>({0.5, 0.25}, {1, 2}), A<double>({2, 4}, {2, 1})),
                         {1, 1}, {2}));
}

TEST(EagerShape, MatmulOneD) {
  Array m = A<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(Is<float>(tj::matmul(A<float>({1, 2, 3}), A<float>({4, 5, 6})), {}, {32}));
  // [1,2] @ [[1,2,3],[4,5,6]] = (1+8, 2+10, 3+12).
  EXPECT_TRUE(Is<float>(tj::matmul(A<float>({1, 2}), m), {3}, {9, 12, 15}));
  // [[1,2,3],[4,5,6]] @ [1,0,-1] = (1-3, 4-6).
  EXPECT_TRUE(Is<float>(tj::matmul(m, A<float>({1, 0, -1})), {2}, {-2, -2}));
}

TEST(EagerShape, MatmulEdgeCases) {
  // A zero-length contraction gives zeros; zero-size outer dimensions give empty results.
  EXPECT_TRUE(Is<float>(tj::matmul(A<float>({}, {2, 0}), A<float>({}, {0, 3})), {2, 3},
                        {0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(Is<float>(tj::matmul(A<float>({}, {0, 2}), A<float>({1, 2}, {2, 1})), {0, 1}, {}));
  // u32 products and sums wrap: 0x80000000 * 2 + 1 * 1 = 1.
  EXPECT_TRUE(
      Is<uint32_t>(tj::matmul(A<uint32_t>({0x80000000u, 1}), A<uint32_t>({2, 1})), {}, {1}));
  // 0-d operands are errors, as in NumPy (errors_test.cpp checks the message).
  EXPECT_THROW(tj::matmul(A<float>({1}), Array(2.f)), tj::ShapeError);
}

TEST(EagerIndex, AxisZeroWithNegativeIndices) {
  Array a = tj::reshape(tj::arange(6), {3, 2});  // rows (0,1), (2,3), (4,5)
  EXPECT_TRUE(Is<int32_t>(a[0], {2}, {0, 1}));
  EXPECT_TRUE(Is<int32_t>(a[2], {2}, {4, 5}));
  EXPECT_TRUE(Is<int32_t>(a[-1], {2}, {4, 5}));
  EXPECT_TRUE(Is<int32_t>(a[-3], {2}, {0, 1}));
  EXPECT_TRUE(Is<int32_t>(a[1][-1], {}, {3}));
  EXPECT_TRUE(Is<float>(A<float>({7, 8, 9})[-2], {}, {8}));
  EXPECT_TRUE(Is<float>(A<float>({}, {2, 0})[1], {0}, {}));
  EXPECT_THROW(a[3], tj::IndexError);
  EXPECT_THROW(a[-4], tj::IndexError);
}

// ---------------------------------------------------------------------------------------------
// Conversions.

TEST(EagerConvert, FloatToIntTruncatesTowardZero) {
  Array x = A<float>({2.7f, -2.7f, 0.5f, -0.5f, 3, -0.f});
  EXPECT_TRUE(Is<int32_t>(tj::astype(x, DType::i32), {6}, {2, -2, 0, 0, 3, 0}));
  EXPECT_TRUE(Is<uint32_t>(tj::astype(A<float>({2.7f, 0.5f}), DType::u32), {2}, {2, 0}));
  EXPECT_TRUE(Is<int32_t>(tj::astype(A<double>({-1e9 - 0.5, 2147483647.9}), DType::i32), {2},
                          {-1000000000, kIntMax}));
}

TEST(EagerConvert, FloatToIntSaturatesAndMapsNaNToZero) {
  Array x = A<float>({3e9f, -3e9f, kInf, -kInf, kNaN});
  EXPECT_TRUE(Is<int32_t>(tj::astype(x, DType::i32), {5}, {kIntMax, kIntMin, kIntMax, kIntMin, 0}));
  // 3e9 is exact in f32 (3e9 = 11718750 * 2^8) and fits in u32; negatives clamp to 0.
  EXPECT_TRUE(Is<uint32_t>(tj::astype(x, DType::u32), {5}, {3000000000u, 0, kUMax, 0, 0}));
  EXPECT_TRUE(Is<uint32_t>(tj::astype(A<float>({5e9f, -1.5f}), DType::u32), {2}, {kUMax, 0}));
  EXPECT_TRUE(Is<int32_t>(tj::astype(A<double>({1e10, -2147483648.5, 2147483648.0}), DType::i32),
                          {3}, {kIntMax, kIntMin, kIntMax}));
}

TEST(EagerConvert, IntegerConversions) {
  EXPECT_TRUE(Is<uint32_t>(tj::astype(A<int32_t>({-1, 5}), DType::u32), {2}, {kUMax, 5}));
  EXPECT_TRUE(
      Is<int32_t>(tj::astype(A<uint32_t>({kUMax, 0x80000000u}), DType::i32), {2}, {-1, kIntMin}));
  // 2^24 + 1 is not an f32: it rounds to even, 2^24.
  EXPECT_TRUE(
      Is<float>(tj::astype(A<int32_t>({16777217, -3}), DType::f32), {2}, {16777216.f, -3.f}));
  EXPECT_TRUE(Is<double>(tj::astype(A<uint32_t>({kUMax}), DType::f64), {1}, {4294967295.0}));
}

TEST(EagerConvert, FloatConversions) {
  EXPECT_TRUE(Is<double>(tj::astype(A<float>({0.1f}), DType::f64), {1},
                         {0.10000000149011612}));  // the f32 nearest 0.1, exactly
  EXPECT_TRUE(Is<float>(tj::astype(A<double>({0.1, 1e300}), DType::f32), {2}, {0.1f, kInf}));
}

TEST(EagerConvert, ToAndFromBool) {
  EXPECT_TRUE(Is<bool>(tj::astype(A<float>({0, -0.f, 0.5f, kNaN}), DType::bool_), {4},
                       {false, false, true, true}));
  EXPECT_TRUE(Is<bool>(tj::astype(A<int32_t>({0, -3}), DType::bool_), {2}, {false, true}));
  EXPECT_TRUE(Is<float>(tj::astype(A<bool>({true, false}), DType::f32), {2}, {1, 0}));
  EXPECT_TRUE(Is<uint32_t>(tj::astype(A<bool>({true}), DType::u32), {1}, {1}));
}

TEST(EagerConvert, SameDtypeAndWeakScalars) {
  Array x = A<float>({1.5f});
  EXPECT_TRUE(Is<float>(tj::astype(x, DType::f32), {1}, {1.5f}));
  Array w = tj::astype(Array(3), DType::i32);  // makes a weak scalar strong
  EXPECT_TRUE(Is<int32_t>(w, {}, {3}));
  EXPECT_FALSE(w.weak_type());
  {
    StrictPromotion strict;
    EXPECT_THROW(x + tj::astype(Array(1.0), DType::f64), tj::TypeError);
  }
  EXPECT_TRUE(Is<int32_t>(tj::astype(A<float>({}, {0}), DType::i32), {0}, {}));
}

TEST(EagerConvert, Bitcast) {
  EXPECT_TRUE(Is<float>(tj::bitcast(A<uint32_t>({0x3F800000u, 0xC0000000u}), DType::f32), {2},
                        {1.f, -2.f}));
  EXPECT_TRUE(Is<uint32_t>(tj::bitcast(A<float>({1.f, -2.f}), DType::u32), {2},
                           {0x3F800000u, 0xC0000000u}));
  EXPECT_TRUE(Is<int32_t>(tj::bitcast(A<float>({-0.f}), DType::i32), {1}, {kIntMin}));
  EXPECT_TRUE(Is<uint32_t>(tj::bitcast(A<int32_t>({-1}, {1, 1}), DType::u32), {1, 1}, {kUMax}));
  EXPECT_TRUE(Is<uint32_t>(tj::bitcast(Array(1.f), DType::u32), {}, {0x3F800000u}));
  // A round trip restores every bit, NaN payload included.
  Array bits = A<uint32_t>({0x7FC00001u, 0x00000001u});
  EXPECT_TRUE(Is<uint32_t>(tj::bitcast(tj::bitcast(bits, DType::f32), DType::u32), {2},
                           {0x7FC00001u, 0x00000001u}));
}

TEST(EagerConvert, StopGradientIsTheIdentity) {
  EXPECT_TRUE(Is<float>(tj::stop_gradient(A<float>({1, -2})), {2}, {1, -2}));
  EXPECT_TRUE(Is<int32_t>(tj::stop_gradient(A<int32_t>({3})), {1}, {3}));
  EXPECT_TRUE(Is<bool>(tj::stop_gradient(S<bool>(true)), {}, {true}));
}

// ---------------------------------------------------------------------------------------------
// Reading values back.

TEST(EagerRead, ItemConvertsTheSingleElement) {
  EXPECT_EQ(Array(2.5f).item<float>(), 2.5f);
  EXPECT_EQ(A<float>({2.5f}, {1, 1}).item<double>(), 2.5);  // any size-1 shape
  EXPECT_EQ(A<int32_t>({-3}).item<float>(), -3.f);
  EXPECT_EQ(S<uint32_t>(kUMax).item<uint32_t>(), kUMax);
  EXPECT_EQ(A<bool>({true}).item<int>(), 1);
  EXPECT_TRUE(A<float>({0.5f}).item<bool>());
  EXPECT_THROW(A<float>({1, 2}).item<float>(), tj::ShapeError);
  EXPECT_THROW(A<float>({}, {0}).item<float>(), tj::ShapeError);
}

TEST(EagerRead, ToVectorConvertsEveryElement) {
  Array a = A<float>({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(a.to_vector<int>(), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(A<bool>({true, false}).to_vector<float>(), (std::vector<float>{1, 0}));
  EXPECT_EQ(A<int32_t>({0, 7}).to_vector<bool>(), (std::vector<bool>{false, true}));
  EXPECT_EQ(Array(4).to_vector<int>(), (std::vector<int>{4}));
}

TEST(EagerRead, ItemAndToVectorOfWiderIntegers) {
  // item<T>/to_vector<T> accept any arithmetic T but write elements of dtype_of<T>() (i32 for
  // int64_t) into T-sized storage: -1 reads back as 4294967295 and vectors come out scrambled.
  EXPECT_EQ(A<int32_t>({-1}).item<int64_t>(), -1);
  EXPECT_EQ(A<uint32_t>({kUMax}).item<uint64_t>(), uint64_t{kUMax});
  EXPECT_EQ(A<int32_t>({1, -2}).to_vector<int64_t>(), (std::vector<int64_t>{1, -2}));
}

TEST(EagerRead, OperatorBool) {
  EXPECT_TRUE(static_cast<bool>(Array(true)));
  EXPECT_FALSE(static_cast<bool>(A<float>({0.f})));
  EXPECT_TRUE(static_cast<bool>(Array(2)));
  EXPECT_FALSE(static_cast<bool>(A<int32_t>({0}, {1, 1})));
  Array x = A<float>({3});
  bool taken = false;
  if (x > 2) taken = true;  // an `if` on a concrete array is fine outside a trace
  EXPECT_TRUE(taken);
  EXPECT_TRUE(static_cast<bool>(tj::sum(x) == 3));
  EXPECT_THROW(static_cast<bool>(A<bool>({true, true})), tj::ShapeError);
}

TEST(EagerRead, EmptyArrayHandle) {
  Array e;
  EXPECT_FALSE(e.valid());
  EXPECT_FALSE(e.is_tracer());
  EXPECT_THROW(e.shape(), tj::Error);
  EXPECT_THROW(e + 1, tj::Error);
  EXPECT_THROW(-e, tj::Error);
  EXPECT_THROW(tj::exp(e), tj::Error);
}

// Regression tests for the bugs tracejit-difftest (tools/difftest) found, one test per bug, each
// written against the public API with its expected values derived by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

// Found as programs 1365 and 1928 of `--seed 1`: tj::sqrt and tj::log1p of a weakly typed i32 (a
// C++ int) gave a weak f32 eagerly but a strong f32 under a trace, because the traced conversion
// dropped the weak bit. The dtypes of later promotions then differed: below, eager f promoted to
// f64 while the traced f raised a TypeError (f32 + f64).
TEST(DifftestRegressions, WeakIntegerStaysWeakThroughTracedFloatPromotion) {
  const Array n(2);  // weak i32
  auto unary = [](const Array& a) { return tj::log1p(a); };
  EXPECT_TRUE(unary(n).weak_type());
  EXPECT_TRUE(tj::jit(unary)(n).weak_type());

  auto f = [](const Array& a, const Array& x) { return tj::sqrt(a) + x; };
  const Array x = tj::array({1.0, 2.0});
  // sqrt(2) rounded to f32 (sqrt is correctly rounded), then widened by the strong f64 operand.
  const double l = static_cast<double>(std::sqrt(2.0f));
  for (const Array& r : {f(n, x), tj::jit(f)(n, x)}) {
    ASSERT_EQ(r.dtype(), DType::f64);
    EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{l + 1.0, l + 2.0}));
  }
}

// Found as program 170 of `--seed 3 --max-eqns 30`: reduce_max over +0.0 and -0.0 gave -0.0
// eagerly (a tie went to the later element) but +0.0 compiled (IEEE maximum, in any order).
// The maximum of {+0, -0} is +0 in IEEE 754-2019, whatever the order.
TEST(DifftestRegressions, ReduceMaxOfSignedZerosIsPositiveZero) {
  const Array x = tj::array({0.f, -0.f, -0.f, 0.f, -0.f, -1.f}, {3, 2});
  auto all = [](const Array& a) { return tj::max(a); };
  auto rows = [](const Array& a) { return tj::max(a, {1}); };
  for (const Array& r : {all(x), tj::jit(all)(x)}) {
    EXPECT_EQ(r.item<float>(), 0.f);
    EXPECT_FALSE(std::signbit(r.item<float>()));
  }
  for (const Array& r : {rows(x), tj::jit(rows)(x)}) {
    const std::vector<float> v = r.to_vector<float>();
    ASSERT_EQ(v.size(), 3u);
    EXPECT_FALSE(std::signbit(v[0]));                // max(+0, -0)
    EXPECT_FALSE(std::signbit(v[1]));                // max(-0, +0)
    EXPECT_TRUE(v[2] == 0.f && std::signbit(v[2]));  // max(-0, -1) = -0
  }
}

}  // namespace

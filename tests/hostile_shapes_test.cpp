// Shapes whose element counts overflow, and allocations the machine cannot give: each a clear
// tj::Error subclass naming the operation and the shape, eagerly and under jit, never a wrapped
// size-0 array, a hang or a std::bad_alloc; the jitted function still works afterwards.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace {

namespace tj = tracejit;
using tj::Array;

constexpr int64_t k40 = int64_t{1} << 40, k62 = int64_t{1} << 62;

TEST(HostileShapes, OverflowingElementCountsAreShapeErrors) {
  // 2^40 * 2^40 = 2^80 and 2^62 * 4 = 2^64 wrap to 0 in int64_t arithmetic.
  std::string m = ThrowMessage<tj::ShapeError>([] { tj::zeros({k40, k40}); });
  EXPECT_NE(m.find("[1099511627776,1099511627776]"), std::string::npos) << m;
  EXPECT_NE(m.find("more elements"), std::string::npos) << m;
  m = ThrowMessage<tj::ShapeError>([] { tj::zeros({k62, 4}); });
  EXPECT_NE(m.find("[4611686018427387904,4]"), std::string::npos) << m;
  // 2^62 elements fit in int64_t but not their bytes: refused at once, not looped over.
  m = ThrowMessage<tj::ShapeError>([] { tj::zeros({k62}); });
  EXPECT_NE(m.find("[4611686018427387904]"), std::string::npos) << m;
  // Size 0 with huge other dimensions is a valid empty array.
  EXPECT_EQ(tj::zeros({0, k62, k62}).size(), 0);
}

TEST(HostileShapes, BroadcastAndReshapeToOverflowingShapes) {
  Array x = tj::ones({4});
  std::string m = ThrowMessage<tj::ShapeError>([&] { tj::broadcast_to(x, {k62, 4}); });
  EXPECT_NE(m.find("[4611686018427387904,4]"), std::string::npos) << m;
  m = ThrowMessage<tj::ShapeError>([&] { tj::reshape(x, {k62, 4}); });
  EXPECT_NE(m.find("[4611686018427387904,4]"), std::string::npos) << m;
  // Under jit the trace fails the same way, and the function works afterwards.
  auto f = tj::jit([](const Array& a, const Array& shape_from) {
    return tj::sum(tj::broadcast_to(a, shape_from.size() == 1 ? tj::Shape{k62, 4} : tj::Shape{3, 4}));
  });
  m = ThrowMessage<tj::ShapeError>([&] { f(x, tj::zeros({1})); });
  EXPECT_NE(m.find("4611686018427387904"), std::string::npos) << m;
  EXPECT_EQ(f(x, tj::zeros({2})).item<float>(), 12.f);  // 3 x 4 ones
}

TEST(HostileShapes, AllocationsBeyondMemoryAreResourceErrors) {
  // 2^40 f32 elements are 4 TiB: a valid shape, but more than this machine has.
  std::string m = ThrowMessage<tj::ResourceError>([] { tj::zeros({k40}); });
  EXPECT_NE(m.find("f32[1099511627776]"), std::string::npos) << m;
  EXPECT_NE(m.find("4398046511104 bytes"), std::string::npos) << m;
  Array a = tj::ones({int64_t{1} << 20, 1}), b = tj::ones({1, int64_t{1} << 20});
  m = ThrowMessage<tj::ResourceError>([&] { tj::matmul(a, b); });
  EXPECT_EQ(m.rfind("[matmul] ", 0), 0u) << m;
  auto outer = tj::jit([](const Array& u, const Array& v) { return tj::matmul(u, v); });
  m = ThrowMessage<tj::ResourceError>([&] { outer(a, b); });
  EXPECT_EQ(m.rfind("[jit] ", 0), 0u) << m;
  EXPECT_NE(m.find("f32[1048576,1048576]"), std::string::npos) << m;
  // A ResourceError is a tj::Error, and the jitted function still works.
  EXPECT_TRUE((std::is_base_of_v<tj::Error, tj::ResourceError>));
  Array small = outer(tj::ones({2, 1}), tj::ones({1, 3}));
  EXPECT_EQ(small.to_vector<float>(), std::vector<float>(6, 1.f));
}

}  // namespace

namespace {

// sign keeps the sign of zero and NaN, as XLA's and jnp.sign (sign(-0.0) is -0.0).
TEST(SignOfZero, KeepsTheSignEagerAndJitted) {
  Array x = tj::array(std::vector<float>{-0.0f, 0.0f, -2.5f, 3.0f}, {4});
  auto check = [](const Array& s) {
    std::vector<float> v = s.to_vector<float>();
    EXPECT_TRUE(v[0] == 0.f && std::signbit(v[0]));
    EXPECT_TRUE(v[1] == 0.f && !std::signbit(v[1]));
    EXPECT_EQ(v[2], -1.f);
    EXPECT_EQ(v[3], 1.f);
  };
  check(tj::sign(x));
  check(tj::jit([](const Array& a) { return tj::sign(a); })(x));
  EXPECT_TRUE(std::isnan(tj::sign(Array(std::nanf(""))).item<float>()));
}

}  // namespace

namespace {

// 16M f32 values of 1.6487 (the case): the exact sum is 16777216 * 1.6487f. Eager and
// jitted sums must be within 1e-6 relative of it (one f32 sequential accumulator was 13.5% off,
// f32 vector partials 0.3%), and so must mean.
TEST(AccurateSums, SixteenMillionFloats) {
  const int64_t n = int64_t{1} << 24;
  const float v = 1.6487f;
  const double exact = static_cast<double>(n) * static_cast<double>(v);
  Array x = tj::full({n}, v, tj::DType::f32);
  auto rel = [&](double got) { return std::fabs(got - exact) / exact; };
  EXPECT_LT(rel(tj::sum(x).item<float>()), 1e-6);
  auto jsum = tj::jit([](const Array& a) { return tj::sum(a); });
  EXPECT_LT(rel(jsum(x).item<float>()), 1e-6);
  auto jmean = tj::jit([](const Array& a) { return tj::mean(a); });
  EXPECT_LT(std::fabs(jmean(x).item<float>() - v) / v, 1e-6);
  EXPECT_LT(std::fabs(tj::mean(x).item<float>() - v) / v, 1e-6);
}

// Compensation must not turn an infinite sum into NaN.
TEST(AccurateSums, InfinitiesStayInfinite) {
  const float inf = std::numeric_limits<float>::infinity();
  Array x = tj::array(std::vector<float>{inf, 1.f, 2.f}, {3});
  EXPECT_EQ(tj::sum(x).item<float>(), inf);
  EXPECT_EQ(tj::jit([](const Array& a) { return tj::sum(a); })(x).item<float>(), inf);
  Array y = tj::array(std::vector<float>{inf, -inf}, {2});
  EXPECT_TRUE(std::isnan(tj::sum(y).item<float>()));
}

}  // namespace

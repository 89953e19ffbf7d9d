// stack, eye, round/floor/ceil, sign, clip, min and argmax/argmin (src/frontend/jnp_ops.cpp):
// hand-derived values, eagerly and jitted, derivatives against f64 finite differences, and the
// IR they print (compositions of existing primitives).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

template <class F, class... A>
std::vector<Array> eager_and_jit(F f, const A&... a) {
  return {f(a...), tj::jit(f)(a...)};
}

TEST(JnpOps, StackAndConcatenatePromote) {
  auto f = [](const Array& a, const Array& b) { return tj::stack({a, b}, 1); };
  for (const Array& r : eager_and_jit(f, tj::array({1, 2}), tj::array({0.5f, 1.5f}))) {
    EXPECT_EQ(r.dtype(), DType::f32);
    EXPECT_EQ(r.shape(), (tj::Shape{2, 2}));
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{1, 0.5f, 2, 1.5f}));
  }
  EXPECT_EQ(tj::stack({tj::arange(2), tj::arange(2)}).shape(), (tj::Shape{2, 2}));
  EXPECT_THROW(tj::stack({tj::ones({2}), tj::ones({3})}), tj::ShapeError);
  tj::check_grads([](const Array& a, const Array& b) { return tj::stack({a, b * b}, -1); },
                  std::tuple{tj::array({1.0, 2.0}), tj::array({3.0, -1.0})});
}

TEST(JnpOps, Eye) {
  EXPECT_EQ(tj::eye(3).to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(tj::eye(2, DType::i32).to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 0, 1}));
  EXPECT_EQ(tj::jit([] { return tj::eye(2); })().to_vector<float>(), (std::vector<float>{1, 0, 0, 1}));
}

TEST(JnpOps, RoundHalfToEvenFloorCeil) {
  const std::vector<float> xs = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 2.6f, -2.6f, 1e9f, 0.2f};
  const Array x = tj::array(xs);
  const float inf = std::numeric_limits<float>::infinity();
  for (const Array& r : eager_and_jit([](const Array& v) { return tj::round(v); }, x))
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{-2, -2, -0.f, 0, 2, 2, 3, -3, 1e9f, 0}));
  for (const Array& r : eager_and_jit([](const Array& v) { return tj::floor(v); }, x))
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{-3, -2, -1, 0, 1, 2, 2, -3, 1e9f, 0}));
  for (const Array& r : eager_and_jit([](const Array& v) { return tj::ceil(v); }, x))
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{-2, -1, -0.f, 1, 2, 3, 3, -2, 1e9f, 1}));
  EXPECT_TRUE(std::signbit(tj::round(Array(-0.3f)).item<float>()));  // NumPy: -0.0
  EXPECT_EQ(tj::round(tj::array({inf, -inf})).to_vector<float>(), (std::vector<float>{inf, -inf}));
  EXPECT_TRUE(std::isnan(tj::floor(Array(NAN)).item<float>()));
  EXPECT_EQ(tj::round(tj::array({2.5, 3.5, -4.5})).to_vector<double>(), (std::vector<double>{2, 4, -4}));
  EXPECT_EQ(tj::floor(tj::array({3, -3})).dtype(), DType::i32);  // the identity on integers
  // Zero derivative, as JAX.
  EXPECT_EQ(tj::grad([](const Array& v) { return tj::sum(tj::round(v) + tj::floor(v) + tj::ceil(v)); })(x)
                .to_vector<float>(),
            std::vector<float>(xs.size(), 0.f));
}

// round, floor and ceil keep their operand's type, weak types included (JAX: a weak float stays
// a weak float of its dtype), eagerly and jitted.
TEST(JnpOps, RoundingKeepsWeakTypes) {
  for (const auto& op : {tj::round, tj::floor, tj::ceil}) {
    for (const Array& r : eager_and_jit([&](const Array& v) { return op(v); }, Array(2.5f))) {
      EXPECT_EQ(r.dtype(), DType::f32);
      EXPECT_TRUE(r.weak_type());
    }
    const Array d = op(Array(-2.5));
    EXPECT_EQ(d.dtype(), DType::f64);
    EXPECT_TRUE(d.weak_type());
    EXPECT_FALSE(op(tj::array({2.5f})).weak_type());
  }
  EXPECT_EQ(tj::round(Array(2.5f)).item<float>(), 2.f);  // half to even
  EXPECT_EQ(tj::floor(Array(-2.5)).item<double>(), -3.0);
  EXPECT_EQ(tj::ceil(Array(2.25f)).item<float>(), 3.f);
}

TEST(JnpOps, SignAndClip) {
  EXPECT_EQ(tj::sign(tj::array({-3.f, 0.f, 2.f})).to_vector<float>(), (std::vector<float>{-1, 0, 1}));
  EXPECT_EQ(tj::sign(tj::array({-3, 0, 7})).to_vector<int32_t>(), (std::vector<int32_t>{-1, 0, 1}));
  auto f = [](const Array& v) { return tj::clip(v, -1.f, 2.f); };
  for (const Array& r : eager_and_jit(f, tj::array({-5.f, 0.5f, 3.f})))
    EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{-1, 0.5f, 2}));
  // d/dx: 1 inside, 0 outside.
  EXPECT_EQ(tj::grad([&](const Array& v) { return tj::sum(f(v)); })(tj::array({-5.f, 0.5f, 3.f})).to_vector<float>(),
            (std::vector<float>{0, 1, 0}));
  EXPECT_EQ(tj::clip(tj::arange(5), 1, 3).to_vector<int32_t>(), (std::vector<int32_t>{1, 1, 2, 3, 3}));
}

TEST(JnpOps, MinArgmaxArgmin) {
  const Array m = tj::array({3.f, 7.f, 7.f, -1.f, 2.f, -1.f}, {2, 3});
  EXPECT_EQ(tj::min(m).item<float>(), -1.f);
  EXPECT_EQ(tj::min(m, {1}).to_vector<float>(), (std::vector<float>{3, -1}));
  EXPECT_EQ(tj::min(tj::array({5u, 4000000000u, 7u})).item<uint32_t>(), 5u);
  EXPECT_EQ(tj::min(tj::array({5, -9, 7})).item<int32_t>(), -9);
  for (const Array& r : eager_and_jit([](const Array& v) { return tj::argmax(v, 1); }, m)) {
    EXPECT_EQ(r.dtype(), DType::i32);
    EXPECT_EQ(r.to_vector<int32_t>(), (std::vector<int32_t>{1, 1}));  // first of the tie
  }
  EXPECT_EQ(tj::argmin(m, 1).to_vector<int32_t>(), (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(tj::argmax(m, 0).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(tj::argmin(m).item<int32_t>(), 3);  // flattened
  EXPECT_EQ(tj::argmax(tj::array({1.f, NAN, 5.f, NAN})).item<int32_t>(), 1);  // NaN is the max
  EXPECT_EQ(tj::argmin(tj::array({1.f, NAN, -5.f})).item<int32_t>(), 1);      // and the min
  EXPECT_EQ(tj::argmax(tj::array({false, true, true})).item<int32_t>(), 1);
  EXPECT_THROW(tj::argmax(m, 2), tj::IndexError);
  const std::string ir = tj::make_ir([](const Array& v) { return tj::argmax(v, 0); })(tj::ones({3})).str();
  EXPECT_NE(ir.find("reduce_max"), std::string::npos) << ir;
}

}  // namespace

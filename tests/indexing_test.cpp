// slice with a step, take, dynamic_slice, dynamic_update_slice and x.at(i) updates
// (src/frontend/indexing.cpp): hand-derived values eagerly, jitted and with traced indices,
// derivatives against f64 finite differences and by hand, and the misuse errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

std::vector<float> floats(const Array& a) { return a.to_vector<float>(); }

TEST(Indexing, SliceWithStep) {
  const Array x = tj::arange(10);
  EXPECT_EQ(tj::slice(x, 0, 1, 8, 3).to_vector<int32_t>(), (std::vector<int32_t>{1, 4, 7}));
  EXPECT_EQ(tj::slice(x, 0, 2, 9, 3).to_vector<int32_t>(), (std::vector<int32_t>{2, 5, 8}));
  EXPECT_EQ(tj::slice(x, 0, -3, 100).to_vector<int32_t>(), (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(tj::slice(x, 0, 5, 2).size(), 0);
  const Array m = tj::reshape(tj::arange(12), {3, 4});
  EXPECT_EQ(tj::jit([](const Array& v) { return tj::slice(v, 1, 0, 4, 2); })(m).to_vector<int32_t>(),
            (std::vector<int32_t>{0, 2, 4, 6, 8, 10}));
  tj::check_grads([](const Array& v) { return tj::slice(v * v, 0, 0, 5, 2); }, std::tuple{tj::array({1.0, 2.0, 3.0, 4.0, 5.0})});
  EXPECT_THROW(tj::slice(x, 0, 0, 5, 0), tj::IndexError);
}

TEST(Indexing, TakeClampsAndScattersGradients) {
  const Array x = tj::array({10.f, 20.f, 30.f});
  const Array idx = tj::array({2, 0, 2, 7, -1});
  auto f = [](const Array& v, const Array& i) { return tj::take(v, i, 0); };
  for (const Array& r : {f(x, idx), tj::jit(f)(x, idx)})
    EXPECT_EQ(floats(r), (std::vector<float>{30, 10, 30, 30, 10}));
  // Gradient: each index adds its cotangent to the element it read (2 at index 0, 3 at index 2).
  auto g = tj::grad([&](const Array& v) { return tj::sum(tj::take(v, idx, 0)); });
  EXPECT_EQ(floats(g(x)), (std::vector<float>{2, 0, 3}));
  EXPECT_EQ(floats(tj::jit(g)(x)), (std::vector<float>{2, 0, 3}));
  // Along axis 1 with 2-d indices: out[i, a, b] = m[i, idx[a, b]].
  const Array m = tj::array({1, 2, 3, 4, 5, 6}, {2, 3});
  Array r = tj::take(m, tj::array({0, 2, 1, 1}, {2, 2}), 1);
  EXPECT_EQ(r.shape(), (tj::Shape{2, 2, 2}));
  EXPECT_EQ(r.to_vector<int32_t>(), (std::vector<int32_t>{1, 3, 2, 2, 4, 6, 5, 5}));
  // NaN elsewhere does not leak into the selected values.
  EXPECT_EQ(floats(tj::take(tj::array({NAN, 4.f}), tj::array({1}), 0)), (std::vector<float>{4}));
  EXPECT_EQ(tj::take(tj::array({true, false}), tj::array({1, 0}), 0).to_vector<bool>(), (std::vector<bool>{false, true}));
  const std::string msg = ThrowMessage<tj::TypeError>([&] { tj::take(x, tj::array({1.f}), 0); });
  EXPECT_NE(msg.find("[take]"), std::string::npos);
  EXPECT_NE(msg.find("f32[1]"), std::string::npos) << msg;
  tj::check_grads([&](const Array& v) { return tj::take(v * v, tj::array({1, 1, 0}), 0); },
                  std::tuple{tj::array({1.5, -2.0})});
}

// A gather returns the selected elements bit for bit: -0.0 keeps its sign, infinities and NaN
// come through, and none of them leaks from an unselected position. dynamic_slice with
// concrete starts (a static slice) and traced ones (a gather) agree, as JAX's gather does.
TEST(Indexing, GathersAreExact) {
  const float inf = std::numeric_limits<float>::infinity();
  const Array x = tj::array({-0.f, inf, -inf, NAN, 2.f});
  auto take = [](const Array& v, const Array& i) { return tj::take(v, i, 0); };
  for (const Array& r : {take(x, tj::array({0, 1, 2, 4})), tj::jit(take)(x, tj::array({0, 1, 2, 4}))}) {
    const std::vector<float> v = floats(r);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_TRUE(v[0] == 0 && std::signbit(v[0]));
    EXPECT_EQ(v[1], inf);
    EXPECT_EQ(v[2], -inf);
    EXPECT_EQ(v[3], 2.f);
  }
  EXPECT_TRUE(std::isnan(tj::jit(take)(x, tj::array({3})).item<float>()));
  const Array neg_zero = tj::array({1.0, -0.0, 3.0});
  auto window = [](const Array& v, const Array& i) { return tj::dynamic_slice(v, {i}, {1}); };
  for (const Array& r : {window(neg_zero, Array(1)), tj::jit(window)(neg_zero, Array(1))})
    EXPECT_TRUE(r.item<double>() == 0 && std::signbit(r.item<double>()));
  // An update of -0.0 lands as -0.0; rows of the update are gathered too.
  auto write = tj::jit([](const Array& a, const Array& u, const Array& i) { return tj::dynamic_update_slice(a, u, {i}); });
  const std::vector<float> w = floats(write(tj::ones({3}), tj::array({-0.f, 5.f}), Array(1)));
  EXPECT_TRUE(w[0] == 1 && w[1] == 0 && std::signbit(w[1]) && w[2] == 5) << w[1];
}

// An update empty along an axis writes nothing (it has no row to read), as
// lax.dynamic_update_slice; the starts are still checked.
TEST(Indexing, DynamicUpdateSliceOfAnEmptyUpdate) {
  auto write = [](const Array& a, const Array& u, const Array& i, const Array& j) {
    return tj::dynamic_update_slice(a, u, {i, j});
  };
  const Array a = tj::reshape(tj::astype(tj::arange(6), DType::f32), {3, 2});
  for (const Array& u : {tj::zeros({0, 0}), tj::zeros({2, 0}), tj::zeros({0, 1})})
    for (const Array& r : {write(a, u, Array(2), Array(2)), tj::jit(write)(a, u, Array(2), Array(2))}) {
      EXPECT_EQ(r.shape(), (tj::Shape{3, 2}));
      EXPECT_EQ(floats(r), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    }
  EXPECT_THROW(write(a, tj::zeros({0, 0}), Array(1.f), Array(0)), tj::TypeError);
}

TEST(Indexing, DynamicSliceClampsTracedStarts) {
  const Array m = tj::reshape(tj::arange(12), {3, 4});
  auto f = [](const Array& v, const Array& i, const Array& j) { return tj::dynamic_slice(v, {i, j}, {2, 2}); };
  for (const Array& r : {f(m, Array(1), Array(1)), tj::jit(f)(m, Array(1), Array(1))})
    EXPECT_EQ(r.to_vector<int32_t>(), (std::vector<int32_t>{5, 6, 9, 10}));
  // Starts clamp so the window fits: (5, -3) becomes (1, 0).
  EXPECT_EQ(tj::jit(f)(m, Array(5), Array(-3)).to_vector<int32_t>(), (std::vector<int32_t>{4, 5, 8, 9}));
  EXPECT_EQ(tj::dynamic_slice(m, {0, 2}, {1, 2}).to_vector<int32_t>(), (std::vector<int32_t>{2, 3}));
  const std::string msg = ThrowMessage<tj::ShapeError>([&] { tj::dynamic_slice(m, {0, 0}, {4, 1}); });
  EXPECT_NE(msg.find("[dynamic_slice]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size 4"), std::string::npos) << msg;
  auto g = tj::grad([](const Array& v, const Array& i) { return tj::sum(tj::dynamic_slice(v, {i}, {2}) * tj::array({1.f, 10.f})); });
  EXPECT_EQ(floats(tj::jit(g)(tj::array({1.f, 2.f, 3.f}), Array(1))), (std::vector<float>{0, 1, 10}));
}

TEST(Indexing, DynamicUpdateSlice) {
  const Array z = tj::zeros({3, 3});
  const Array u = tj::array({1.f, 2.f, 3.f, 4.f}, {2, 2});
  auto f = [](const Array& a, const Array& b, const Array& i) { return tj::dynamic_update_slice(a, b, {i, Array(1)}); };
  for (const Array& r : {f(z, u, Array(0)), tj::jit(f)(z, u, Array(0))})
    EXPECT_EQ(floats(r), (std::vector<float>{0, 1, 2, 0, 3, 4, 0, 0, 0}));
  EXPECT_EQ(floats(tj::jit(f)(z, u, Array(9))), (std::vector<float>{0, 0, 0, 0, 1, 2, 0, 3, 4}));  // clamped to 1
  // d/da: 1 outside the window; d/db: 1 everywhere.
  auto [ga, gb] = tj::grad<0, 1>([&](const Array& a, const Array& b) { return tj::sum(f(a, b, Array(1)) * 2.f); })(z, u);
  EXPECT_EQ(floats(ga), (std::vector<float>{2, 2, 2, 2, 0, 0, 2, 0, 0}));
  EXPECT_EQ(floats(gb), (std::vector<float>{2, 2, 2, 2}));
  EXPECT_THROW(tj::dynamic_update_slice(tj::zeros({2}), tj::zeros({3}), {0}), tj::ShapeError);
}

TEST(Indexing, AtUpdates) {
  const Array x = tj::array({1.f, 2.f, 3.f});
  EXPECT_EQ(floats(x.at(1).set(10)), (std::vector<float>{1, 10, 3}));
  EXPECT_EQ(floats(x.at(-1).add(5)), (std::vector<float>{1, 2, 8}));
  EXPECT_EQ(floats(x.at(0).multiply(4)), (std::vector<float>{4, 2, 3}));
  EXPECT_EQ(floats(x.at(2).min(0.5f)), (std::vector<float>{1, 2, 0.5f}));
  EXPECT_EQ(floats(x.at(0).max(0.5f)), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(floats(x.at(7).set(0)), (std::vector<float>{1, 2, 3}));  // out of range: dropped
  EXPECT_EQ(floats(x), (std::vector<float>{1, 2, 3}));                // unchanged
  EXPECT_EQ(x.at(2).get().item<float>(), 3.f);
  // Rows of a matrix, with a traced index under jit.
  auto set_row = tj::jit([](const Array& m, const Array& i) { return m.at(i).set(tj::array({7, 8})); });
  EXPECT_EQ(set_row(tj::zeros({2, 2}, DType::i32), Array(1)).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 7, 8}));
  // d/dx of sum(x.at(1).multiply(3)) is [1, 3, 1]; d/dv of x.at(1).set(v) is 1.
  EXPECT_EQ(floats(tj::grad([](const Array& v) { return tj::sum(v.at(1).multiply(3.f)); })(x)), (std::vector<float>{1, 3, 1}));
  EXPECT_EQ(tj::grad<1>([&](const Array& v, const Array& s) { return tj::sum(v.at(1).set(s) * 2.f); })(x, Array(0.f)).item<float>(), 2.f);
}

}  // namespace

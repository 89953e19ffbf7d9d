// The transform conveniences of ports from JAX (API.md, "The wider surface"): several argnums,
// has_aux, C++ control flow on concrete values under grad/vjp/jvp, check_grads and
// block_until_ready. Expected values are derived by hand.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

std::vector<float> floats(const Array& a) { return a.to_vector<float>(); }

// sum(w * x) + sum(b * b): d/dw = x, d/dx = w, d/db = 2b.
Array affine(const Array& w, const Array& x, const Array& b) { return tj::sum(w * x) + tj::sum(b * b); }

TEST(GradArgnums, TupleOfGradientsInTheOrderGiven) {
  const Array w = tj::array({1.f, 2.f}), x = tj::array({3.f, 4.f}), b = tj::array({0.5f});
  auto [gw, gb] = tj::grad<0, 2>(affine)(w, x, b);
  EXPECT_EQ(floats(gw), (std::vector<float>{3, 4}));
  EXPECT_EQ(floats(gb), (std::vector<float>{1}));
  auto [gb2, gx] = tj::jit(tj::grad<2, 1>(affine))(w, x, b);
  EXPECT_EQ(floats(gb2), (std::vector<float>{1}));
  EXPECT_EQ(floats(gx), (std::vector<float>{1, 2}));
  auto [value, grads] = tj::value_and_grad<0, 1>(affine)(w, x, b);
  EXPECT_EQ(value.item<float>(), 11.25f);  // 3 + 8 + 0.25
  EXPECT_EQ(floats(std::get<0>(grads)), (std::vector<float>{3, 4}));
  EXPECT_EQ(floats(std::get<1>(grads)), (std::vector<float>{1, 2}));
}

TEST(GradHasAux, ResultShapesAsJax) {
  // loss = sum(x^2), aux = {"mean": mean(x), "n": 3}: grad 2x.
  auto f = [](const Array& x) {
    std::map<std::string, Array> aux{{"mean", tj::mean(x)}, {"n", Array(3)}};
    return std::pair{tj::sum(x * x), aux};
  };
  const Array x = tj::array({1.f, 2.f, 3.f});
  auto [g, aux] = tj::grad(f, tj::has_aux)(x);
  EXPECT_EQ(floats(g), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(aux.at("mean").item<float>(), 2.f);
  EXPECT_EQ(aux.at("n").item<int>(), 3);
  auto [value_aux, g2] = tj::value_and_grad(f, tj::has_aux)(x);
  EXPECT_EQ(value_aux.first.item<float>(), 14.f);
  EXPECT_EQ(value_aux.second.at("mean").item<float>(), 2.f);
  EXPECT_EQ(floats(g2), (std::vector<float>{2, 4, 6}));
  auto [gj, auxj] = tj::jit(tj::grad(f, tj::has_aux))(x);
  EXPECT_EQ(floats(gj), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(auxj.at("mean").item<float>(), 2.f);
  // Several argnums with aux.
  auto h = [](const Array& a, const Array& b) { return std::pair{tj::sum(a * b), a + b}; };
  auto [gs, s] = tj::grad<0, 1>(h, tj::has_aux)(tj::array({2.f}), tj::array({5.f}));
  EXPECT_EQ(floats(std::get<0>(gs)), (std::vector<float>{5}));
  EXPECT_EQ(floats(std::get<1>(gs)), (std::vector<float>{2}));
  EXPECT_EQ(floats(s), (std::vector<float>{7}));
  // A loss that is not one array is a TreeError saying what has_aux expects (a result that
  // is no pair at all does not compile).
  std::string msg = ThrowMessage<tj::TreeError>([] {
    tj::grad([](const Array& v) { return std::pair{std::pair{tj::sum(v), tj::sum(v)}, v}; },
             tj::has_aux)(tj::ones({2}));
  });
  EXPECT_NE(msg.find("std::pair{loss, aux}"), std::string::npos) << msg;
}

// The autodiff cookbook's f(x) = 3x^2 if x < 3 else -4x, with a C++ if.
Array piecewise(const Array& x) {
  if (x < 3) return 3 * x * x;
  return -4 * x;
}

TEST(ConcreteUnderGrad, CppIfOnConcreteValuesWorksOutsideJit) {
  EXPECT_EQ(tj::grad(piecewise)(Array(2.f)).item<float>(), 12.f);  // 6x
  EXPECT_EQ(tj::grad(piecewise)(Array(4.f)).item<float>(), -4.f);
  auto [y, back] = tj::vjp(piecewise, Array(1.f));
  EXPECT_EQ(y.item<float>(), 3.f);
  EXPECT_EQ(std::get<0>(back(Array(1.f))).item<float>(), 6.f);
  auto [p, t] = tj::jvp(piecewise, std::tuple{Array(5.f)}, std::tuple{Array(1.f)});
  EXPECT_EQ(p.item<float>(), -20.f);
  EXPECT_EQ(t.item<float>(), -4.f);
  // grad of grad: the inner tracer's value comes from the outer one.
  EXPECT_EQ(tj::grad(tj::grad(piecewise))(Array(2.f)).item<float>(), 6.f);
  // item() and loop bounds too: sum_{k < x} x  with x = 3 is 3x, derivative 3.
  auto looped = [](const Array& x) {
    Array acc = tj::zeros({});
    for (int k = 0; k < x.item<float>(); ++k) acc = acc + x;
    return acc;
  };
  EXPECT_EQ(tj::grad(looped)(Array(3.f)).item<float>(), 3.f);
  // Under jit the value does not exist at trace time.
  EXPECT_THROW(tj::jit(tj::grad(piecewise))(Array(2.f)), tj::ConcretizationError);
  EXPECT_THROW(tj::grad(tj::jit(piecewise))(Array(2.f)), tj::ConcretizationError);
}

TEST(CheckGrads, PassesForCorrectDerivativesAndNamesTheWorstMismatch) {
  tj::check_grads([](const Array& x, const Array& y) { return tj::sin(x) * y + tj::exp(x * y); },
                  std::tuple{tj::array({0.3f, -1.2f}), tj::array({2.f, 0.5f})}, 2);
  tj::check_grads(affine, std::tuple{tj::array({1.0, 2.0}), tj::array({3.0, 4.0}), tj::array({0.5})});
  // x * stop_gradient(x): AD says x, finite differences 2x.
  std::string msg = ThrowMessage<tj::Error>([] {
    tj::check_grads([](const Array& x) { return x * tj::stop_gradient(x); }, std::tuple{tj::array({1.5, -2.0})});
  });
  EXPECT_NE(msg.find("[check_grads]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("forward mode"), std::string::npos) << msg;
}

TEST(BlockUntilReady, ReturnsTheArray) {
  const Array x = tj::array({1.f, 2.f});
  Array y = tj::jit([](const Array& v) { return v * 2; })(x).block_until_ready();
  EXPECT_EQ(floats(y), (std::vector<float>{2, 4}));
}

TEST(ArrayAssignment, OnlyNamedArraysAreAssignable) {
  // `x[0] = 123` assigns to a temporary: it must not compile.
  static_assert(!std::is_assignable_v<Array, int>);
  static_assert(!std::is_assignable_v<Array&&, const Array&>);
  static_assert(std::is_assignable_v<Array&, int>);
  static_assert(std::is_assignable_v<Array&, Array>);
  Array x = tj::array({1, 2});
  x = x.at(0).set(123);
  EXPECT_EQ(x.to_vector<int32_t>(), (std::vector<int32_t>{123, 2}));
}

}  // namespace

// jacfwd, jacrev and hessian against hand derivations: the seed's loss, softmax and its
// cross-entropy, a two-layer tanh network, pytree arguments and pytree outputs; jacfwd ==
// jacrev throughout.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rule_cases.h"
#include "seed_model.h"

namespace jacobian_test {

using namespace transform_cases;  // NOLINT: the shared test vocabulary

using seed::Params;

TEST(Hessian, SeedLossOfThetaByHand) {
  // L = 1/n sum (w x_i + b - y_i)^2, so H = 2/n [[sum x^2, sum x], [sum x, n]], whatever w, b.
  const std::vector<double> xs{0.5, -1, 2, 3};
  const Array x = tj::array(xs, {4}), y = tj::array(std::vector<double>{1, 0, 2, -1}, {4});
  auto loss = [&](const Array& theta) { return seed::loss(Params{theta[0], theta[1]}, x, y); };
  double sx = 0, sxx = 0;
  for (double v : xs) sx += v, sxx += v * v;
  const std::vector<double> want{2 * sxx / 4, 2 * sx / 4, 2 * sx / 4, 2.0};
  const Array theta = tj::array(std::vector<double>{0.3, -0.7}, {2});
  const Array h = tj::hessian(loss)(theta);
  ASSERT_EQ(h.shape(), (Shape{2, 2}));
  expect_close(h, want, 1e-12);
  // The Hessian of a quadratic is constant: jit's warning about constant outputs is expected.
  expect_close(tj::jit(tj::hessian(loss), tj::JitOptions{.warn_constant_outputs = false})(theta), want, 1e-12);
}

// p = softmax(z) in double, for the hand formulas.
std::vector<double> softmax_of(const std::vector<double>& z) {
  double m = z[0], s = 0;
  for (double v : z) m = std::max(m, v);
  std::vector<double> p;
  for (double v : z) p.push_back(std::exp(v - m)), s += p.back();
  for (double& v : p) v /= s;
  return p;
}

Array softmax(const Array& z) {
  const Array e = tj::exp(z - tj::max(z));
  return e / tj::sum(e);
}

TEST(Jacobian, SoftmaxIsDiagMinusOuter) {
  // d softmax_i / d z_j = p_i (delta_ij - p_j).
  const std::vector<double> zs{0.1, -1.2, 2.0, 0.4};
  const std::vector<double> p = softmax_of(zs);
  std::vector<double> want;
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j) want.push_back(p[i] * ((i == j) - p[j]));
  const Array z = tj::array(zs, {4});
  const Array fwd = tj::jacfwd(softmax)(z), rev = tj::jacrev(softmax)(z);
  ASSERT_EQ(fwd.shape(), (Shape{4, 4}));
  ASSERT_EQ(rev.shape(), (Shape{4, 4}));
  expect_close(fwd, want, 1e-12);
  expect_close(rev, want, 1e-12);
}

TEST(Hessian, SoftmaxCrossEntropyIsDiagMinusOuter) {
  // L(z) = logsumexp(z) - z_label: grad = p - onehot, Hessian = diag(p) - p p^T.
  const std::vector<double> zs{1.0, 0.2, -0.5};
  const std::vector<double> p = softmax_of(zs);
  auto xent = [](const Array& z) {
    const Array m = tj::max(z);
    return tj::log(tj::sum(tj::exp(z - m))) + m - z[1];
  };
  const Array z = tj::array(zs, {3});
  expect_close(tj::grad(xent)(z), {p[0], p[1] - 1, p[2]}, 1e-12);
  std::vector<double> want;
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) want.push_back(p[i] * ((i == j) - p[j]));
  expect_close(tj::hessian(xent)(z), want, 1e-12);
  // jacfwd of the gradient agrees with jacrev of it.
  expect_close(tj::jacrev(tj::grad(xent))(z), want, 1e-12);
}

TEST(Jacobian, TwoLayerTanhNetworkByHand) {
  // f(x) = W2 tanh(W1 x): J = W2 diag(1 - h^2) W1 with h = tanh(W1 x).
  const std::vector<double> w1{0.5, -0.2, 0.1, 0.3, 0.8, -0.4}, w2{1.0, -0.5, 0.2, 0.7, 0.1, -0.3};
  const std::vector<double> xv{0.9, -0.3};
  const Array W1 = tj::array(w1, {3, 2}), W2 = tj::array(w2, {2, 3});
  auto net = [&](const Array& x) { return tj::matmul(W2, tj::tanh(tj::matmul(W1, x))); };
  std::vector<double> h(3), want;
  for (size_t i = 0; i < 3; ++i) h[i] = std::tanh(w1[2 * i] * xv[0] + w1[2 * i + 1] * xv[1]);
  for (size_t o = 0; o < 2; ++o)
    for (size_t j = 0; j < 2; ++j) {
      double s = 0;
      for (size_t i = 0; i < 3; ++i) s += w2[3 * o + i] * (1 - h[i] * h[i]) * w1[2 * i + j];
      want.push_back(s);
    }
  const Array x = tj::array(xv, {2});
  expect_close(tj::jacfwd(net)(x), want, 1e-12);
  expect_close(tj::jacrev(net)(x), want, 1e-12);
  expect_close(tj::jit(tj::jacfwd(net))(x), want, 1e-12);
}

TEST(Jacobian, PytreeArgumentGivesItsTypeWithOutByLeafShapes) {
  // f(p) = p.weight * x + p.bias over x of 3 points: d f_i / d weight = x_i, d f_i / d bias = 1;
  // weight is a scalar (blocks [3]) and bias a [1] array (blocks [3, 1]).
  const Array x = tj::array(std::vector<double>{2, -1, 0.5}, {3});
  auto f = [&](const Params& p) { return p.weight * x + p.bias; };
  const Params p{tj::full({}, 0.3, DType::f64), tj::full({1}, 0.1, DType::f64)};
  for (const Params& j : {tj::jacfwd(f)(p), tj::jacrev(f)(p)}) {
    ASSERT_EQ(j.weight.shape(), (Shape{3}));
    ASSERT_EQ(j.bias.shape(), (Shape{3, 1}));
    expect_close(j.weight, {2, -1, 0.5}, 0);
    expect_close(j.bias, {1, 1, 1}, 0);
  }
}

TEST(Jacobian, ArgumentNAndMatrixShapes) {
  // f(a, B) = B a for B [2, 3]: d f / d B[i, j, k] = delta_ij a_k, shape [2] + [2, 3].
  const Array a = tj::array(std::vector<double>{1, 2, 3}, {3});
  const Array b = tj::reshape(tj::astype(tj::arange(6), DType::f64), {2, 3});
  auto f = [](const Array& av, const Array& bm) { return tj::matmul(bm, av); };
  const std::vector<double> want{1, 2, 3, 0, 0, 0, 0, 0, 0, 1, 2, 3};
  for (const Array& j : {tj::jacfwd<1>(f)(a, b), tj::jacrev<1>(f)(a, b)}) {
    ASSERT_EQ(j.shape(), (Shape{2, 2, 3}));
    expect_close(j, want, 0);
  }
  // With respect to a: B itself.
  expect_close(tj::jacfwd(f)(a, b), {0, 1, 2, 3, 4, 5}, 0);
}

TEST(Hessian, SeedLossOverParamsIsAMapOfParams) {
  // The same closed forms, H = 2/n [[sum x^2, sum x], [sum x, n]], now as JAX's Params of
  // Params: H.at(".weight").bias is d2 L / (d weight d bias).
  const std::vector<double> xs{0.5, -1, 2, 3, -0.25};
  const Array x = tj::array(xs, {5}), y = tj::array(std::vector<double>{1, 0, 2, -1, 0.5}, {5});
  double sx = 0, sxx = 0;
  for (double v : xs) sx += v, sxx += v * v;
  const double n = 5;
  const Params p{tj::full({}, 0.3, DType::f64), tj::full({}, -0.7, DType::f64)};
  auto check = [&](const std::map<std::string, Params>& h) {
    ASSERT_EQ(h.size(), 2u);
    for (const char* key : {".weight", ".bias"}) {
      ASSERT_TRUE(h.contains(key)) << key;
      EXPECT_EQ(h.at(key).weight.shape(), (Shape{}));
      EXPECT_EQ(h.at(key).bias.shape(), (Shape{}));
    }
    expect_close(h.at(".weight").weight, {2 * sxx / n}, 1e-12);
    expect_close(h.at(".weight").bias, {2 * sx / n}, 1e-12);
    expect_close(h.at(".bias").weight, {2 * sx / n}, 1e-12);
    expect_close(h.at(".bias").bias, {2.0}, 1e-12);
  };
  check(tj::hessian(seed::loss)(p, x, y));
  // d2L/db2 = 2 does not depend on the inputs: jit's constant-output warning is expected.
  check(tj::jit(tj::hessian(seed::loss), tj::JitOptions{.warn_constant_outputs = false})(p, x, y));
}

TEST(Jacobian, PytreeOutputOfPytreeArgumentByHand) {
  // f(p) = Params{tanh(w * b), w * w} elementwise over w, b of shape [2]:
  // d tanh(w_i b_i) / d w_j = delta_ij (1 - t_i^2) b_i, / d b_j = delta_ij (1 - t_i^2) w_i;
  // d w_i^2 / d w_j = 2 w_i delta_ij, / d b_j = 0.
  const std::vector<double> w{0.4, -1.1}, b{0.7, 0.2};
  auto f = [](const Params& p) { return Params{tj::tanh(p.weight * p.bias), p.weight * p.weight}; };
  auto diag = [](double a0, double a1) { return std::vector<double>{a0, 0, 0, a1}; };
  std::vector<double> t(2);
  for (size_t i = 0; i < 2; ++i) t[i] = std::tanh(w[i] * b[i]);
  const Params p{tj::array(w, {2}), tj::array(b, {2})};
  auto check = [&](const std::map<std::string, Params>& j) {
    ASSERT_EQ(j.size(), 2u);
    for (const char* key : {".weight", ".bias"}) {
      EXPECT_EQ(j.at(key).weight.shape(), (Shape{2, 2}));
      EXPECT_EQ(j.at(key).bias.shape(), (Shape{2, 2}));
    }
    expect_close(j.at(".weight").weight, diag((1 - t[0] * t[0]) * b[0], (1 - t[1] * t[1]) * b[1]), 1e-12);
    expect_close(j.at(".weight").bias, diag((1 - t[0] * t[0]) * w[0], (1 - t[1] * t[1]) * w[1]), 1e-12);
    expect_close(j.at(".bias").weight, diag(2 * w[0], 2 * w[1]), 1e-12);
    expect_close(j.at(".bias").bias, diag(0, 0), 0);
  };
  check(tj::jacfwd(f)(p));
  check(tj::jacrev(f)(p));
  check(tj::jit(tj::jacfwd(f))(p));
  // d (w*w) / d b is identically zero: jit's constant-output warning is expected.
  check(tj::jit(tj::jacrev(f), tj::JitOptions{.warn_constant_outputs = false})(p));
}

TEST(Jacobian, ArrayArgumentPytreeOutputKeepsTheOutputType) {
  // f(x) = {"s": sum(x^2), "v": sin(x)} over x [3]: d s / d x = 2x ([] + [3]), d v / d x =
  // diag(cos x) ([3] + [3]).
  const std::vector<double> xv{0.3, -1.2, 2.0};
  auto f = [](const Array& x) {
    return std::map<std::string, Array>{{"s", tj::sum(x * x)}, {"v", tj::sin(x)}};
  };
  std::vector<double> ds, dv(9, 0.0);
  for (size_t i = 0; i < 3; ++i) ds.push_back(2 * xv[i]), dv[4 * i] = std::cos(xv[i]);
  const Array x = tj::array(xv, {3});
  for (const auto& j : {tj::jacfwd(f)(x), tj::jacrev(f)(x), tj::jit(tj::jacrev(f))(x)}) {
    ASSERT_EQ(j.size(), 2u);
    ASSERT_EQ(j.at("s").shape(), (Shape{3}));
    ASSERT_EQ(j.at("v").shape(), (Shape{3, 3}));
    expect_close(j.at("s"), ds, 1e-12);
    expect_close(j.at("v"), dv, 1e-12);
  }
}

TEST(Jacobian, ArgumentNOfAPytreeValuedFunction) {
  // f(c, p) = (c * w + b, b * sum(w)) for c, w [2] and b a scalar. With respect to p (N = 1):
  // d out0 / d w = diag(c), / d b = [1, 1]; d out1 / d w = [b, b], / d b = sum(w). With
  // respect to c (N = 0): d out0 / d c = diag(w), d out1 / d c = 0.
  const std::vector<double> c{1.5, -0.5}, w{0.25, 2.0};
  const double b = -0.8;
  auto f = [](const Array& cv, const Params& p) {
    return std::pair{cv * p.weight + p.bias, p.bias * tj::sum(p.weight)};
  };
  const Array cv = tj::array(c, {2});
  const Params p{tj::array(w, {2}), tj::full({}, b, DType::f64)};
  for (const auto& j : {tj::jacfwd<1>(f)(cv, p), tj::jacrev<1>(f)(cv, p)}) {
    ASSERT_EQ(j.size(), 2u);
    ASSERT_EQ(j.at("[0]").weight.shape(), (Shape{2, 2}));
    ASSERT_EQ(j.at("[0]").bias.shape(), (Shape{2}));
    ASSERT_EQ(j.at("[1]").weight.shape(), (Shape{2}));
    ASSERT_EQ(j.at("[1]").bias.shape(), (Shape{}));
    expect_close(j.at("[0]").weight, {c[0], 0, 0, c[1]}, 0);
    expect_close(j.at("[0]").bias, {1, 1}, 0);
    expect_close(j.at("[1]").weight, {b, b}, 0);
    expect_close(j.at("[1]").bias, {w[0] + w[1]}, 0);
  }
  for (const auto& j : {tj::jacfwd<0>(f)(cv, p), tj::jacrev<0>(f)(cv, p)}) {
    ASSERT_EQ(j.first.shape(), (Shape{2, 2}));
    ASSERT_EQ(j.second.shape(), (Shape{2}));
    expect_close(j.first, {w[0], 0, 0, w[1]}, 0);
    expect_close(j.second, {0, 0}, 0);
  }
}

TEST(Jacobian, NestedResultShapesForVectorLeaves) {
  // w [2], b [3]. f(p) = [outer(w, b), sum(b)]: d (w_i b_j) / d w_k = delta_ik b_j ([2, 3] +
  // [2]), / d b_k = w_i delta_jk ([2, 3] + [3]); d sum(b) / d w = 0 ([2]), / d b = 1 ([3]).
  const std::vector<double> w{0.5, -2}, b{1, 3, -0.5};
  auto f = [](const Params& p) {
    return std::vector<Array>{tj::reshape(p.weight, {2, 1}) * p.bias, tj::sum(p.bias)};
  };
  std::vector<double> dw, db;
  for (size_t i = 0; i < 2; ++i)
    for (size_t jj = 0; jj < 3; ++jj)
      for (size_t k = 0; k < 3; ++k) {
        if (k < 2) dw.push_back(i == k ? b[jj] : 0);
        db.push_back(jj == k ? w[i] : 0);
      }
  const Params p{tj::array(w, {2}), tj::array(b, {3})};
  for (const auto& j : {tj::jacfwd(f)(p), tj::jacrev(f)(p)}) {
    ASSERT_EQ(j.size(), 2u);
    ASSERT_EQ(j.at("[0]").weight.shape(), (Shape{2, 3, 2}));
    ASSERT_EQ(j.at("[0]").bias.shape(), (Shape{2, 3, 3}));
    ASSERT_EQ(j.at("[1]").weight.shape(), (Shape{2}));
    ASSERT_EQ(j.at("[1]").bias.shape(), (Shape{3}));
    expect_close(j.at("[0]").weight, dw, 0);
    expect_close(j.at("[0]").bias, db, 0);
    expect_close(j.at("[1]").weight, {0, 0}, 0);
    expect_close(j.at("[1]").bias, {1, 1, 1}, 0);
  }
}

TEST(Hessian, VectorLeavesGiveOutByInBlocks) {
  // L(p) = sum(w)^2 sum(b) over w [2], b [3]: d2 L / d w_i d w_k = 2 sum(b), / d w_i d b_j =
  // 2 sum(w), / d b d b = 0.
  const std::vector<double> w{0.5, -2}, b{1, 3, -0.5};
  const double sw = w[0] + w[1], sb = b[0] + b[1] + b[2];
  auto loss = [](const Params& p) { return tj::square(tj::sum(p.weight)) * tj::sum(p.bias); };
  const auto h = tj::hessian(loss)(Params{tj::array(w, {2}), tj::array(b, {3})});
  ASSERT_EQ(h.at(".weight").weight.shape(), (Shape{2, 2}));
  ASSERT_EQ(h.at(".weight").bias.shape(), (Shape{2, 3}));
  ASSERT_EQ(h.at(".bias").weight.shape(), (Shape{3, 2}));
  ASSERT_EQ(h.at(".bias").bias.shape(), (Shape{3, 3}));
  expect_close(h.at(".weight").weight, std::vector<double>(4, 2 * sb), 1e-12);
  expect_close(h.at(".weight").bias, std::vector<double>(6, 2 * sw), 1e-12);
  expect_close(h.at(".bias").weight, std::vector<double>(6, 2 * sw), 1e-12);
  expect_close(h.at(".bias").bias, std::vector<double>(9, 0), 0);
}

// A Jacobian w.r.t. integers, or jacrev of an integer output, is a TypeError naming the
// transform, the leaf and its type (JAX raises for both); grad says the same of its arguments.
TEST(Jacobian, IntegerArgumentsAndJacrevOfIntegerOutputsAreTypeErrors) {
  auto twice = [](const Array& x) { return x * 2; };
  auto message = [](auto&& call) {
    try {
      call();
    } catch (const tj::TypeError& e) {
      return std::string(e.what());
    }
    return std::string("no TypeError");
  };
  const std::string fwd = message([&] { tj::jacfwd(twice)(tj::arange(3)); });
  EXPECT_NE(fwd.find("[jacfwd] argument 0 is i32[3]"), std::string::npos) << fwd;
  EXPECT_NE(fwd.find("tj::astype"), std::string::npos) << fwd;
  const std::string rev = message([&] { tj::jacrev(twice)(tj::arange(3)); });
  EXPECT_NE(rev.find("[jacrev] argument 0 is i32[3]"), std::string::npos) << rev;
  const std::string pytree = message([&] {
    tj::jacfwd([](const Params& p) { return p.weight * 2.f; })(Params{tj::ones({2}), tj::arange(2)});
  });
  EXPECT_NE(pytree.find("argument 0 leaf .bias is i32[2]"), std::string::npos) << pytree;
  const std::string out = message([] {
    tj::jacrev([](const Array& x) { return tj::astype(x * 3.f, DType::i32); })(tj::ones({2}));
  });
  EXPECT_NE(out.find("[jacrev] the output is i32[2]"), std::string::npos) << out;
  // Float arguments with an integer argument elsewhere are fine: d(x * n)/dx = n on the diagonal.
  const Array j = tj::jacfwd([](const Array& x, const Array& n) { return x * astype(n, DType::f32); })(
      tj::ones({2}), tj::full({2}, 3, DType::i32));
  expect_close(j, {3, 0, 0, 3}, 0);
}

}  // namespace jacobian_test

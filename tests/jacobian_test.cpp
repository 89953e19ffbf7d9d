// jacfwd, jacrev and hessian against hand derivations: the seed's loss, softmax and its
// cross-entropy, a two-layer tanh network, a pytree argument; jacfwd == jacrev throughout.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rule_cases.h"

namespace jacobian_test {

using namespace transform_cases;  // NOLINT: the shared test vocabulary

struct Params {
  Array weight, bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

// The seed's loss, with its parameters packed into theta = [weight, bias].
Array seed_loss(const Params& p, const Array& x, const Array& y) {
  return tj::mean(tj::square(p.weight * x + p.bias - y));
}

TEST(Hessian, SeedLossByHand) {
  // L = 1/n sum (w x_i + b - y_i)^2, so H = 2/n [[sum x^2, sum x], [sum x, n]], whatever w, b.
  const std::vector<double> xs{0.5, -1, 2, 3};
  const Array x = tj::array(xs, {4}), y = tj::array(std::vector<double>{1, 0, 2, -1}, {4});
  auto loss = [&](const Array& theta) { return seed_loss(Params{theta[0], theta[1]}, x, y); };
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

}  // namespace jacobian_test

// tj::custom_vjp: the user's bwd is what grad uses (checked with a bwd that differs from the
// true derivative on purpose), stable logsumexp and a norm safe at zero, pytree arguments,
// jit with and without AD, second order through bwd, and the errors.
#include <gtest/gtest.h>

#include <cmath>

#include "rule_cases.h"
#include "throw_message.h"

namespace custom_vjp_test {

using namespace transform_cases;  // NOLINT: the shared test vocabulary

Array lse(const Array& x) {
  const Array m = tj::stop_gradient(tj::max(x));
  return m + tj::log(tj::sum(tj::exp(x - m)));
}
Array softmax(const Array& x) {
  const Array e = tj::exp(x - tj::max(x));
  return e / tj::sum(e);
}

// logsumexp whose bwd is ct * softmax(x), with x kept as the residual; `scale` (1 for the true
// derivative) lets a test tell the user's bwd from the derivative of f.
auto stable_logsumexp(double scale) {
  return tj::custom_vjp(
      [](const Array& x) { return lse(x); },
      [](const Array& x) { return std::pair{lse(x), x}; },
      [scale](const Array& x, const Array& ct) { return std::tuple{ct * softmax(x) * scale}; });
}

TEST(CustomVjp, StableLogsumexpAtLargeInputsUnderJitGrad) {
  // At x = [1000, 1000, 999]: lse = 1000 + log(2 + e^-1), grad = [1, 1, e^-1] / (2 + e^-1).
  const Array x = tj::array(std::vector<double>{1000, 1000, 999}, {3});
  const double z = 2 + std::exp(-1.0);
  auto f = stable_logsumexp(1.0);
  expect_close(f(x), {1000 + std::log(z)}, 1e-15);
  expect_close(tj::jit(f)(x), {1000 + std::log(z)}, 1e-15);
  const std::vector<double> want{1 / z, 1 / z, std::exp(-1.0) / z};
  expect_close(tj::grad(f)(x), want, 1e-12);
  expect_close(tj::jit(tj::grad(f))(x), want, 1e-12);
  // f32 too: no overflow anywhere.
  expect_close(tj::jit(tj::grad(f))(tj::astype(x, DType::f32)), want, 1e-6);
}

TEST(CustomVjp, GradUsesTheUsersBwdNotTheDerivativeOfF) {
  // A bwd three times the true derivative: grad follows bwd, eagerly and under jit.
  const Array x = tj::array(std::vector<double>{0.5, -1, 2}, {3});
  auto f = stable_logsumexp(3.0);
  double s = 0;
  for (double v : {0.5, -1.0, 2.0}) s += std::exp(v);
  const std::vector<double> want{3 * std::exp(0.5) / s, 3 * std::exp(-1.0) / s, 3 * std::exp(2.0) / s};
  expect_close(tj::grad(f)(x), want, 1e-12);
  expect_close(tj::jit(tj::grad(f))(x), want, 1e-12);
  // value_and_grad's value is f's.
  auto [v, g] = tj::value_and_grad(f)(x);
  expect_close(v, {std::log(s)}, 1e-12);
  expect_close(g, want, 1e-12);
}

TEST(CustomVjp, NormSafeAtZero) {
  // d|x|/dx = x / |x| is 0/0 at x = 0; a bwd that defines it as 0 there keeps NaN out.
  auto norm = tj::custom_vjp(
      [](const Array& x) { return tj::sqrt(tj::sum(x * x)); },
      [](const Array& x) {
        const Array n = tj::sqrt(tj::sum(x * x));
        return std::pair{n, std::pair{x, n}};
      },
      [](const std::pair<Array, Array>& res, const Array& ct) {
        const auto& [x, n] = res;
        return std::tuple{tj::where(n > 0, ct * x / tj::where(n > 0, n, 1), 0)};
      });
  expect_close(tj::grad(norm)(tj::zeros({3}, DType::f64)), {0, 0, 0}, 0);
  expect_close(tj::jit(tj::grad(norm))(tj::array(std::vector<double>{3, 4}, {2})), {0.6, 0.8}, 1e-15);
  // The plain function's gradient at zero is NaN: the custom rule is what fixed it.
  const Array plain = tj::grad([](const Array& x) { return tj::sqrt(tj::sum(x * x)); })(tj::zeros({3}, DType::f64));
  EXPECT_TRUE(std::isnan(values(plain)[0]));
}

struct Params {
  Array weight, bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

TEST(CustomVjp, PytreeArgumentsAndSeveralArguments) {
  // f(p, x) = sum(w x + b): d/dw = sum(x), d/db = n, d/dx = w; bwd spells exactly that.
  auto f = tj::custom_vjp(
      [](const Params& p, const Array& x) { return tj::sum(p.weight * x + p.bias); },
      [](const Params& p, const Array& x) {
        return std::pair{tj::sum(p.weight * x + p.bias), std::pair{p.weight, x}};
      },
      [](const std::pair<Array, Array>& res, const Array& ct) {
        const auto& [w, x] = res;
        return std::tuple{Params{ct * tj::sum(x), ct * static_cast<double>(x.size())}, ct * tj::ones_like(x) * w};
      });
  const Params p{tj::full({}, 2.0, DType::f64), tj::full({}, 0.5, DType::f64)};
  const Array x = tj::array(std::vector<double>{1, 2, 3}, {3});
  const Params g = tj::jit(tj::grad(f))(p, x);
  expect_close(g.weight, {6}, 0);
  expect_close(g.bias, {3}, 0);
  expect_close(tj::grad<1>(f)(p, x), {2, 2, 2}, 0);
}

TEST(CustomVjp, OneEquationInTheTraceAndThePrimalUnderJit) {
  auto f = stable_logsumexp(1.0);
  auto ir = tj::make_ir(f)(tj::zeros({4}));
  EXPECT_EQ(count_prim(ir.function(), Prim::kCustomVjp), 1);
  const std::string text = ir.str();
  for (const char* part : {"custom_vjp", "fn=", "fwd=", "bwd="})
    EXPECT_NE(text.find(part), std::string::npos) << part << " in " << text;
  // Inside a larger jitted program, without AD: f's value.
  auto g = tj::jit([&](const Array& x) { return f(x) * 2 + 1; });
  expect_close(g(tj::zeros({4}, DType::f64)), {2 * std::log(4.0) + 1}, 1e-12);
}

TEST(CustomVjp, SecondOrderDifferentiatesThroughBwd) {
  // grad lse = softmax(x) (computed by bwd); its Jacobian diag(p) - p p^T.
  auto f = stable_logsumexp(1.0);
  const std::vector<double> xs{0.2, -0.4, 1.1};
  const Array x = tj::array(xs, {3});
  double s = 0;
  for (double v : xs) s += std::exp(v);
  std::vector<double> p, want;
  for (double v : xs) p.push_back(std::exp(v) / s);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) want.push_back(p[i] * ((i == j) - p[j]));
  expect_close(tj::jacrev(tj::grad(f))(x), want, 1e-12);
}

TEST(CustomVjpErrors, BwdOfTheWrongShapeOrStructure) {
  auto wrong_shape = tj::custom_vjp(
      [](const Array& x) { return tj::sum(x); },
      [](const Array& x) { return std::pair{tj::sum(x), x}; },
      [](const Array& x, const Array& ct) { return std::tuple{tj::sum(x) * ct}; });
  const std::string m = ThrowMessage<tj::TypeError>([&] { wrong_shape(tj::ones({3})); });
  for (const char* part : {"[custom_vjp]", "bwd", "f32[]", "argument 0", "f32[3]"})
    EXPECT_NE(m.find(part), std::string::npos) << part << " in " << m;

  auto wrong_leaf = tj::custom_vjp(
      [](const Params& p) { return p.weight * p.bias; },
      [](const Params& p) { return std::pair{p.weight * p.bias, p}; },
      [](const Params& p, const Array& ct) { return std::tuple{Params{ct * p.bias, tj::ones({2})}}; });
  const Params p{tj::ones({}), tj::ones({})};
  const std::string m2 = ThrowMessage<tj::TypeError>([&] { tj::grad(wrong_leaf)(p); });
  for (const char* part : {"[custom_vjp]", "leaf .bias", "f32[2]"})
    EXPECT_NE(m2.find(part), std::string::npos) << part << " in " << m2;

  auto wrong_fwd = tj::custom_vjp(
      [](const Array& x) { return tj::sum(x); }, [](const Array& x) { return std::pair{x, x}; },
      [](const Array&, const Array& ct) { return std::tuple{ct}; });
  const std::string m3 = ThrowMessage<tj::TypeError>([&] { wrong_fwd(tj::ones({3})); });
  EXPECT_NE(m3.find("fwd"), std::string::npos) << m3;
}

TEST(CustomVjp, VmapKeepsTheUsersBwd) {
  // Rows of X: vmap(f) is lse per row; per-example gradients under jit(vmap(grad)) follow the
  // (scaled) bwd: 3 softmax(row).
  const std::vector<double> xs{0.5, -1, 2, 0, 1, -0.5};
  const Array X = tj::array(xs, {2, 3});
  auto f = stable_logsumexp(3.0);
  std::vector<double> lses, want;
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int j = 0; j < 3; ++j) s += std::exp(xs[static_cast<size_t>(3 * r + j)]);
    lses.push_back(std::log(s));
    for (int j = 0; j < 3; ++j) want.push_back(3 * std::exp(xs[static_cast<size_t>(3 * r + j)]) / s);
  }
  expect_close(tj::vmap(f)(X), lses, 1e-12);
  expect_close(tj::jit(tj::vmap(tj::grad(f)))(X), want, 1e-12);
  expect_close(tj::grad([&](const Array& x) { return tj::sum(tj::vmap(f)(x)); })(X), want, 1e-12);
  // An argument shared by the lanes gets the sum of the lanes' cotangents: for
  // g(x, w) = sum(x * w) with bwd (ct w, ct x), d/dw sum_r g(X_r, w) = the column sums of X.
  auto g = tj::custom_vjp([](const Array& x, const Array& w) { return tj::sum(x * w); },
                          [](const Array& x, const Array& w) { return std::pair{tj::sum(x * w), std::pair{x, w}}; },
                          [](const std::pair<Array, Array>& r, const Array& ct) {
                            return std::tuple{ct * r.second, ct * r.first};
                          });
  auto total = [&](const Array& w) { return tj::sum(tj::vmap(g, {.in_axes = {0, std::nullopt}})(X, w)); };
  expect_close(tj::grad(total)(tj::ones({3}, DType::f64)), {0.5, 0, 1.5}, 1e-12);
}

TEST(CustomVjpErrors, JvpAndClosedOverValues) {
  auto f = stable_logsumexp(1.0);
  const Array x = tj::ones({3});
  const std::string jvp = ThrowMessage<tj::Error>([&] { tj::jvp(f, std::tuple{x}, std::tuple{x}); });
  EXPECT_NE(jvp.find("forward mode"), std::string::npos) << jvp;
  // Differentiating a value the custom function closes over: its bwd has no cotangent for it.
  const std::string closed = ThrowMessage<tj::Error>([&] {
    tj::grad([&](const Array& y) {
      auto g = tj::custom_vjp([&](const Array& a) { return tj::sum(a * y); },
                              [&](const Array& a) { return std::pair{tj::sum(a * y), a}; },
                              [](const Array& a, const Array& ct) { return std::tuple{ct * a}; });
      return g(x);
    })(tj::ones({3}));
  });
  EXPECT_NE(closed.find("closes over"), std::string::npos) << closed;
  // Still usable afterwards.
  expect_close(tj::grad(f)(tj::zeros({2})), {0.5, 0.5}, 1e-7);
}

}  // namespace custom_vjp_test

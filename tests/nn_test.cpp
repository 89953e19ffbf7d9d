// tj::nn against values and derivatives worked out by hand (or in double precision here), at
// ordinary and at extreme inputs, eagerly and jitted, and against f64 finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tracejit/tracejit.h"

namespace tj = tracejit;
namespace nn = tracejit::nn;
using tj::Array;
using tj::DType;

namespace {

std::vector<float> floats(const Array& a) { return a.to_vector<float>(); }

void ExpectNear(const Array& a, const std::vector<double>& want, double tol) {
  std::vector<double> got = tj::astype(a, DType::f64).to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << "element " << i;
    } else {
      EXPECT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
    }
  }
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// The eager and the jitted result of f(x).
template <class F>
std::vector<Array> both(F f, const Array& x) {
  return {f(x), tj::jit(f)(x)};
}

TEST(Nn, Relu) {
  const Array x = tj::array({-1.f, 0.f, 2.f});
  for (const Array& r : both([](const Array& v) { return nn::relu(v); }, x))
    EXPECT_EQ(floats(r), (std::vector<float>{0, 0, 2}));
  // jax.nn.relu's derivative is 0 at 0.
  EXPECT_EQ(floats(tj::grad([](const Array& v) { return tj::sum(nn::relu(v)); })(x)),
            (std::vector<float>{0, 0, 1}));
  EXPECT_EQ(nn::relu(tj::array({-3, 4})).dtype(), DType::i32);
}

TEST(Nn, SigmoidIsAccurateInBothTailsWithFiniteGradients) {
  const std::vector<float> xs = {-1e4f, -20.f, -1.f, 0.f, 1.f, 20.f, 1e4f};
  std::vector<double> want, dwant;
  for (float v : xs) {
    want.push_back(sigmoid(v));
    dwant.push_back(sigmoid(v) * (1 - sigmoid(v)));
  }
  for (const Array& r : both([](const Array& v) { return nn::sigmoid(v); }, tj::array(xs)))
    ExpectNear(r, want, 1e-6);
  auto g = tj::grad([](const Array& v) { return tj::sum(nn::sigmoid(v)); });
  ExpectNear(g(tj::array(xs)), dwant, 1e-6);  // 0.25 at 0, 0 (not NaN) at +-1e4
  ExpectNear(tj::jit(g)(tj::array(xs)), dwant, 1e-6);
}

TEST(Nn, SoftplusAndItsDerivativeSigmoid) {
  const std::vector<float> xs = {-1000.f, -2.f, 0.f, 3.f, 1000.f};
  std::vector<double> want, dwant;
  for (float v : xs) {
    want.push_back(v > 0 ? v + std::log1p(std::exp(-double(v))) : std::log1p(std::exp(double(v))));
    dwant.push_back(sigmoid(v));
  }
  for (const Array& r : both([](const Array& v) { return nn::softplus(v); }, tj::array(xs)))
    ExpectNear(r, want, 1e-6);
  ExpectNear(tj::grad([](const Array& v) { return tj::sum(nn::softplus(v)); })(tj::array(xs)), dwant, 1e-6);
}

TEST(Nn, GeluBothForms) {
  const double c = std::sqrt(2 / M_PI);
  auto tanh_form = [&](double x) { return 0.5 * x * (1 + std::tanh(c * (x + 0.044715 * x * x * x))); };
  const std::vector<float> xs = {-3.f, -1.f, 0.f, 1.f, 2.5f, 1e4f};
  std::vector<double> approx, exact;
  for (float v : xs) {
    approx.push_back(tanh_form(v));
    exact.push_back(0.5 * v * std::erfc(-v / std::sqrt(2.0)));
  }
  ExpectNear(nn::gelu(tj::array(xs)), approx, 1e-6);
  ExpectNear(tj::jit([](const Array& v) { return nn::gelu(v, false); })(tj::array(xs)), exact, 1e-6);
  EXPECT_NEAR(nn::gelu(Array(1.0), false).item<double>(), 0.8413447460685429, 1e-6);
  tj::check_grads([](const Array& v) { return nn::gelu(v); }, std::tuple{tj::array({-1.5, 0.3, 2.0})});
  tj::check_grads([](const Array& v) { return nn::gelu(v, false); }, std::tuple{tj::array({-1.5, 0.3, 2.0})});
}

TEST(Nn, SoftmaxStableAtLargeInputs) {
  for (const Array& r : both([](const Array& v) { return nn::softmax(v); }, tj::array({1e4f, -1e4f})))
    EXPECT_EQ(floats(r), (std::vector<float>{1, 0}));
  ExpectNear(nn::softmax(tj::array({1000.f, 1000.f})), {0.5, 0.5}, 1e-7);
  // Row-wise along axis 0 of a 2x2: columns [1, 3] and [2, 4].
  const double a = 1 / (1 + std::exp(2.0));
  ExpectNear(nn::softmax(tj::array({1.f, 2.f, 3.f, 4.f}, {2, 2}), 0), {a, a, 1 - a, 1 - a}, 1e-6);
  // d softmax(x)_0 / dx = s0 (e0 - s): zero at saturation, finite everywhere.
  auto g = tj::grad([](const Array& v) { return nn::softmax(v)[0]; });
  EXPECT_EQ(floats(g(tj::array({1e4f, -1e4f}))), (std::vector<float>{0, 0}));
  ExpectNear(g(tj::array({0.f, 0.f})), {0.25, -0.25}, 1e-7);
  tj::check_grads([](const Array& v) { return nn::softmax(v); }, std::tuple{tj::array({0.1, -2.0, 1.5})});
}

TEST(Nn, LogSoftmaxAndLogsumexp) {
  ExpectNear(nn::log_softmax(tj::array({1e4f, -1e4f})), {0, -2e4}, 1e-7);
  for (const Array& r : both([](const Array& v) { return nn::logsumexp(v); }, tj::array({1000.f, 1000.f, 1000.f})))
    ExpectNear(r, {1000 + std::log(3.0)}, 1e-7);
  // The gradient of logsumexp is the softmax: 1/3 each, finite at 1000s.
  ExpectNear(tj::grad([](const Array& v) { return nn::logsumexp(v); })(tj::array({1000.f, 1000.f, 1000.f})),
             {1 / 3.0, 1 / 3.0, 1 / 3.0}, 1e-6);
  const double ninf = -std::numeric_limits<double>::infinity();
  ExpectNear(nn::logsumexp(tj::array({ninf, ninf})), {ninf}, 0);
  // Over axis 1 of [[0, log 3], [5, 5]]: log 4 and 5 + log 2.
  ExpectNear(nn::logsumexp(tj::array({0.0, std::log(3.0), 5.0, 5.0}, {2, 2}), {1}),
             {std::log(4.0), 5 + std::log(2.0)}, 1e-12);
  EXPECT_EQ(nn::logsumexp(tj::arange(3)).dtype(), DType::f32);  // ints compute in f32
  tj::check_grads([](const Array& v) { return nn::log_softmax(v, 0); }, std::tuple{tj::array({0.5, -1.0, 2.0}, {3, 1})});
  tj::check_grads([](const Array& v) { return nn::logsumexp(v, {0}); }, std::tuple{tj::array({0.5, -1.0, 2.0, 0.0}, {2, 2})}, 2);
  EXPECT_THROW(nn::softmax(tj::ones({2}), 3), tj::IndexError);
}

}  // namespace

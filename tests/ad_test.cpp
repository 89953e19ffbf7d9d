// Reverse-mode AD (tracejit/ad.h, src/ad/): every VJP rule against central finite differences,
// composite functions against hand-derived gradients, higher-order and jit compositions, vjp
// with non-scalar outputs, the error messages, and the IR that make_ir(grad(f)) records.
//
// Finite differences: f64, central differences with step kEps = 1e-6 at seeded random points;
// their truncation error is O(eps^2) and their rounding error about 1e-16 / eps = 1e-10, so an
// AD gradient must agree to kTolF64 = 1e-6 relative (absolute below magnitude 1). The same
// rules evaluated in f32 are compared with that f64 reference to kTolF32 = 1e-4 relative: f32
// carries about 7 digits and the functions here chain a few operations.
#include "tracejit/ad.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ad/vjp.h"
#include "ir/ir.h"
#include "tracejit/tracejit.h"
#include "rule_cases.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::Shape;
using tj::ir::Prim;
using transform_cases::Input;
using transform_cases::RuleCase;
using transform_cases::count_prim;
using transform_cases::random_array;
using transform_cases::values;
using transform_cases::rule_cases;

namespace ad_test {

struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

struct Mlp {
  Array w1, b1, w2, b2;
};
TRACEJIT_PYTREE(Mlp, w1, b1, w2, b2);

struct Mixed {
  Array weight;
  Array steps;  // i32
};
TRACEJIT_PYTREE(Mixed, weight, steps);

}  // namespace ad_test

namespace {

using ad_test::Mixed;
using ad_test::Mlp;
using ad_test::Params;

constexpr double kEps = 1e-6;
constexpr double kTolF64 = 1e-6;
constexpr double kTolF32 = 1e-4;

using transform_cases::expect_close;
// A braced list of expected values ({0}, {1, 2}) picks this overload rather than Array's.
void expect_close(const Array& got, std::initializer_list<double> want, double tol,
                  const std::string& what = "") {
  expect_close(got, std::vector<double>(want), tol, what);
}
void expect_close(const Array& got, const Array& want, double tol, const std::string& what = "") {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  expect_close(got, values(want), tol, what);
}


// ---- Every rule against finite differences ----------------------------------------------

// Primitives whose rules are checked by dedicated tests below rather than by rule_cases().
const std::set<Prim> kCheckedElsewhere = {
    Prim::kConvert,     // AdConvert.*: f32 <-> f64 conversions cannot go through an f64-only FD
    Prim::kCustomVjp,   // custom_vjp_test.cpp: its rule is the user's bwd, not a derivative
    Prim::kAllSum,      // Distributed.GradThroughAllSum*: its rule throws (not differentiable)
};
// Primitives through which no cotangent flows (their vjp_rule is null); AdNonDifferentiable.*
// checks that each contributes nothing.
const std::set<Prim> kNonDifferentiable = {
    Prim::kSign, Prim::kStopGradient, Prim::kBitcast, Prim::kAnd, Prim::kOr,
    Prim::kXor,  Prim::kShl,          Prim::kShr,     Prim::kEq,  Prim::kNe,
    Prim::kLt,   Prim::kLe,           Prim::kGt,      Prim::kGe,  Prim::kIota, Prim::kDebugPrint,
};

class AdRuleTest : public ::testing::TestWithParam<RuleCase> {
 protected:
  // The gradient of sum(f(xs) * c), for a random cotangent c, in `dtype`, and the f64 central
  // differences of the same function at the same point.
  void check(DType dtype, double tol) {
    const RuleCase& rc = GetParam();
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(rc.name)));
    std::vector<Array> xs64;
    for (const Input& in : rc.inputs)
      xs64.push_back(random_array(rng, in.shape, in.lo, in.hi, DType::f64));
    const Array c64 = random_array(rng, rc.f(xs64).shape(), -1, 1, DType::f64);
    auto loss_in = [&](DType d) {
      return [f = rc.f, c = tj::astype(c64, d)](const std::vector<Array>& xs) {
        return tj::sum(f(xs) * c);
      };
    };
    std::vector<Array> xs;
    for (const Array& x : xs64) xs.push_back(tj::astype(x, dtype));
    const std::vector<Array> g = tj::grad(loss_in(dtype))(xs);
    ASSERT_EQ(g.size(), xs.size());

    auto loss64 = loss_in(DType::f64);
    for (size_t i = 0; i < xs64.size(); ++i) {
      ASSERT_EQ(g[i].dtype(), dtype);
      ASSERT_EQ(g[i].shape(), xs64[i].shape());
      std::vector<double> x = values(xs64[i]), fd(x.size());
      for (size_t j = 0; j < x.size(); ++j) {
        auto at = [&](double delta) {
          std::vector<double> moved = x;
          moved[j] += delta;
          std::vector<Array> args = xs64;
          args[i] = tj::array(moved, xs64[i].shape());
          return tj::sum(loss64(args)).item<double>();
        };
        fd[j] = (at(kEps) - at(-kEps)) / (2 * kEps);
      }
      expect_close(g[i], fd, tol, rc.name + " d/dx" + std::to_string(i));
    }
  }
};

TEST_P(AdRuleTest, MatchesFiniteDifferencesF64) { check(DType::f64, kTolF64); }
TEST_P(AdRuleTest, MatchesFiniteDifferencesF32) { check(DType::f32, kTolF32); }

TEST_P(AdRuleTest, CaseExercisesItsPrimitive) {
  const RuleCase& rc = GetParam();
  std::vector<Array> xs;
  for (const Input& in : rc.inputs) xs.push_back(tj::zeros(in.shape));
  tj::IR ir = tj::make_ir(rc.f)(xs);
  EXPECT_GT(count_prim(ir.function(), rc.prim), 0) << ir;
}

INSTANTIATE_TEST_SUITE_P(AdRules, AdRuleTest, ::testing::ValuesIn(rule_cases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.name;
                         });

// The walk over the primitive table: every primitive has a rule checked above, or is listed as
// non-differentiable, and vjp_rule agrees with that list.
TEST(AdRuleTable, EveryPrimitiveIsCheckedOrNonDifferentiable) {
  std::set<Prim> checked = kCheckedElsewhere;
  for (const RuleCase& rc : rule_cases()) checked.insert(rc.prim);
  for (Prim p : tj::ir::all_prims()) {
    const bool nondiff = kNonDifferentiable.count(p) > 0;
    EXPECT_NE(nondiff, checked.count(p) > 0) << tj::ir::prim_name(p);
    // call has no rule: the sweep inlines nested jit calls before it starts.
    EXPECT_EQ(nondiff || p == Prim::kCall, tj::ad::vjp_rule(p) == nullptr) << tj::ir::prim_name(p);
  }
}

// ---- Conversions and non-differentiable primitives ----------------------------------------

TEST(AdConvert, WideningAndNarrowingPassTheCotangentBack) {
  Array x = tj::array({0.5f, -1.25f, 2.f});
  Array c = tj::array({1.0, 2.0, -3.0});
  // d/dx sum(f64(x) * c) = c, back in f32.
  Array g = tj::grad([&](const Array& v) { return tj::sum(tj::astype(v, DType::f64) * c); })(x);
  EXPECT_EQ(g.dtype(), DType::f32);
  expect_close(g, {1, 2, -3}, 0);
  // d/dx sum(f32(x64)^2) = 2 f32(x), back in f64.
  Array x64 = tj::array({0.5, -1.25, 2.0});
  Array g64 =
      tj::grad([](const Array& v) { return tj::sum(tj::square(tj::astype(v, DType::f32))); })(x64);
  EXPECT_EQ(g64.dtype(), DType::f64);
  expect_close(g64, {1, -2.5, 4}, 0);
}

TEST(AdConvert, IntegerRoundTripCarriesNoCotangent) {
  // floor-like rounding through i32 is piecewise constant: only the direct x term counts.
  Array x = tj::array({1.7f, -2.2f});
  Array g = tj::grad([](const Array& v) {
    return tj::sum(v * 3 + tj::astype(tj::astype(v, DType::i32), DType::f32));
  })(x);
  expect_close(g, {3, 3}, 0);
}

TEST(AdNonDifferentiable, SignComparisonsAndIotaContributeNothing) {
  Array x = tj::array({-1.5f, 0.5f, 2.f});
  // sign(x) * x = |x| away from 0, but sign is treated as a constant: gradient sign(x).
  expect_close(tj::grad([](const Array& v) { return tj::sum(tj::sign(v) * v); })(x), {-1, 1, 1}, 0);
  // The comparison picks a branch but carries no derivative itself.
  expect_close(
      tj::grad([](const Array& v) {
        return tj::sum(v * tj::astype(v > 0, DType::f32) * tj::astype(tj::arange(3), DType::f32));
      })(x),
      {0, 1, 2}, 0);
}

TEST(AdNonDifferentiable, StopGradientEagerAndTraced) {
  Array x = tj::array({3.f, -2.f});
  auto f = [](const Array& v) { return tj::sum(v * tj::stop_gradient(v)); };
  expect_close(tj::grad(f)(x), {3, -2}, 0);  // not 2x
  expect_close(tj::jit(tj::grad(f))(x), {3, -2}, 0);
  // Fully stopped: zeros, not an error.
  expect_close(tj::grad([](const Array& v) { return tj::sum(tj::stop_gradient(v)); })(x), {0, 0},
               0);
}

TEST(AdNonDifferentiable, BitOperationsAndBitcastsCarryNoCotangent) {
  Array x = tj::array({1.5f, -0.25f});
  auto f = [](const Array& v) {
    Array bits = tj::bitcast(v, DType::u32);
    Array masked = ((bits >> Array(0u)) << Array(0u)) & Array(0xFFFFFFFFu);
    masked = (masked | Array(0u)) ^ Array(0u);
    return tj::sum(v * tj::bitcast(masked, DType::f32));  // a constant copy of v
  };
  expect_close(tj::grad(f)(x), {1.5, -0.25}, 0);
}

// ---- Ties and guards ------------------------------------------------------------------------

TEST(AdTies, MaximumAndMinimumSplitTiesEvenly) {
  Array x = tj::array({1.f, 2.f, 3.f});
  Array y = tj::array({1.f, 5.f, 3.f});
  auto [gx, gy] = tj::vjp([](const Array& a, const Array& b) { return tj::maximum(a, b); }, x, y)
                      .second(tj::ones({3}));
  expect_close(gx, {0.5, 0, 0.5}, 0);
  expect_close(gy, {0.5, 1, 0.5}, 0);
  // maximum(x, x) and minimum(x, x) are x: derivative 1.
  expect_close(
      tj::grad([](const Array& v) { return tj::sum(tj::maximum(v, v) + tj::minimum(v, v)); })(x),
      {2, 2, 2}, 0);
}

TEST(AdTies, ReduceMaxDividesAmongTies) {
  Array x = tj::array({1.f, 3.f, 3.f, 0.f, 2.f, 2.f}, {2, 3});
  expect_close(tj::grad([](const Array& v) { return tj::max(v); })(x), {0, 0.5, 0.5, 0, 0, 0}, 0);
  expect_close(tj::grad([](const Array& v) { return tj::sum(tj::max(v, {1})); })(x),
               {0, 0.5, 0.5, 0, 0.5, 0.5}, 0);
}

TEST(AdTies, PowGuardsAtZero) {
  // d/dx x^0 at x = 0 is 0, not nan; d/dy 0^y (y > 0) is 0, not nan.
  Array zero = tj::array({0.f});
  Array g = std::get<0>(
      tj::vjp([](const Array& a) { return tj::pow(a, 0.f); }, zero).second(tj::ones({1})));
  expect_close(g, {0}, 0);
  auto [gx, gy] =
      tj::vjp([](const Array& a, const Array& b) { return tj::pow(a, b); }, zero, tj::array({2.f}))
          .second(tj::ones({1}));
  expect_close(gx, {0}, 0);
  expect_close(gy, {0}, 0);
}

// ---- Composite functions against hand derivations --------------------------------------

Array seed_loss(const Params& p, const Array& x, const Array& y) {
  Array pred = p.weight * x + p.bias;
  return tj::mean(tj::square(pred - y));
}

struct SeedData {
  Params params;
  Array x, y;
};
SeedData seed_data(DType dtype = DType::f32) {
  std::mt19937 rng(7);
  return {{random_array(rng, {}, -1, 1, dtype), random_array(rng, {}, -1, 1, dtype)},
          random_array(rng, {128, 1}, -2, 2, dtype),
          random_array(rng, {128, 1}, -3, 3, dtype)};
}

TEST(AdComposite, SeedLossMatchesHandGradient) {
  SeedData d = seed_data(DType::f64);
  Params g = tj::grad(seed_loss)(d.params, d.x, d.y);
  Array r = d.params.weight * d.x + d.params.bias - d.y;
  expect_close(g.weight, tj::mean(r * d.x) * 2, 1e-12, "dL/dw");
  expect_close(g.bias, tj::mean(r) * 2, 1e-12, "dL/db");
  EXPECT_EQ(g.weight.shape(), Shape{});
}

TEST(AdComposite, SeedLossValueAndGradF32) {
  SeedData d = seed_data();
  auto [value, g] = tj::value_and_grad(seed_loss)(d.params, d.x, d.y);
  expect_close(value, seed_loss(d.params, d.x, d.y), 1e-6, "value");
  Array r = d.params.weight * d.x + d.params.bias - d.y;
  expect_close(g.weight, tj::mean(r * d.x) * 2, 1e-5, "dL/dw");
  expect_close(g.bias, tj::mean(r) * 2, 1e-5, "dL/db");
}

Array logsumexp(const Array& z, bool stop_max) {
  Array m = tj::max(z, {-1});
  if (stop_max) m = tj::stop_gradient(m);
  Array mb = tj::reshape(m, {z.shape()[0], 1});
  return m + tj::log(tj::sum(tj::exp(z - mb), {-1}));
}

Array softmax(const Array& z) {
  Array e = tj::exp(z - tj::reshape(tj::max(z, {-1}), {z.shape()[0], 1}));
  return e / tj::reshape(tj::sum(e, {-1}), {z.shape()[0], 1});
}

TEST(AdComposite, LogsumexpGradientIsSoftmax) {
  std::mt19937 rng(3);
  Array z = random_array(rng, {3, 5}, -4, 4, DType::f64);
  for (bool stop_max : {false, true}) {
    Array g = tj::grad([&](const Array& v) { return tj::sum(logsumexp(v, stop_max)); })(z);
    expect_close(g, softmax(z), 1e-12, stop_max ? "stopped max" : "differentiated max");
  }
}

TEST(AdComposite, SoftmaxCrossEntropy) {
  std::mt19937 rng(4);
  Array logits = random_array(rng, {4, 5}, -3, 3, DType::f64);
  Array labels = tj::astype(tj::array({1, 0, 4, 2}), DType::f64);
  Array onehot = tj::astype(
      tj::reshape(labels, {4, 1}) == tj::astype(tj::reshape(tj::arange(5), {1, 5}), DType::f64),
      DType::f64);
  auto loss = [&](const Array& z) {
    Array log_probs = z - tj::reshape(logsumexp(z, false), {4, 1});
    return -tj::mean(tj::sum(onehot * log_probs, {1}));
  };
  // dL/dz = (softmax(z) - onehot) / batch.
  expect_close(tj::grad(loss)(logits), (softmax(logits) - onehot) / 4, 1e-12);
}

// The hand-derived gradient of mean(square(tanh(x w1 + b1) w2 + b2 - y)).
Mlp mlp_hand_gradient(const Mlp& p, const Array& x, const Array& y) {
  Array h = tj::tanh(tj::matmul(x, p.w1) + p.b1);
  Array r = tj::matmul(h, p.w2) + p.b2 - y;
  Array dout = r * 2 / static_cast<double>(r.size());
  Array dz1 = tj::matmul(dout, tj::transpose(p.w2, {1, 0})) * (1 - h * h);
  return {tj::matmul(tj::transpose(x, {1, 0}), dz1), tj::sum(dz1, {0}),
          tj::matmul(tj::transpose(h, {1, 0}), dout), tj::sum(dout, {0})};
}

Mlp mlp_params(std::mt19937& rng) {
  return {random_array(rng, {3, 4}, -1, 1, DType::f64), random_array(rng, {4}, -1, 1, DType::f64),
          random_array(rng, {4, 1}, -1, 1, DType::f64), random_array(rng, {1}, -1, 1, DType::f64)};
}

TEST(AdComposite, TwoLayerTanhNetworkWithMapParameters) {
  std::mt19937 rng(5);
  Mlp p = mlp_params(rng);
  Array x = random_array(rng, {5, 3}, -2, 2, DType::f64);
  Array y = random_array(rng, {5, 1}, -1, 1, DType::f64);
  std::map<std::string, Array> params = {{"w1", p.w1}, {"b1", p.b1}, {"w2", p.w2}, {"b2", p.b2}};
  auto loss = [](const std::map<std::string, Array>& q, const Array& xs, const Array& ys) {
    Array h = tj::tanh(tj::matmul(xs, q.at("w1")) + q.at("b1"));
    return tj::mean(tj::square(tj::matmul(h, q.at("w2")) + q.at("b2") - ys));
  };
  std::map<std::string, Array> g = tj::grad(loss)(params, x, y);
  Mlp want = mlp_hand_gradient(p, x, y);
  ASSERT_EQ(g.size(), 4u);
  expect_close(g.at("w1"), want.w1, 1e-12, "w1");
  expect_close(g.at("b1"), want.b1, 1e-12, "b1");
  expect_close(g.at("w2"), want.w2, 1e-12, "w2");
  expect_close(g.at("b2"), want.b2, 1e-12, "b2");
}

Array mlp_loss(const Mlp& p, const Array& x, const Array& y) {
  Array h = tj::tanh(tj::matmul(x, p.w1) + p.b1);
  return tj::mean(tj::square(tj::matmul(h, p.w2) + p.b2 - y));
}

TEST(AdComposite, TwoLayerTanhNetworkWithStructParameters) {
  std::mt19937 rng(6);
  Mlp p = mlp_params(rng);
  Array x = random_array(rng, {5, 3}, -2, 2, DType::f64);
  Array y = random_array(rng, {5, 1}, -1, 1, DType::f64);
  Mlp g = tj::grad(mlp_loss)(p, x, y);
  Mlp want = mlp_hand_gradient(p, x, y);
  expect_close(g.w1, want.w1, 1e-12, "w1");
  expect_close(g.b1, want.b1, 1e-12, "b1");
  expect_close(g.w2, want.w2, 1e-12, "w2");
  expect_close(g.b2, want.b2, 1e-12, "b2");
}

TEST(AdComposite, CotangentsAccumulateOverUses) {
  // f = x*x + sin(x)*x + x: f' = 2x + cos(x) x + sin(x) + 1.
  Array x = tj::array({0.3, -1.2});
  Array g = tj::grad([](const Array& v) { return tj::sum(v * v + tj::sin(v) * v + v); })(x);
  std::vector<double> want;
  for (double v : values(x)) want.push_back(2 * v + std::cos(v) * v + std::sin(v) + 1);
  expect_close(g, want, 1e-14);
}

// ---- Argument selection -------------------------------------------------------------------

TEST(AdArguments, CompileTimeIndexWorksForAnyArgumentTypes) {
  SeedData d = seed_data(DType::f64);
  auto f = [](const Array& x, const Params& p) { return seed_loss(p, x, x * 2); };
  Params g = tj::grad<1>(f)(d.x, d.params);
  Params want = tj::grad(seed_loss)(d.params, d.x, d.x * 2);
  expect_close(g.weight, want.weight, 1e-14);
  Array gx = tj::grad<0>(f)(d.x, d.params);
  EXPECT_EQ(gx.shape(), (Shape{128, 1}));
  auto [value, gb] = tj::value_and_grad<1>(f)(d.x, d.params);
  expect_close(value, seed_loss(d.params, d.x, d.x * 2), 1e-14);
  expect_close(gb.bias, want.bias, 1e-14);
}

TEST(AdArguments, RunTimeIndex) {
  auto f = [](const Array& a, const Array& b, const Array& c) { return tj::sum(a * b * b + c); };
  Array a = tj::array({1.f, 2.f}), b = tj::array({3.f, 4.f}), c = tj::array({5.f, 6.f});
  expect_close(tj::grad(f, 0)(a, b, c), {9, 16}, 0);
  expect_close(tj::grad(f, 1)(a, b, c), {6, 16}, 0);
  expect_close(tj::grad(f, 2)(a, b, c), {1, 1}, 0);
  auto [value, g] = tj::value_and_grad(f, 1)(a, b, c);
  expect_close(value, {9 + 32 + 11}, 0);
  expect_close(g, {6, 16}, 0);
  EXPECT_THROW(tj::grad(f, 3)(a, b, c), tj::IndexError);
  EXPECT_THROW(tj::grad(f, -1)(a, b, c), tj::IndexError);
}

TEST(AdArguments, UnreachedInputsGetZeros) {
  Array x = tj::array({1.f, 2.f});
  // Does not depend on x at all; depends on a constant and on an integer argument.
  Array g = tj::grad([](const Array& v, const Array& n) {
    return tj::sum(tj::astype(n, DType::f32)) * 2.f;
  })(x, tj::array({1, 2, 3}));
  EXPECT_EQ(g.dtype(), DType::f32);
  expect_close(g, {0, 0}, 0);
  // Returns the input itself, and a constant.
  expect_close(tj::grad([](const Array& v) { return v; })(tj::array(std::vector<float>{2.f}, {})),
               {1}, 0);
  expect_close(tj::grad([](const Array& v) { return Array(1.f); })(Array(2.f)), {0}, 0);
}

TEST(AdArguments, ConstantsAndClosuresAreNotDifferentiated) {
  Array k = tj::array({2.f, 3.f});
  Array x = tj::array({1.f, 1.f});
  expect_close(tj::grad([&](const Array& v) { return tj::sum(v * k * k); })(x), {4, 9}, 0);
}

// ---- Higher order ---------------------------------------------------------------------------

TEST(AdHigherOrder, SecondDerivatives) {
  const double x0 = 0.7;
  Array x(x0);
  auto sin_f = [](const Array& v) { return tj::sin(v); };
  auto cube = [](const Array& v) { return v * v * v; };
  auto cube_pow = [](const Array& v) { return tj::pow(v, 3.0); };
  auto tanh_f = [](const Array& v) { return tj::tanh(v); };
  auto exp2 = [](const Array& v) { return tj::exp(v * 2); };
  auto sqrt_f = [](const Array& v) { return tj::sqrt(v); };
  const double t = std::tanh(x0);
  EXPECT_NEAR(tj::grad(tj::grad(sin_f))(x).item<double>(), -std::sin(x0), 1e-14);
  EXPECT_NEAR(tj::grad(tj::grad(cube))(x).item<double>(), 6 * x0, 1e-14);
  EXPECT_NEAR(tj::grad(tj::grad(cube_pow))(x).item<double>(), 6 * x0, 1e-13);
  EXPECT_NEAR(tj::grad(tj::grad(tanh_f))(x).item<double>(), -2 * t * (1 - t * t), 1e-14);
  EXPECT_NEAR(tj::grad(tj::grad(exp2))(x).item<double>(), 4 * std::exp(2 * x0), 1e-13);
  EXPECT_NEAR(tj::grad(tj::grad(sqrt_f))(x).item<double>(), -0.25 * std::pow(x0, -1.5), 1e-13);
}

TEST(AdHigherOrder, ThirdDerivativeAndValueAndGradOfGrad) {
  Array x(0.4);
  auto sin_f = [](const Array& v) { return tj::sin(v); };
  EXPECT_NEAR(tj::grad(tj::grad(tj::grad(sin_f)))(x).item<double>(), -std::cos(0.4), 1e-14);
  auto [d1, d2] = tj::value_and_grad(tj::grad(sin_f))(x);
  EXPECT_NEAR(d1.item<double>(), std::cos(0.4), 1e-14);
  EXPECT_NEAR(d2.item<double>(), -std::sin(0.4), 1e-14);
}

TEST(AdHigherOrder, NoPerturbationConfusion) {
  // d/dx [ d/dy (x * y) at y = x ] = d/dx x = 1 (the inner grad closes over the outer x).
  auto f = [](const Array& x) { return tj::grad([&](const Array& y) { return x * y; })(x); };
  EXPECT_DOUBLE_EQ(tj::grad(f)(Array(3.0)).item<double>(), 1.0);
}

TEST(AdHigherOrder, HessianDiagonalOfAVectorFunction) {
  // f(x) = sum(x^3) / 3: gradient x^2, and d/dx sum(grad) = 2x.
  Array x = tj::array({1.0, -2.0, 0.5});
  auto f = [](const Array& v) { return tj::sum(v * v * v) / 3; };
  expect_close(tj::grad(f)(x), {1, 4, 0.25}, 1e-14);
  expect_close(tj::grad([&](const Array& v) { return tj::sum(tj::grad(f)(v)); })(x), {2, -4, 1},
               1e-14);
}

// ---- vjp ------------------------------------------------------------------------------------

TEST(AdVjp, NonScalarOutput) {
  Array x = tj::array({0.1, 0.2, 0.3});
  auto [y, vjp_fn] = tj::vjp([](const Array& v) { return tj::sin(v) * 2; }, x);
  expect_close(y, tj::sin(x) * 2, 0);
  Array ct = tj::array({1.0, -1.0, 0.5});
  auto [g] = vjp_fn(ct);
  expect_close(g, ct * tj::cos(x) * 2, 1e-15);
  // Called again with another cotangent: the forward values were kept.
  auto [g2] = vjp_fn(tj::ones({3}, DType::f64));
  expect_close(g2, tj::cos(x) * 2, 1e-15);
}

TEST(AdVjp, SeveralOutputsAndPrimals) {
  Array a = tj::array({1.f, 2.f}), b = tj::array({3.f, 4.f});
  auto [outs, vjp_fn] = tj::vjp(
      [](const Array& x, const Array& y) { return std::make_tuple(x * y, tj::sum(x + y)); }, a, b);
  expect_close(std::get<0>(outs), {3, 8}, 0);
  expect_close(std::get<1>(outs), {10}, 0);
  auto [ga, gb] = vjp_fn(std::make_tuple(tj::array({1.f, 10.f}), Array(2.f)));
  // a: ct0 * b + ct1; b: ct0 * a + ct1.
  expect_close(ga, {5, 42}, 0);
  expect_close(gb, {3, 22}, 0);
}

TEST(AdVjp, StructPrimalsAndIntegerLeaves) {
  Mixed m{tj::array({2.f, 3.f}), tj::array({4, 5})};
  auto [out, vjp_fn] =
      tj::vjp([](const Mixed& p) { return p.weight * tj::astype(p.steps, DType::f32); }, m);
  expect_close(out, {8, 15}, 0);
  auto [g] = vjp_fn(tj::array({1.f, 1.f}));
  expect_close(g.weight, {4, 5}, 0);
  EXPECT_EQ(g.steps.dtype(), DType::i32);  // integer leaves get (integer) zeros
  expect_close(g.steps, {0, 0}, 0);
}

TEST(AdVjp, InsideJit) {
  auto f = tj::jit([](const Array& x, const Array& ct) {
    auto [y, vjp_fn] = tj::vjp([](const Array& v) { return tj::exp(v); }, x);
    return std::get<0>(vjp_fn(ct)) + y;
  });
  Array x = tj::array({0.f, 1.f});
  expect_close(f(x, tj::array({2.f, 3.f})), {2 * 1 + 1, (3 + 1) * std::exp(1.0)}, 1e-6);
}

TEST(AdVjp, VjpFnOutlivingItsTraceThrowsTracerLeak) {
  std::function<std::tuple<Array>(const Array&)> leaked;
  tj::make_ir([&](const Array& x) {
    auto [y, vjp_fn] = tj::vjp([](const Array& v) { return tj::sin(v); }, x);
    leaked = vjp_fn;
    return y;
  })(tj::ones({2}));
  EXPECT_THROW(leaked(tj::ones({2})), tj::TracerLeakError);
}

// ---- Errors ---------------------------------------------------------------------------------

template <class E, class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception: ") + e.what();
  }
  return "no exception";
}

TEST(AdErrors, GradOfNonScalarOutput) {
  std::string msg = error_of<tj::ShapeError>(
      [] { tj::grad([](const Array& v) { return v * 2; })(tj::ones({3})); });
  EXPECT_EQ(msg,
            "[grad] needs a scalar float output, got f32[3]; use tj::vjp for non-scalar outputs");
  msg = error_of<tj::ShapeError>([] {
    tj::value_and_grad([](const Array& v) { return std::make_tuple(tj::sum(v), tj::sum(v)); })(
        tj::ones({3}));
  });
  EXPECT_NE(msg.find("[value_and_grad] needs a scalar float output, got a pytree with 2 leaves"),
            std::string::npos)
      << msg;
}

TEST(AdErrors, GradOfIntegerOutput) {
  std::string msg = error_of<tj::TypeError>([] {
    tj::grad([](const Array& v) { return tj::sum(tj::astype(v, DType::i32)); })(tj::ones({3}));
  });
  EXPECT_NE(msg.find("[grad] needs a scalar float output, got i32[]"), std::string::npos) << msg;
}

TEST(AdErrors, GradWithRespectToIntegerArgument) {
  std::string msg = error_of<tj::TypeError>([] {
    tj::grad([](const Array& v) { return tj::sum(tj::astype(v, DType::f32)); })(tj::arange(3));
  });
  EXPECT_NE(msg.find("[grad] argument 0 is i32; differentiate w.r.t. float arguments only"),
            std::string::npos)
      << msg;
  Mixed m{tj::ones({2}), tj::array({1, 2})};
  msg = error_of<tj::TypeError>([&] {
    tj::grad<1>([](const Array& x, const Mixed& p) { return tj::sum(p.weight * x); })(tj::ones({2}),
                                                                                      m);
  });
  EXPECT_NE(
      msg.find("[grad] argument 1 leaf .steps is i32; differentiate w.r.t. float arguments only"),
      std::string::npos)
      << msg;
}

TEST(AdErrors, VjpCotangentMismatch) {
  auto [y, vjp_fn] = tj::vjp([](const Array& v) { return v * 2; }, tj::ones({3}));
  EXPECT_EQ(error_of<tj::ShapeError>([&] { vjp_fn(tj::ones({2})); }),
            "[vjp] cotangent f32[2] does not match output f32[3]; pass a cotangent with the "
            "output's shape");
  EXPECT_EQ(error_of<tj::TypeError>([&] { vjp_fn(tj::ones({3}, DType::f64)); }),
            "[vjp] cotangent f64[3] does not match output f32[3]; pass a cotangent with the "
            "output's dtype");
  EXPECT_NE(error_of<tj::TreeError>([&] {
              vjp_fn(std::make_tuple(tj::ones({3})));
            }).find("[vjp] cotangent structure"),
            std::string::npos);
  // The function still works after the errors.
  expect_close(std::get<0>(vjp_fn(tj::ones({3}))), {2, 2, 2}, 0);
}

// ---- AD as an IR pass, and jit -----------------------------------------------------------

TEST(AdIr, MakeIrOfGradContainsForwardAndBackward) {
  SeedData d = seed_data();
  tj::IR ir = tj::make_ir(tj::grad(seed_loss))(d.params, d.x, d.y);
  const tj::ir::Function& fn = ir.function();
  ASSERT_EQ(fn.outputs.size(), 2u) << ir;  // Params{weight, bias}
  for (tj::ir::VarId v : fn.outputs) EXPECT_EQ(tj::ir::type_str(fn.type(v)), "f32[]") << ir;
  // Forward: one reduce_sum (the mean); backward: one per broadcast scalar parameter.
  EXPECT_EQ(count_prim(fn, Prim::kReduceSum), 3) << ir;
  // The mean's cotangent is broadcast back over the [128,1] residuals...
  EXPECT_GE(count_prim(fn, Prim::kBroadcast), 3) << ir;
  // The mean's cotangent, 1 / 128...
  EXPECT_NE(ir.str().find("div 1.0:f32[] 128.0:f32[]"), std::string::npos) << ir;
  // ...and the weight's gradient: reduce_sum(ct * x), x being input 2 (after weight and bias).
  auto defining = [&](tj::ir::VarId v) -> const tj::ir::Eqn& {
    for (const tj::ir::Eqn& e : fn.eqns)
      if (e.out[0] == v) return e;
    ADD_FAILURE() << "no equation defines var " << v;
    return fn.eqns.front();
  };
  const tj::ir::Eqn& reduce = defining(fn.outputs[0]);
  ASSERT_EQ(reduce.prim, Prim::kReduceSum) << ir;
  const tj::ir::Eqn& mul = defining(reduce.in[0]);
  ASSERT_EQ(mul.prim, Prim::kMul) << ir;
  EXPECT_TRUE(mul.in[0] == fn.inputs[2] || mul.in[1] == fn.inputs[2]) << ir;
}

TEST(AdIr, OnlyRequestedCotangentsAreComputed) {
  // Differentiating w.r.t. the weight alone: no cotangent is computed for x or y, so the only
  // muls by the cotangent chain are those the weight needs.
  SeedData d = seed_data();
  auto loss_w = [](const Array& w, const Array& x, const Array& y) {
    return tj::mean(tj::square(w * x - y));
  };
  tj::IR ir = tj::make_ir(tj::grad(loss_w))(d.params.weight, d.x, d.y);
  EXPECT_EQ(count_prim(ir.function(), Prim::kReduceSum), 2) << ir;
  EXPECT_EQ(count_prim(ir.function(), Prim::kNeg), 1) << ir;  // forward only: -y
}

TEST(AdJit, JitOfGradMatchesEager) {
  SeedData d = seed_data();
  auto jitted = tj::jit(tj::grad(seed_loss));
  Params want = tj::grad(seed_loss)(d.params, d.x, d.y);
  Params got = jitted(d.params, d.x, d.y);
  expect_close(got.weight, want.weight, 1e-5);
  expect_close(got.bias, want.bias, 1e-5);
  got = jitted(d.params, d.x, d.y);
  EXPECT_EQ(jitted.stats().traces, 1);
}

TEST(AdJit, SeedTrainingLoopConverges) {
  const float learning_rate = 0.05f;
  auto update = tj::jit([&](const Params& params, const Array& x, const Array& y) {
    Params g = tj::grad(seed_loss)(params, x, y);
    return tj::tree_map([&](const Array& p, const Array& dp) { return p - dp * learning_rate; },
                        params, g);
  });
  std::mt19937 rng(11);
  Array xs = random_array(rng, {128, 1}, -2, 2, DType::f32);
  Array ys = xs * 2 + (-1);
  Params params{tj::zeros({}), tj::zeros({})};
  for (int i = 0; i < 300; ++i) params = update(params, xs, ys);
  EXPECT_NEAR(params.weight.item<float>(), 2.f, 1e-3);
  EXPECT_NEAR(params.bias.item<float>(), -1.f, 1e-3);
}

TEST(AdJit, GradOfJitInlinesTheJittedFunction) {
  auto f = tj::jit([](const Array& v) { return tj::sum(tj::sin(v) * v); });
  Array x = tj::array({0.5f, -1.f});
  Array g = tj::grad(f)(x);
  std::vector<double> want;
  for (double v : values(x)) want.push_back(std::cos(v) * v + std::sin(v));
  expect_close(g, want, 1e-6);
  auto [value, g2] = tj::value_and_grad(f)(x);
  expect_close(value, f(x), 1e-6);
  expect_close(g2, want, 1e-6);
  // And jit(grad(jit(f))).
  expect_close(tj::jit(tj::grad(f))(x), want, 1e-6);
}

TEST(AdJit, JitOfSecondDerivative) {
  auto d2 = tj::jit(tj::grad(tj::grad([](const Array& v) { return tj::sin(v) * v; })));
  // (x sin x)'' = 2 cos x - x sin x.
  EXPECT_NEAR(d2(Array(0.3f)).item<float>(), 2 * std::cos(0.3) - 0.3 * std::sin(0.3), 1e-6);
}

TEST(AdJit, GradInsideJitClosingOverTracers) {
  // x is a tracer of the jit trace, captured by the inner function: not differentiated.
  auto f = tj::jit([](const Array& w, const Array& x) {
    return tj::grad([&](const Array& v) { return tj::sum(v * x * x); })(w);
  });
  expect_close(f(tj::array({1.f, 1.f}), tj::array({2.f, 3.f})), {4, 9}, 0);
}

// The backward pass of rule cases, jitted, matches the eager backward pass.
void check_jitted_rules() {
  for (const RuleCase& rc : rule_cases()) {
    std::mt19937 rng(1);
    std::vector<Array> xs;
    for (const Input& in : rc.inputs)
      xs.push_back(random_array(rng, in.shape, in.lo, in.hi, DType::f32));
    // The gradient of a linear function is a constant: no warning for that.
    auto loss = [f = rc.f](const std::vector<Array>& v) { return tj::sum(f(v)); };
    std::vector<Array> want = tj::grad(loss)(xs);
    std::vector<Array> got =
        tj::jit(tj::grad(loss), tj::JitOptions{.warn_constant_outputs = false})(xs);
    for (size_t i = 0; i < xs.size(); ++i) expect_close(got[i], want[i], 1e-5, rc.name);
  }
}

TEST(AdJit, EveryRuleCompiles) { check_jitted_rules(); }

}  // namespace

// Forward-mode AD (tracejit/jvp.h, src/ad/jvp*.cpp): every JVP rule against f64 central
// differences along a random tangent, jvp against vjp transposed (<jvp(f, x, t), c> equals
// <t, vjp(f, x)(c)>), hand-derived values, the compositions with jit, grad and itself, and
// the errors.
//
// Finite differences as in ad_test: f64, central, step 1e-6 along the tangent, agreeing to 1e-6
// relative; f32 runs of the same rules agree with the f64 reference to 1e-4.
#include "tracejit/jvp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "ad/jvp.h"
#include "rule_cases.h"
#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace {

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::Shape;
using tj::ir::Prim;
using transform_cases::expect_close;
using transform_cases::random_array;
using transform_cases::values;
using transform_cases::RuleCase;

constexpr double kEps = 1e-6;
constexpr double kTolF64 = 1e-6;
constexpr double kTolF32 = 1e-4;

double inner(const Array& a, const Array& b) {
  return tj::sum(tj::astype(a, DType::f64) * tj::astype(b, DType::f64)).item<double>();
}

// f(x + h t), elementwise in f64, for every input moved along its tangent.
std::vector<Array> moved(const std::vector<Array>& xs, const std::vector<Array>& ts, double h) {
  std::vector<Array> out;
  for (size_t i = 0; i < xs.size(); ++i) out.push_back(xs[i] + ts[i] * h);
  return out;
}

class JvpRuleTest : public ::testing::TestWithParam<RuleCase> {
 protected:
  void SetUp() override {
    const RuleCase& rc = GetParam();
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(rc.name)) + 1);
    for (const transform_cases::Input& in : rc.inputs) {
      xs64_.push_back(random_array(rng, in.shape, in.lo, in.hi, DType::f64));
      ts64_.push_back(random_array(rng, in.shape, -1, 1, DType::f64));
    }
  }

  void check_against_fd(DType dtype, double tol) {
    const RuleCase& rc = GetParam();
    std::vector<Array> xs, ts;
    for (size_t i = 0; i < xs64_.size(); ++i) {
      xs.push_back(tj::astype(xs64_[i], dtype));
      ts.push_back(tj::astype(ts64_[i], dtype));
    }
    auto [out, tout] = tj::jvp(rc.f, std::tuple{xs}, std::tuple{ts});
    ASSERT_EQ(tout.dtype(), dtype);
    ASSERT_EQ(tout.shape(), out.shape());
    const Array want = (rc.f(moved(xs64_, ts64_, kEps)) - rc.f(moved(xs64_, ts64_, -kEps))) /
                       (2 * kEps);
    expect_close(out, values(rc.f(xs64_)), tol, rc.name + " primal");
    expect_close(tout, values(want), tol, rc.name + " tangent");
  }

  std::vector<Array> xs64_, ts64_;
};

TEST_P(JvpRuleTest, MatchesFiniteDifferencesF64) { check_against_fd(DType::f64, kTolF64); }
TEST_P(JvpRuleTest, MatchesFiniteDifferencesF32) { check_against_fd(DType::f32, kTolF32); }

TEST_P(JvpRuleTest, IsTheTransposeOfTheVjp) {
  const RuleCase& rc = GetParam();
  std::mt19937 rng(99);
  auto [out, tout] = tj::jvp(rc.f, std::tuple{xs64_}, std::tuple{ts64_});
  const Array c = random_array(rng, out.shape(), -1, 1, DType::f64);
  auto [out2, vjp_fn] = tj::vjp(rc.f, xs64_);
  const std::vector<Array> cts = std::get<0>(vjp_fn(c));
  double rhs = 0;
  for (size_t i = 0; i < cts.size(); ++i) rhs += inner(ts64_[i], cts[i]);
  EXPECT_NEAR(inner(tout, c), rhs, 1e-10 * std::max(1.0, std::abs(rhs))) << rc.name;
}

TEST_P(JvpRuleTest, JittedEqualsEager) {
  const RuleCase& rc = GetParam();
  auto f = [&](const std::vector<Array>& xs, const std::vector<Array>& ts) {
    return tj::jvp(rc.f, std::tuple{xs}, std::tuple{ts});
  };
  auto [out, tout] = f(xs64_, ts64_);
  auto [jout, jtout] = tj::jit(f)(xs64_, ts64_);
  expect_close(jout, values(out), 1e-12, rc.name + " primal");
  expect_close(jtout, values(tout), 1e-12, rc.name + " tangent");
}

INSTANTIATE_TEST_SUITE_P(JvpRules, JvpRuleTest, ::testing::ValuesIn(transform_cases::rule_cases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.name;
                         });

// Every primitive has a JVP rule (the switch has no default, so this guards the table walk
// rather than the compiler) and the ones with a tangent are exercised by a case above.
TEST(JvpRuleTable, EveryPrimitiveWithATangentHasACase) {
  std::set<Prim> cased;
  for (const RuleCase& rc : transform_cases::rule_cases()) cased.insert(rc.prim);
  const std::set<Prim> zero_tangent = {
      Prim::kSign, Prim::kStopGradient, Prim::kBitcast, Prim::kAnd, Prim::kOr, Prim::kXor,
      Prim::kShl,  Prim::kShr,          Prim::kEq,      Prim::kNe,  Prim::kLt, Prim::kLe,
      Prim::kGt,   Prim::kGe,           Prim::kIota,    Prim::kDebugPrint,
      Prim::kConvert,  // JvpConvert below: f32 <-> f64 cannot go through an f64-only FD
      Prim::kCustomVjp,  // its rule throws, as JAX's (CustomVjpErrors.JvpVmapAndClosedOverValues)
      Prim::kAllSum,   // its rule throws: Distributed.GradThroughAllSumSaysToAverageGradients
  };
  for (Prim p : tj::ir::all_prims()) {
    EXPECT_NE(tj::ad::jvp_rule(p), nullptr) << tj::ir::prim_name(p);
    EXPECT_NE(cased.count(p) > 0, zero_tangent.count(p) > 0) << tj::ir::prim_name(p);
  }
}

// ---- Hand-derived values --------------------------------------------------------------------

TEST(JvpValues, SinAndPolynomial) {
  const Array x = tj::array({0.5, 1.0, 2.0});
  auto [y, t] = tj::jvp([](const Array& a) { return tj::sin(a); }, std::tuple{x},
                        std::tuple{tj::ones({3}, DType::f64)});
  expect_close(t, {std::cos(0.5), std::cos(1.0), std::cos(2.0)}, 1e-15, "cos");
  // d/dx (x^3 + 2x) = 3x^2 + 2, scaled by the tangent 2.
  auto [p, pt] = tj::jvp([](const Array& a) { return a * a * a + 2 * a; }, std::tuple{x},
                         std::tuple{tj::full({3}, 2.0, DType::f64)});
  expect_close(pt, {2 * (3 * 0.25 + 2), 2 * (3 + 2.0), 2 * (12 + 2.0)}, 1e-15, "poly");
}

TEST(JvpValues, SeveralArgumentsAndPytrees) {
  // f(a, (b, c)) = a * b + c: tangent ta * b + a * tb + tc.
  auto f = [](const Array& a, const std::pair<Array, Array>& bc) { return a * bc.first + bc.second; };
  auto [y, t] = tj::jvp(f, std::tuple{Array(2.f), std::pair{Array(3.f), Array(5.f)}},
                        std::tuple{Array(1.f), std::pair{Array(10.f), Array(100.f)}});
  EXPECT_FLOAT_EQ(y.item<float>(), 11.f);
  EXPECT_FLOAT_EQ(t.item<float>(), 1 * 3 + 2 * 10 + 100.f);
}

TEST(JvpValues, IntegerLeavesCarryNoTangent) {
  // The i32 tangent is ignored; the i32 output's tangent is zeros of its dtype.
  auto f = [](const Array& x, const Array& n) {
    return std::pair{x * tj::astype(n, DType::f32), n * 2};
  };
  auto [y, t] = tj::jvp(f, std::tuple{Array(1.5f), Array(3)}, std::tuple{Array(2.f), Array(7)});
  EXPECT_FLOAT_EQ(t.first.item<float>(), 6.f);
  EXPECT_EQ(t.second.dtype(), DType::i32);
  EXPECT_EQ(t.second.item<int>(), 0);
}

TEST(JvpConvert, WideningAndNarrowing) {
  auto f = [](const Array& x) { return tj::astype(tj::astype(x, DType::f64) * 3.0, DType::f32); };
  auto [y, t] = tj::jvp(f, std::tuple{Array(2.f)}, std::tuple{Array(0.5f)});
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_FLOAT_EQ(t.item<float>(), 1.5f);
  // Through an integer the tangent is zero.
  auto g = [](const Array& x) { return tj::astype(tj::astype(x, DType::i32), DType::f32) + x; };
  EXPECT_FLOAT_EQ(tj::jvp(g, std::tuple{Array(2.7f)}, std::tuple{Array(1.f)}).second.item<float>(),
                  1.f);
}

// ---- Compositions ---------------------------------------------------------------------------

TEST(JvpCompose, JvpOfJvpIsTheSecondDerivative) {
  // d2/dx2 x^4 = 12 x^2.
  auto f = [](const Array& x) { return x * x * x * x; };
  auto df = [&](const Array& x) { return tj::jvp(f, std::tuple{x}, std::tuple{tj::ones_like(x)}).second; };
  auto [d1, d2] = tj::jvp(df, std::tuple{Array(1.5)}, std::tuple{Array(1.0)});
  EXPECT_DOUBLE_EQ(d1.item<double>(), 4 * 1.5 * 1.5 * 1.5);
  EXPECT_DOUBLE_EQ(d2.item<double>(), 12 * 1.5 * 1.5);
}

TEST(JvpCompose, JvpOfGradIsAHessianVectorProduct) {
  // f(x) = sum(x^2 * x[0]) ... take f(x) = x0^2 x1 + sin(x1): H = [[2 x1, 2 x0], [2 x0, -sin x1]].
  auto f = [](const Array& x) { return x[0] * x[0] * x[1] + tj::sin(x[1]); };
  const Array x = tj::array({0.7, -1.2}), v = tj::array({0.3, 2.0});
  auto [g, hv] = tj::jvp(tj::grad(f), std::tuple{x}, std::tuple{v});
  const double x0 = 0.7, x1 = -1.2;
  expect_close(hv, {2 * x1 * 0.3 + 2 * x0 * 2.0, 2 * x0 * 0.3 - std::sin(x1) * 2.0}, 1e-14, "Hv");
  // The same under jit, and grad of a jvp (the transpose direction).
  auto hvp = tj::jit([&](const Array& x, const Array& v) {
    return tj::jvp(tj::grad(f), std::tuple{x}, std::tuple{v}).second;
  });
  expect_close(hvp(x, v), values(hv), 1e-14, "jit Hv");
  auto directional = [&](const Array& x) {
    return tj::jvp(f, std::tuple{x}, std::tuple{v}).second;
  };
  expect_close(tj::grad(directional)(x), values(hv), 1e-14, "grad of jvp");
}

TEST(JvpCompose, JvpOfJitAndNestedCalls) {
  auto inner = tj::jit([](const Array& a) { return tj::exp(a) * a; });
  auto [y, t] = tj::jvp([&](const Array& a) { return inner(a) + 1; }, std::tuple{Array(0.5)},
                        std::tuple{Array(2.0)});
  EXPECT_NEAR(t.item<double>(), 2.0 * std::exp(0.5) * 1.5, 1e-14);
}

// ---- Control flow ---------------------------------------------------------------------------

TEST(JvpControl, UnboundedWhileLoopIsForwardDifferentiable) {
  // Newton's iteration for sqrt(a), run to convergence: the tangent of the fixed point with
  // respect to a is 1 / (2 sqrt(a)). Forward mode needs no max_iterations.
  auto root = [](const Array& a) {
    using C = std::pair<Array, Array>;
    return tj::while_loop([](const C& c) { return c.first < 30; },
                          [&](const C& c) { return C{c.first + 1, 0.5 * (c.second + a / c.second)}; },
                          C{Array(0), a})
        .second;
  };
  auto [r, t] = tj::jvp(root, std::tuple{Array(2.0)}, std::tuple{Array(1.0)});
  EXPECT_NEAR(r.item<double>(), std::sqrt(2.0), 1e-14);
  EXPECT_NEAR(t.item<double>(), 0.5 / std::sqrt(2.0), 1e-12);
}

TEST(JvpControl, ForiLoopWithTracedBoundAndCondOnTheCarry) {
  // x -> x * 1.5 repeated n times, with a cond halving it when it passes 10.
  auto f = [](const Array& x, const Array& n) {
    return tj::fori_loop(0, n, [](const Array&, const Array& c) {
      Array next = c * 1.5;
      return tj::cond(next > 10, [](const Array& v) { return v * 0.5; },
                      [](const Array& v) { return v; }, next);
    }, x);
  };
  // From 4: 6, 9, 13.5 -> 6.75, 10.125 -> 5.0625, 7.59375: the derivative is 1.5^5 * 0.5^2.
  auto [y, t] = tj::jvp(f, std::tuple{Array(4.0), Array(5)}, std::tuple{Array(1.0), Array(0)});
  EXPECT_NEAR(y.item<double>(), 7.59375, 1e-14);
  EXPECT_NEAR(t.item<double>(), std::pow(1.5, 5) * 0.25, 1e-14);
}

TEST(JvpControl, JvpOfGradThroughABoundedWhileLoop) {
  // g(x) = d/dx of x^(2^3) computed by squaring 3 times in a while_loop (with a trajectory
  // for reverse mode); jvp of that gradient is the second derivative 56 x^6.
  auto f = [](const Array& x) {
    using C = std::pair<Array, Array>;
    return tj::while_loop([](const C& c) { return c.first < 3; },
                          [](const C& c) { return C{c.first + 1, c.second * c.second}; },
                          C{Array(0), x}, tj::WhileOptions{.max_iterations = 4})
        .second;
  };
  auto [g, h] = tj::jvp(tj::grad(f), std::tuple{Array(1.1)}, std::tuple{Array(1.0)});
  EXPECT_NEAR(g.item<double>(), 8 * std::pow(1.1, 7), 1e-12);
  EXPECT_NEAR(h.item<double>(), 56 * std::pow(1.1, 6), 1e-11);
}

// ---- Errors ---------------------------------------------------------------------------------

TEST(JvpErrors, TangentsMustMatchThePrimals) {
  auto f = [](const Array& a, const std::pair<Array, Array>& b) { return a + b.first * b.second; };
  const Array x = tj::zeros({3});
  std::string m = ThrowMessage<tj::ShapeError>([&] {
    tj::jvp(f, std::tuple{x, std::pair{x, x}}, std::tuple{x, std::pair{x, tj::zeros({2})}});
  });
  EXPECT_NE(m.find("[jvp]"), std::string::npos) << m;
  EXPECT_NE(m.find("f32[2]"), std::string::npos) << m;
  EXPECT_NE(m.find("argument 1"), std::string::npos) << m;
  m = ThrowMessage<tj::TypeError>([&] {
    tj::jvp(f, std::tuple{x, std::pair{x, x}}, std::tuple{tj::zeros({3}, DType::f64), std::pair{x, x}});
  });
  EXPECT_NE(m.find("f64[3]"), std::string::npos) << m;
  EXPECT_NE(m.find("astype"), std::string::npos) << m;
  m = ThrowMessage<tj::TreeError>([&] {
    tj::jvp([](const std::vector<Array>& v) { return v[0]; }, std::tuple{std::vector<Array>{x, x}},
            std::tuple{std::vector<Array>{x}});
  });
  EXPECT_NE(m.find("structure"), std::string::npos) << m;
}

}  // namespace

#pragma once
// The per-primitive case table shared by the transform tests (ad_test, jvp_test, vmap_test):
// one small function per primitive (and per operand group of the higher-order ones), with the
// shapes and value ranges of its inputs. Each transform checks every case against its own
// independent reference (finite differences, a loop of unbatched calls).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ir/ir.h"
#include "tracejit/tracejit.h"

namespace transform_cases {

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::Shape;
using tj::ir::Prim;

inline std::vector<double> values(const Array& a) { return a.to_vector<double>(); }

// Elementwise |got - want| <= tol * max(1, |want|).
inline void expect_close(const Array& got, const std::vector<double>& want, double tol,
                         const std::string& what = "") {
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size())) << what;
  std::vector<double> g = values(got);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(g[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " element " << i;
}

inline Array random_array(std::mt19937& rng, const Shape& shape, double lo, double hi, DType dtype) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(tj::shape_size(shape)));
  for (double& x : v) x = dist(rng);
  return tj::astype(tj::array(v, shape), dtype);
}


inline int count_prim(const tj::ir::Function& fn, Prim p) {
  int n = 0;
  for (const tj::ir::Eqn& e : fn.eqns) n += e.prim == p;
  return n;
}

using Fn = Array (*)(const std::vector<Array>&);

struct Input {
  Shape shape;
  double lo = -2, hi = 2;
};

// One rule check: `f` applies `prim` (and maybe other primitives) to the inputs.
struct RuleCase {
  std::string name;
  Prim prim;
  std::vector<Input> inputs;
  Fn f;
  friend void PrintTo(const RuleCase& rc, std::ostream* os) { *os << rc.name; }
};

inline std::vector<RuleCase> rule_cases() {
  using V = const std::vector<Array>&;
  const Input pos{{2, 3}, 0.3, 3};  // for log, sqrt, pow's base
  // clang-format off
  return {
    {"neg", Prim::kNeg, {{{2, 3}}}, [](V x) { return -x[0]; }},
    {"exp", Prim::kExp, {{{2, 3}}}, [](V x) { return tj::exp(x[0]); }},
    {"log", Prim::kLog, {pos}, [](V x) { return tj::log(x[0]); }},
    {"log1p", Prim::kLog1p, {{{5}, -0.7, 3}}, [](V x) { return tj::log1p(x[0]); }},
    {"sin", Prim::kSin, {{{2, 3}, -4, 4}}, [](V x) { return tj::sin(x[0]); }},
    {"cos", Prim::kCos, {{{2, 3}, -4, 4}}, [](V x) { return tj::cos(x[0]); }},
    {"tanh", Prim::kTanh, {{{2, 3}}}, [](V x) { return tj::tanh(x[0]); }},
    {"sqrt", Prim::kSqrt, {pos}, [](V x) { return tj::sqrt(x[0]); }},
    {"abs", Prim::kAbs, {{{7}}}, [](V x) { return tj::abs(x[0]); }},
    {"add", Prim::kAdd, {{{2, 3}}, {{2, 3}}}, [](V x) { return x[0] + x[1]; }},
    {"sub", Prim::kAdd, {{{2, 3}}, {{3}}}, [](V x) { return x[0] - x[1]; }},
    {"mul", Prim::kMul, {{{2, 3}}, {{2, 3}}}, [](V x) { return x[0] * x[1]; }},
    {"square", Prim::kMul, {{{4}}}, [](V x) { return tj::square(x[0]); }},
    {"div", Prim::kDiv, {{{2, 3}}, {{2, 3}, 0.5, 2}}, [](V x) { return x[0] / x[1]; }},
    {"pow", Prim::kPow, {pos, {{2, 3}, -1.5, 2.5}}, [](V x) { return tj::pow(x[0], x[1]); }},
    {"pow_scalar_exponent", Prim::kPow, {pos}, [](V x) { return tj::pow(x[0], 3.0); }},
    {"max", Prim::kMax, {{{3, 4}}, {{3, 4}}}, [](V x) { return tj::maximum(x[0], x[1]); }},
    {"min", Prim::kMin, {{{3, 4}}, {{3, 4}}}, [](V x) { return tj::minimum(x[0], x[1]); }},
    {"relu", Prim::kMax, {{{6}}}, [](V x) { return tj::maximum(x[0], 0); }},
    {"select", Prim::kSelect, {{{3, 4}}, {{3, 4}}},
     [](V x) { return tj::where(x[0] > x[1], x[0] * x[1], tj::sin(x[1])); }},
    {"reduce_sum_axis", Prim::kReduceSum, {{{2, 3, 4}}}, [](V x) { return tj::sum(x[0], {1}); }},
    {"reduce_sum_all", Prim::kReduceSum, {{{2, 3}}}, [](V x) { return tj::sum(x[0]); }},
    {"mean_axes", Prim::kReduceSum, {{{2, 3, 4}}}, [](V x) { return tj::mean(x[0], {0, 2}); }},
    {"reduce_max_axis", Prim::kReduceMax, {{{3, 4}}}, [](V x) { return tj::max(x[0], {0}); }},
    {"reduce_max_all", Prim::kReduceMax, {{{2, 3}}}, [](V x) { return tj::max(x[0]); }},
    {"broadcast", Prim::kBroadcast, {{{3, 1}}},
     [](V x) { return tj::broadcast_to(x[0], {2, 3, 4}); }},
    {"broadcast_binary", Prim::kBroadcast, {{{2, 1, 4}}, {{3, 1}}},
     [](V x) { return x[0] * x[1]; }},
    {"reshape", Prim::kReshape, {{{2, 3}}}, [](V x) { return tj::reshape(x[0], {3, 2}); }},
    {"transpose", Prim::kTranspose, {{{2, 3, 4}}},
     [](V x) { return tj::transpose(x[0], {2, 0, 1}); }},
    {"slice", Prim::kSlice, {{{4, 5}}}, [](V x) { return tj::slice(x[0], {1, 2}, {3, 4}); }},
    {"slice_edges", Prim::kSlice, {{{4, 5}}},
     [](V x) { return tj::slice(x[0], {0, 1}, {4, 5}); }},
    {"index", Prim::kSlice, {{{3, 2}}}, [](V x) { return x[0][1] * x[0][2]; }},
    {"concatenate_axis0", Prim::kConcatenate, {{{2, 3}}, {{1, 3}}},
     [](V x) { return tj::concatenate({x[0], x[1], x[0]}, 0); }},
    {"concatenate_axis1", Prim::kConcatenate, {{{2, 3}}, {{2, 1}}},
     [](V x) { return tj::concatenate({x[1], tj::sin(x[0])}, -1); }},
    {"matmul", Prim::kMatmul, {{{2, 3}}, {{3, 4}}}, [](V x) { return tj::matmul(x[0], x[1]); }},
    {"matvec", Prim::kMatmul, {{{3}}, {{3, 2}}}, [](V x) { return tj::matmul(x[0], x[1]); }},
    {"vecdot", Prim::kMatmul, {{{3}}, {{3}}}, [](V x) { return tj::matmul(x[0], x[1]); }},
    // Higher-order primitives: every operand group differentiated (consts, carry, xs).
    {"call", Prim::kCall, {{{3}}, {{3}}},
     [](V x) { return tj::jit([](const Array& a, const Array& b) { return tj::sin(a) * b; })(x[0], x[1]); }},
    {"cond_true", Prim::kCond, {{{3}}, {{3}}}, [](V x) {
       return tj::cond(true, [&](const Array& a) { return a * x[1]; }, [](const Array& a) { return tj::sin(a); }, x[0]); }},
    {"cond_false", Prim::kCond, {{{3}}, {{3}}}, [](V x) {
       return tj::cond(false, [](const Array& a) { return a * a; }, [&](const Array& a) { return tj::sin(a) * x[1]; }, x[0]); }},
    {"scan", Prim::kScan, {{{3}}, {{4, 3}}, {{3}, -1, 1}}, [](V x) {
       auto [c, ys] = tj::scan([&](const Array& c, const Array& xi) {
         return std::pair<Array, Array>{tj::sin(c) * x[2] + xi, c * xi};
       }, x[0], x[1]);
       return tj::concatenate({c, tj::reshape(ys, {12})}, 0); }},
    {"scan_reverse", Prim::kScan, {{{3}}, {{4, 3}}}, [](V x) {
       auto [c, ys] = tj::scan([](const Array& c, const Array& xi) {
         return std::pair<Array, Array>{c * xi, tj::sin(c)};
       }, x[0], x[1], tj::ScanOptions{.reverse = true});
       return tj::concatenate({c, tj::reshape(ys, {12})}, 0); }},
    {"while", Prim::kWhile, {{{3}}, {{3}, -1, 1}}, [](V x) {
       using C = std::pair<Array, Array>;
       return tj::while_loop([](const C& c) { return c.first < 3; },
                             [&](const C& c) { return C{c.first + 1, tj::sin(c.second) * x[1] + 1}; },
                             C{Array(0), x[0]}, tj::WhileOptions{.max_iterations = 5}).second; }},
  };
  // clang-format on
}


}  // namespace transform_cases

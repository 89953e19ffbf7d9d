// Tests of the backend (fusion, LLVM lowering, runtime): programs built by tracing or by hand,
// compiled and run, compared with the eager reference (integers and bools exactly, floats
// exactly or within a tolerance stated per test).
#include "backend/compile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backend/fusion.h"
#include "ir/ir.h"
#include "ir/region_utils.h"
#include "trace/trace_state.h"
#include "base/array_impl.h"
#include "tracejit/detail/trace.h"
#include "tracejit/control_flow.h"
#include "tracejit/custom_vjp.h"
#include "tracejit/error.h"
#include "tracejit/jit.h"
#include "tracejit/ops.h"

namespace tracejit::backend {
namespace {

namespace tj = tracejit;
using ir::Prim;

// ---- Helpers ----

// Traces f over inputs of the given types.
template <class F>
std::shared_ptr<const ir::Function> trace(const std::vector<ir::Type>& types, F&& f) {
  detail::TraceScope scope("f");
  std::vector<Array> xs;
  for (const ir::Type& t : types) xs.push_back(scope.new_input(t.dtype, t.shape, false));
  std::vector<Array> ys = f(xs);
  return scope.finish(ys).fn;
}

// A function of one equation applied to inputs of `in` types; outputs its results.
std::shared_ptr<const ir::Function> one_eqn(Prim p, const std::vector<ir::Type>& in,
                                            const ir::Params& params = {}) {
  auto fn = std::make_shared<ir::Function>();
  fn->name = "one";
  ir::Eqn e{p, {}, {}, params};
  for (const ir::Type& t : in) e.in.push_back(fn->new_var(t));
  fn->inputs.assign(e.in.begin(), e.in.end());
  for (const ir::Type& t : ir::infer_types(p, in, params)) e.out.push_back(fn->new_var(t));
  fn->outputs.assign(e.out.begin(), e.out.end());
  fn->eqns.push_back(e);
  ir::verify(*fn, "test");
  return fn;
}

ir::Type T(DType d, Shape s) { return ir::Type{d, std::move(s), false}; }

// Interesting values per dtype: zeros of both signs, NaN, infinities, integer edges, shift counts.
std::vector<double> edge_values(DType d) {
  const double inf = std::numeric_limits<double>::infinity();
  switch (d) {
    case DType::f32: case DType::f64:
      return {0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -3.75, 1e-3, 100.0, -100.0, 1e10, -1e10, 3e9, -3e9,
              2147483520.0, 31.0, 32.0, inf, -inf, std::nan("")};
    case DType::i32:
      return {0, 1, -1, 2, -2, 7, -7, 31, 32, 33, 100, 1 << 20, -2147483648.0, 2147483647.0};
    case DType::u32:
      return {0, 1, 2, 7, 31, 32, 33, 100, 12345678, 2147483647.0, 2147483648.0, 4294967295.0};
    case DType::bool_:
      return {0, 1};
  }
  return {};
}

// An array of `type` from doubles (each converted as a C++ cast would, with bool = nonzero).
Array make_array(const ir::Type& type, const std::vector<double>& values) {
  Array a = detail::make_concrete(type);
  void* p = a.impl()->elements;
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    switch (type.dtype) {
      case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
      case DType::f64: static_cast<double*>(p)[i] = v; break;
      case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); break;
      case DType::u32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(static_cast<int64_t>(v)); break;
      case DType::bool_: static_cast<bool*>(p)[i] = v != 0; break;
    }
  }
  return a;
}

// Edge values first (cycling), then random ones; `salt` varies the order between operands.
Array test_array(const ir::Type& type, int salt = 0) {
  std::vector<double> edges = edge_values(type.dtype);
  std::mt19937 rng(1234 + salt);
  std::uniform_real_distribution<double> uni(-4.0, 4.0);
  std::vector<double> v(static_cast<size_t>(type.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    if (i < 2 * edges.size()) v[i] = edges[(i * (salt + 1) + static_cast<size_t>(salt)) % edges.size()];
    else if (type.dtype == DType::bool_) v[i] = rng() % 2;
    else if (is_integer(type.dtype)) v[i] = static_cast<double>(static_cast<int>(rng() % 200) - 100);
    else v[i] = uni(rng);
  }
  if (type.dtype == DType::u32)
    for (double& x : v) x = x < 0 ? -x : x;
  return make_array(type, v);
}

// Every pair of edge values: a[i] = edges[i / E], b[i] = edges[i % E].
std::pair<Array, Array> all_pairs(DType d) {
  std::vector<double> e = edge_values(d), a, b;
  for (double x : e)
    for (double y : e) a.push_back(x), b.push_back(y);
  Shape s{static_cast<int64_t>(a.size())};
  return {make_array(T(d, s), a), make_array(T(d, s), b)};
}

// Compares one array with the reference: same type; equal values (bitwise for floats when
// rtol is 0, NaN matching NaN), or within rtol.
void expect_same(const Array& got, const Array& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    bool ok;
    if (std::isnan(w[i])) ok = std::isnan(g[i]);
    else if (rtol == 0) ok = g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i]);
    else ok = g[i] == w[i] || std::fabs(g[i] - w[i]) <= rtol * std::max(std::fabs(w[i]), 1.0);
    if (!ok) {
      ++bad;
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i];
    }
  }
}

// Compiles `fn`, runs it and the eager reference on `inputs`, and compares every output.
std::shared_ptr<const Executable> expect_matches(const ir::Function& fn,
                                                 const std::vector<Array>& inputs,
                                                 double rtol = 0, CompileOptions options = {}) {
  auto exe = compile(fn, options);
  std::vector<Array> got = exe->run(inputs);
  std::vector<Array> want = detail::eval_ir(fn, inputs, {});
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    expect_same(got[i], want[i], rtol, "output " + std::to_string(i) + " of\n" + ir::to_string(fn) +
                                           "\nfused:\n" + exe->fused_ir());
  return exe;
}

// Executable::run takes a span, which a braced list cannot initialize.
std::vector<Array> run_on(const std::shared_ptr<const Executable>& exe, const std::vector<Array>& inputs) {
  return exe->run(inputs);
}

int count_kernels(const std::string& fused) {
  int n = 0;
  for (size_t pos = 0; (pos = fused.find("    kernel ", pos)) != std::string::npos; ++pos) ++n;
  return n;
}

bool is_transcendental(Prim p) {
  switch (p) {
    case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin: case Prim::kCos:
    case Prim::kTanh: case Prim::kPow: case Prim::kSqrt:
      return true;
    default:
      return false;
  }
}

constexpr DType kAllDtypes[] = {DType::f32, DType::f64, DType::i32, DType::u32, DType::bool_};

// ---- Every primitive, every dtype it accepts ----

class BackendPrimTest : public ::testing::TestWithParam<Prim> {};

// The instances of one primitive for one dtype: operand types and parameters.
struct Instance {
  std::vector<ir::Type> in;
  ir::Params params;
  std::vector<Array> inputs;  // empty: test_array per operand
};

// One equation of a higher-order primitive, taken from a traced use of the public function:
// its operand types and parameters (with the regions). `inputs` are supplied by the caller.
Instance region_instance(Prim p, const std::vector<ir::Type>& types,
                         const std::function<std::vector<Array>(std::vector<Array>)>& f,
                         std::vector<Array> inputs);
std::vector<Instance> region_instances(Prim p, DType d);

std::vector<Instance> instances(Prim p, DType d) {
  std::vector<Instance> out;
  ir::Params params;
  switch (ir::prim_info(p).kind) {
    case ir::PrimKind::Unary:
      if (p == Prim::kConvert || p == Prim::kBitcast) {
        for (DType to : kAllDtypes) {
          params.dtype = to;
          out.push_back({{T(d, {8, 5})}, params, {}});
        }
      } else {
        out.push_back({{T(d, {8, 5})}, params, {}});
        out.push_back({{T(d, {})}, params, {}});
      }
      break;
    case ir::PrimKind::Binary: case ir::PrimKind::Compare: {
      auto [a, b] = all_pairs(d);
      out.push_back({{a.impl()->type, b.impl()->type}, params, {a, b}});
      break;
    }
    case ir::PrimKind::Select:
      out.push_back({{T(DType::bool_, {6, 7}), T(d, {6, 7}), T(d, {6, 7})}, params, {}});
      break;
    case ir::PrimKind::Reduce:
      for (std::vector<int64_t> axes : std::vector<std::vector<int64_t>>{
               {}, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}}) {
        params.axes = axes;
        out.push_back({{T(d, {3, 4, 5})}, params, {}});
      }
      break;
    case ir::PrimKind::Layout:
      switch (p) {
        case Prim::kBroadcast:
          params.axes = {1, 2};
          params.shape = {2, 3, 4};
          out.push_back({{T(d, {3, 1})}, params, {}});
          params.axes = {};
          params.shape = {2, 3};
          out.push_back({{T(d, {})}, params, {}});
          params.axes = {0};
          params.shape = {5, 3};
          out.push_back({{T(d, {5})}, params, {}});
          break;
        case Prim::kReshape:
          for (Shape s : {Shape{2, 6}, Shape{12}, Shape{4, 1, 3}}) {
            params.shape = s;
            out.push_back({{T(d, {3, 4})}, params, {}});
          }
          break;
        case Prim::kTranspose:
          params.axes = {2, 0, 1};
          out.push_back({{T(d, {2, 3, 4})}, params, {}});
          params.axes = {1, 0};
          out.push_back({{T(d, {5, 7})}, params, {}});
          break;
        case Prim::kSlice:
          params.axes = {1, 2};
          params.limits = {4, 6};
          out.push_back({{T(d, {5, 6})}, params, {}});
          break;
        case Prim::kConcatenate:
          params.axis = 0;
          out.push_back({{T(d, {2, 3}), T(d, {4, 3}), T(d, {0, 3})}, params, {}});
          params.axis = 1;
          out.push_back({{T(d, {2, 3}), T(d, {2, 1})}, params, {}});
          break;
        default:
          ADD_FAILURE() << "no layout instance for " << ir::prim_name(p);
      }
      break;
    case ir::PrimKind::Source:
      params.dtype = d;
      params.shape = {3, 4};
      params.axis = 1;
      out.push_back({{}, params, {}});
      params.axis = 0;
      out.push_back({{}, params, {}});
      break;
    case ir::PrimKind::Contract:
      out.push_back({{T(d, {3, 4}), T(d, {4, 5})}, params, {}});
      out.push_back({{T(d, {1, 6}), T(d, {6, 1})}, params, {}});
      out.push_back({{T(d, {2, 3, 4}), T(d, {2, 4, 5})}, params, {}});  // batched
      break;
    case ir::PrimKind::Effect:  // no result to compare: debug_print_test.cpp checks its output
      break;
    case ir::PrimKind::Region:
      out = region_instances(p, d);
      break;
  }
  return out;
}

Instance region_instance(Prim p, const std::vector<ir::Type>& types,
                         const std::function<std::vector<Array>(std::vector<Array>)>& f,
                         std::vector<Array> inputs) {
  auto fn = trace(types, f);
  for (const ir::Eqn& e : fn->eqns) {
    if (e.prim != p) continue;
    std::vector<ir::Type> in;
    for (ir::VarId v : e.in) in.push_back(fn->type(v));
    return {in, e.params, std::move(inputs)};
  }
  ADD_FAILURE() << "no " << ir::prim_name(p) << " equation in\n" << ir::to_string(*fn);
  return {};
}

// Each higher-order primitive over dtype d, with max/min (which every dtype accepts) inside.
std::vector<Instance> region_instances(Prim p, DType d) {
  std::vector<Instance> out;
  const ir::Type m = T(d, {4, 3}), row = T(d, {3});
  const Array a = test_array(m, 0), b = test_array(m, 1), r = test_array(row, 2);
  switch (p) {
    case Prim::kCall:
      out.push_back(region_instance(p, {m, m}, [](std::vector<Array> x) {
        auto inner = tj::jit([](const Array& u, const Array& v) { return tj::maximum(u, v); });
        return std::vector<Array>{inner(x[0], x[1])};
      }, {a, b}));
      break;
    case Prim::kCond:
      for (int index : {0, 1, 5, -2}) {
        out.push_back(region_instance(p, {T(DType::i32, {}), m, m}, [](std::vector<Array> x) {
          return std::vector<Array>{tj::cond(x[0], [](const Array& u, const Array& v) { return tj::maximum(u, v); },
                                             [](const Array& u, const Array& v) { return tj::minimum(u, v); },
                                             x[1], x[2])};
        }, {}));
        out.back().inputs = {Array(index), a, b};
      }
      break;
    case Prim::kWhile:
      out.push_back(region_instance(p, {T(DType::i32, {}), row, m}, [](std::vector<Array> x) {
        const Array rows = x[2];
        auto [i, acc] = tj::while_loop(
            [](const std::pair<Array, Array>& c) { return c.first < 3; },
            [&](const std::pair<Array, Array>& c) {
              return std::pair<Array, Array>{c.first + 1, tj::maximum(c.second, rows[0])};
            },
            std::pair<Array, Array>{x[0], x[1]});
        return std::vector<Array>{i, acc};
      }, {}));
      out.back().inputs = {a, Array(0), r};  // operands: body consts (the rows), then the carry
      break;
    case Prim::kScan:
      for (bool reverse : {false, true})
        out.push_back(region_instance(p, {row, m}, [reverse](std::vector<Array> x) {
          auto [c, ys] = tj::scan(
              [](const Array& carry, const Array& xi) {
                return std::pair<Array, Array>{tj::maximum(carry, xi), tj::minimum(carry, xi)};
              },
              x[0], x[1], tj::ScanOptions{.reverse = reverse});
          return std::vector<Array>{c, ys};
        }, {r, a}));
      break;
    case Prim::kCustomVjp:
      // Compiled, the primal runs (the pipeline inlines it); fwd and bwd only matter to AD.
      out.push_back(region_instance(p, {m, m}, [](std::vector<Array> x) {
        auto f = tj::custom_vjp([](const Array& u, const Array& v) { return tj::maximum(u, v); },
                                [](const Array& u, const Array& v) { return std::pair{tj::maximum(u, v), u}; },
                                [](const Array&, const Array& ct) { return std::tuple{ct, ct}; });
        return std::vector<Array>{f(x[0], x[1])};
      }, {a, b}));
      break;
    default:
      ADD_FAILURE() << "no region instance for " << ir::prim_name(p);
  }
  return out;
}

TEST_P(BackendPrimTest, MatchesEagerForEveryAcceptedDtype) {
  const Prim p = GetParam();
  if (ir::has_effect(p)) GTEST_SKIP() << "effects have no result; see debug_print_test.cpp";
  int compiled = 0;
  for (DType d : kAllDtypes) {
    for (Instance& inst : instances(p, d)) {
      try {
        ir::infer_types(p, inst.in, inst.params);
      } catch (const tj::Error&) {
        continue;  // not accepted by the shape rules
      }
      auto fn = one_eqn(p, inst.in, inst.params);
      // custom_vjp never reaches the backend: the pipeline inlines its primal (AD is over).
      if (p == Prim::kCustomVjp) fn = ir::inline_calls(fn, /*custom_vjp=*/true);
      std::vector<Array> inputs = inst.inputs;
      if (inputs.empty())
        for (size_t i = 0; i < inst.in.size(); ++i) inputs.push_back(test_array(inst.in[i], static_cast<int>(i)));
      double rtol = 0;
      if (is_transcendental(p)) rtol = d == DType::f32 ? 1e-6 : 1e-13;
      if (p == Prim::kReduceSum && is_float(d)) rtol = d == DType::f32 ? 1e-5 : 1e-12;
      SCOPED_TRACE(ir::to_string(*fn));
      expect_matches(*fn, inputs, rtol);
      ++compiled;
    }
  }
  EXPECT_GT(compiled, 0) << "no dtype accepted by " << ir::prim_name(p);
}

INSTANTIATE_TEST_SUITE_P(Backend, BackendPrimTest, ::testing::ValuesIn(ir::all_prims().begin(), ir::all_prims().end()),
                         [](const ::testing::TestParamInfo<Prim>& info) {
                           return std::string(ir::prim_name(info.param));
                         });

TEST(BackendLowering, CannotLowerIsAnErrorNotWrongCode) {
  // exp on i32 is rejected by the shape rules; a hand-made function that has it anyway must be
  // refused by the backend with a tj::Error naming the primitive and dtype.
  auto fn = std::make_shared<ir::Function>();
  ir::VarId x = fn->new_var(T(DType::i32, {4}));
  ir::VarId y = fn->new_var(T(DType::i32, {4}));
  fn->inputs = {x};
  fn->eqns.push_back(ir::Eqn{Prim::kExp, {x}, {y}, {}});
  fn->outputs = {y};
  try {
    compile(*fn, {});
    FAIL() << "expected a tj::Error";
  } catch (const tj::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[jit] cannot lower exp for i32"), std::string::npos) << e.what();
  }
}

TEST(BackendLowering, IntegerEdgeSemantics) {
  auto fn = trace({T(DType::i32, {6}), T(DType::i32, {6})}, [](std::vector<Array> x) {
    // The div primitive (tj's `/` would divide the integers in f32).
    return std::vector<Array>{tj::detail::bind1(tj::ir::Prim::kDiv, {x[0], x[1]}), x[0] << x[1], x[0] >> x[1], x[0] + x[1], x[0] * x[1]};
  });
  std::vector<double> a = {7, -2147483648.0, 5, -8, 2147483647.0, -1};
  std::vector<double> b = {0, -1, 32, 40, 2, 31};
  auto exe = compile(*fn, {});
  auto out = run_on(exe, {make_array(T(DType::i32, {6}), a), make_array(T(DType::i32, {6}), b)});
  EXPECT_EQ(out[0].to_vector<int32_t>(), (std::vector<int32_t>{-1, INT32_MIN, 0, -0, 1073741823, 0}));
  EXPECT_EQ(out[1].to_vector<int32_t>(), (std::vector<int32_t>{7, 0, 0, 0, -4, INT32_MIN}));
  EXPECT_EQ(out[2].to_vector<int32_t>(), (std::vector<int32_t>{7, -1, 0, -1, 536870911, -1}));
  EXPECT_EQ(out[3].to_vector<int32_t>(), (std::vector<int32_t>{7, 2147483647, 37, 32, -2147483647, 30}));
  EXPECT_EQ(out[4].to_vector<int32_t>(), (std::vector<int32_t>{0, INT32_MIN, 160, -320, -2, -31}));
}

TEST(BackendLowering, FloatToIntSaturatesAndNanIsZero) {
  auto fn = trace({T(DType::f32, {5})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::astype(x[0], DType::i32), tj::astype(x[0], DType::u32)};
  });
  auto exe = compile(*fn, {});
  auto out = run_on(exe, {tj::array({std::nanf(""), 3e9f, -3e9f, -2.7f, 2.7f}, {5})});
  EXPECT_EQ(out[0].to_vector<int32_t>(), (std::vector<int32_t>{0, INT32_MAX, INT32_MIN, -2, 2}));
  EXPECT_EQ(out[1].to_vector<uint32_t>(), (std::vector<uint32_t>{0, 3000000000u, 0, 0, 2}));
}

TEST(BackendLowering, MaxMinPropagateNan) {
  auto fn = trace({T(DType::f32, {4}), T(DType::f32, {4})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::maximum(x[0], x[1]), tj::minimum(x[0], x[1]), tj::sign(x[0])};
  });
  float nan = std::nanf("");
  auto out = run_on(compile(*fn, {}), {tj::array({nan, 1.f, 2.f, -0.f}, {4}), tj::array({1.f, nan, 3.f, 5.f}, {4})});
  auto mx = out[0].to_vector<float>(), mn = out[1].to_vector<float>(), sg = out[2].to_vector<float>();
  EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[1]) && std::isnan(mn[0]) && std::isnan(mn[1]));
  EXPECT_EQ(mx[2], 3.f);
  EXPECT_EQ(mn[2], 2.f);
  EXPECT_TRUE(std::isnan(sg[0]));
  EXPECT_EQ(sg[1], 1.f);
}

// Distance in units in the last place between two finite floats of one sign (0 when equal).
int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return std::abs(static_cast<int64_t>(ia) - ib);
}

TEST(BackendLowering, VectorizedMathStaysWithinAFewUlps) {
  // f32 exp, log, log1p and tanh are polynomials in IR (vectorizable), not libm calls: compare them with
  // libm over their whole range, bit patterns included, and at the special values.
  std::vector<float> xs;
  for (uint32_t bits = 0; bits < 0x7f800000u; bits += 0x3ffu) {  // every positive finite scale
    float f;
    std::memcpy(&f, &bits, 4);
    xs.push_back(f);
    xs.push_back(-f);
  }
  for (float f : {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::nanf(""), 88.72283f, 88.7229f, -87.33654f, -103.97f, -104.5f, 0.625f, -0.625f, 1e-30f, -1.0f, -0.999999f, 5.9604645e-8f, -5.9604645e-8f})
    xs.push_back(f);
  const int64_t n = static_cast<int64_t>(xs.size());
  auto fn = trace({T(DType::f32, {n})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::exp(x[0]), tj::log(x[0]), tj::tanh(x[0]), tj::log1p(x[0])};
  });
  auto out = run_on(compile(*fn, {}), {tj::array(xs, {n})});
  float (*ref[])(float) = {std::exp, std::log, std::tanh, std::log1p};
  const char* names[] = {"exp", "log", "tanh", "log1p"};
  for (int k = 0; k < 4; ++k) {
    std::vector<float> got = out[static_cast<size_t>(k)].to_vector<float>();
    int64_t worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      float want = ref[k](xs[i]);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got[i])) << names[k] << "(" << xs[i] << ") = " << got[i];
        continue;
      }
      // Subnormal results: absolute error of a few subnormal steps.
      int64_t d = ulp_distance(got[i], want);
      if (d > worst) worst = d, worst_x = xs[i];
    }
    std::cout << "[ perf ] " << names[k] << "f: worst error " << worst << " ulp at " << worst_x << "\n";
    EXPECT_LE(worst, 4) << names[k] << " at " << worst_x;
  }
}

// ---- Layout and indexing ----

TEST(BackendLayout, BroadcastingPatterns) {
  auto fn = trace({T(DType::f32, {4, 1}), T(DType::f32, {1, 5}), T(DType::f32, {5}), T(DType::f32, {})},
                  [](std::vector<Array> x) {
                    Array outer = x[0] * x[1];                 // [4,1] x [1,5]
                    Array rows = outer + x[2];                 // + [5] along the last axis
                    Array scaled = rows * x[3] - 1.5f;         // scalars
                    Array cube = tj::broadcast_to(x[2], {3, 4, 5}) + tj::reshape(outer, {1, 4, 5});
                    return std::vector<Array>{scaled, cube, tj::broadcast_to(x[0], {4, 6})};
                  });
  expect_matches(*fn, {test_array(T(DType::f32, {4, 1})), test_array(T(DType::f32, {1, 5}), 1),
                       test_array(T(DType::f32, {5}), 2), tj::array({0.25f}, {})});
}

TEST(BackendLayout, BroadcastMiddleDimension) {
  auto fn = one_eqn(Prim::kBroadcast, {T(DType::i32, {3})}, ir::Params{{2, 3, 4}, {1}, {}, 0, DType::f32});
  expect_matches(*fn, {tj::array({1, 2, 3}, {3})});
}

TEST(BackendLayout, TransposesInElementwiseCode) {
  auto fn = trace({T(DType::f32, {3, 4}), T(DType::f32, {4, 3}), T(DType::f32, {2, 3, 4})},
                  [](std::vector<Array> x) {
                    Array a = x[0] + tj::transpose(x[1], {1, 0});
                    Array b = tj::transpose(tj::exp(x[2]), {2, 0, 1}) * 2.0f;
                    Array c = tj::transpose(tj::transpose(x[2], {1, 2, 0}), {2, 0, 1});
                    return std::vector<Array>{a, b, c};
                  });
  expect_matches(*fn, {test_array(T(DType::f32, {3, 4})), test_array(T(DType::f32, {4, 3}), 1),
                       test_array(T(DType::f32, {2, 3, 4}), 2)}, 1e-6);
}

TEST(BackendLayout, SlicesOfExpressions) {
  auto fn = trace({T(DType::i32, {6, 7})}, [](std::vector<Array> x) {
    Array y = x[0] * 3 + 1;
    Array s = tj::slice(y, {1, 2}, {5, 7});
    Array t = tj::slice(tj::transpose(y, {1, 0}), {0, 1}, {7, 3});
    return std::vector<Array>{s, t, tj::slice(x[0], {2, 0}, {2, 7})};
  });
  expect_matches(*fn, {test_array(T(DType::i32, {6, 7}))});
}

TEST(BackendLayout, ReshapesFlatAndNested) {
  auto fn = trace({T(DType::f32, {2, 3, 4})}, [](std::vector<Array> x) {
    Array flat = tj::reshape(x[0] * 2.0f, {24}) + 1.0f;           // flat-compatible
    Array regroup = tj::reshape(x[0], {4, 6}) + tj::reshape(tj::transpose(x[0], {0, 2, 1}), {4, 6});
    Array units = tj::reshape(x[0], {2, 1, 3, 1, 4}) * 3.0f;       // only size-1 dims added
    return std::vector<Array>{flat, regroup, units};
  });
  expect_matches(*fn, {test_array(T(DType::f32, {2, 3, 4}))});
}

TEST(BackendLayout, IotaInFlatAndNestedKernels) {
  auto fn = trace({T(DType::f32, {3, 5})}, [](std::vector<Array> x) {
    Array cols = tj::astype(tj::arange(5), DType::f32);          // iota, broadcast along rows
    Array n = tj::arange(15, DType::u32) * 2u;                    // flat
    return std::vector<Array>{x[0] * cols, n, tj::arange(7, DType::f64)};
  });
  expect_matches(*fn, {test_array(T(DType::f32, {3, 5}))});
}

TEST(BackendLayout, ConcatenateWithInlineOperands) {
  auto fn = trace({T(DType::f32, {2, 3}), T(DType::f32, {4, 3}), T(DType::f32, {2, 2})},
                  [](std::vector<Array> x) {
                    Array rows = tj::concatenate({x[0] * 2.0f, tj::exp(x[1])}, 0);
                    Array cols = tj::concatenate({x[0], tj::transpose(x[2], {1, 0}) + 1.0f, x[0]}, 1);
                    return std::vector<Array>{rows, cols};
                  });
  expect_matches(*fn, {test_array(T(DType::f32, {2, 3})), test_array(T(DType::f32, {4, 3}), 1),
                       test_array(T(DType::f32, {2, 2}), 2)}, 1e-6);
}

// ---- Reductions ----

TEST(BackendReduce, AxesFullLeadingTrailingMiddle) {
  for (DType d : {DType::f32, DType::i32, DType::f64}) {
    auto fn = trace({T(d, {6, 7, 8})}, [](std::vector<Array> x) {
      Array y = x[0] * x[0];
      return std::vector<Array>{tj::sum(y), tj::sum(y, {0}), tj::sum(y, {2}), tj::sum(y, {1}),
                                tj::sum(y, {0, 2}), tj::max(x[0], {1}), tj::max(x[0], {0}),
                                tj::max(x[0])};
    });
    expect_matches(*fn, {test_array(T(d, {6, 7, 8}))}, d == DType::f32 ? 1e-5 : 1e-12);
  }
}

TEST(BackendReduce, MaxPropagatesNan) {
  auto fn = trace({T(DType::f32, {3, 4})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::max(x[0]), tj::max(x[0], {1}), tj::max(x[0], {0})};
  });
  std::vector<float> v(12, 1.0f);
  v[5] = std::nanf("");
  v[0] = -std::numeric_limits<float>::infinity();
  auto out = run_on(compile(*fn, {}), {tj::array(v, {3, 4})});
  EXPECT_TRUE(std::isnan(out[0].item<float>()));
  auto rows = out[1].to_vector<float>(), cols = out[2].to_vector<float>();
  EXPECT_EQ(rows[0], 1.0f);
  EXPECT_TRUE(std::isnan(rows[1]));
  EXPECT_EQ(rows[2], 1.0f);
  EXPECT_TRUE(std::isnan(cols[1]));
  EXPECT_EQ(cols[0], 1.0f);
}

TEST(BackendReduce, EmptyReducedAxisGivesIdentity) {
  auto fn = trace({T(DType::f32, {0, 5}), T(DType::i32, {4, 0})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::sum(x[0], {0}), tj::sum(x[1], {1}), tj::sum(x[0], {1})};
  });
  std::vector<Array> in = {test_array(T(DType::f32, {0, 5})), test_array(T(DType::i32, {4, 0}))};
  auto exe = expect_matches(*fn, in);
  auto out = run_on(exe, in);
  EXPECT_EQ(out[0].to_vector<float>(), std::vector<float>(5, 0.0f));
  EXPECT_EQ(out[1].to_vector<int32_t>(), std::vector<int32_t>(4, 0));
  EXPECT_EQ(out[2].size(), 0);
  // tj::max refuses empty reductions; the primitive itself gives the identity.
  ir::Params params;
  params.axes = {1};
  auto max_fn = one_eqn(Prim::kReduceMax, {T(DType::i32, {4, 0})}, params);
  auto max_out = run_on(expect_matches(*max_fn, {in[1]}), {in[1]});
  EXPECT_EQ(max_out[0].to_vector<int32_t>(), std::vector<int32_t>(4, INT32_MIN));
}

TEST(BackendReduce, IntegerSumsWrap) {
  auto fn = trace({T(DType::i32, {4}), T(DType::u32, {3})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::sum(x[0]), tj::sum(x[1])};
  });
  auto out = run_on(compile(*fn, {}), {tj::array({INT32_MAX, 1, 2, 3}, {4}),
                                     tj::array({4000000000u, 4000000000u, 1u}, {3})});
  EXPECT_EQ(out[0].item<int32_t>(), static_cast<int32_t>(0x80000005u));
  EXPECT_EQ(out[1].item<uint32_t>(), static_cast<uint32_t>(8000000001ull));
}

TEST(BackendReduce, DependentReductionsRunInOrder) {
  // sum(x - mean(x)): the second reduction reads the first, so they need two kernels.
  auto fn = trace({T(DType::f64, {10, 3})}, [](std::vector<Array> x) {
    Array centered = x[0] - tj::mean(x[0], {0});
    return std::vector<Array>{tj::sum(centered * centered, {0}), tj::mean(x[0])};
  });
  expect_matches(*fn, {test_array(T(DType::f64, {10, 3}))}, 1e-12);
}

TEST(BackendReduce, SoftmaxAndLogSumExp) {
  auto fn = trace({T(DType::f32, {5, 9})}, [](std::vector<Array> x) {
    Array m = tj::max(x[0], {1});
    Array e = tj::exp(x[0] - tj::reshape(m, {5, 1}));
    Array s = tj::sum(e, {1});
    return std::vector<Array>{e / tj::reshape(s, {5, 1}), tj::log(s) + m};
  });
  expect_matches(*fn, {test_array(T(DType::f32, {5, 9}))}, 1e-5);
}

TEST(BackendReduce, TwoSumsOverOneInputShareAKernel) {
  auto fn = trace({T(DType::f32, {128, 1}), T(DType::f32, {128, 1})}, [](std::vector<Array> x) {
    Array r = x[0] * 2.0f - x[1];
    return std::vector<Array>{tj::sum(r * x[0]), tj::sum(r)};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {128, 1})), test_array(T(DType::f32, {128, 1}), 1)}, 1e-5);
  EXPECT_EQ(count_kernels(exe->fused_ir()), 1) << exe->fused_ir();
  EXPECT_NE(exe->fused_ir().find("kernel 0 (reduce, 2 outputs, over f32[128,1]):"), std::string::npos)
      << exe->fused_ir();
}

// The regression step of the seed: gradients of a mean squared error, then the update.
std::shared_ptr<const ir::Function> regression_step(int64_t n) {
  return trace({T(DType::f32, {}), T(DType::f32, {}), T(DType::f32, {n, 1}), T(DType::f32, {n, 1})},
               [n](std::vector<Array> a) {
                 Array w = a[0], b = a[1], x = a[2], y = a[3];
                 Array r = w * x + b - y;
                 Array gw = tj::sum(r * x * 2.0f) / static_cast<float>(n);
                 Array gb = tj::sum(r * 2.0f) / static_cast<float>(n);
                 return std::vector<Array>{w - gw * 0.005f, b - gb * 0.005f};
               });
}

TEST(BackendReduce, RegressionStepIsTwoKernels) {
  auto fn = regression_step(128);
  auto exe = expect_matches(*fn, {tj::array({0.3f}, {}), tj::array({-0.2f}, {}),
                                  test_array(T(DType::f32, {128, 1})), test_array(T(DType::f32, {128, 1}), 1)},
                            1e-5);
  const std::string& fused = exe->fused_ir();
  EXPECT_EQ(count_kernels(fused), 2) << fused;
  EXPECT_NE(fused.find("kernel 0 (reduce, 2 outputs, over f32[128,1]):"), std::string::npos) << fused;
  EXPECT_NE(fused.find("kernel 1 (elementwise, 2 outputs, over f32[]):"), std::string::npos) << fused;
  EXPECT_EQ(fused.rfind("{ lambda ", 0), 0u) << fused;
}

// The step at sizes past the parallel threshold, odd ones too (uneven parts and chunks): still
// two kernels, one pass over x and y, the reduction cut into parts; both outputs within 1e-5 of
// the step computed in f64 by hand from the same data.
TEST(BackendReduce, LargeRegressionStepIsOneSplitPass) {
  for (int64_t n : {int64_t{128}, int64_t{65537}, (int64_t{1} << 20) + 3, int64_t{1} << 22}) {
    auto fn = regression_step(n);
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::uniform_real_distribution<double> uni(-2.0, 2.0);
    std::vector<double> xv(static_cast<size_t>(n)), yv(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) xv[i] = uni(rng), yv[i] = 2 * xv[i] - 1 + uni(rng) / 4;
    Array x = make_array(T(DType::f32, {n, 1}), xv), y = make_array(T(DType::f32, {n, 1}), yv);
    const float w = 0.3f, b = -0.2f;
    auto exe = compile(*fn, {});
    std::vector<Array> got = run_on(exe, {tj::array({w}, {}), tj::array({b}, {}), x, y});
    const std::string& fused = exe->fused_ir();
    EXPECT_EQ(count_kernels(fused), 2) << fused;
    EXPECT_NE(fused.find("kernel 0 (reduce, 2 outputs, over f32[" + std::to_string(n) + ",1]"),
              std::string::npos) << fused;
    EXPECT_EQ(fused.find(" parts)") != std::string::npos, n > 128) << fused;
    std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
    // mag_*: the sums of the terms' magnitudes before cancellation, which bound the f32
    // rounding of each term (a few ulps); the sums themselves accumulate in f64.
    double sum_rx = 0, sum_r = 0, mag_rx = 0, mag_r = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const double r = static_cast<double>(w) * xs[i] + b - ys[i];
      const double mag = std::fabs(w * xs[i]) + std::fabs(b) + std::fabs(ys[i]);
      sum_rx += r * xs[i], sum_r += r;
      mag_rx += mag * std::fabs(xs[i]), mag_r += mag;
    }
    const double dn = static_cast<double>(n);
    const double want_w = w - 0.01 * sum_rx / dn, want_b = b - 0.01 * sum_r / dn;
    EXPECT_NEAR(got[0].item<float>(), want_w, 1e-7 + 0.01 * 4e-7 * mag_rx / dn) << n;
    EXPECT_NEAR(got[1].item<float>(), want_b, 1e-7 + 0.01 * 4e-7 * mag_r / dn) << n;
  }
}

// Sums and maxima over two inputs, in every dtype that has them, to few outputs over an odd,
// large element count: the last axis of [n], [3,n] and [5,2,n] (flat, cut per output) and the
// first of [n,3] and [n,2,3] (row-major, cut along it). One kernel cut into parts; each output
// equal to a loop over its elements (integers exactly, wrapping as u32 arithmetic; maxima
// exactly; float sums within the output's rounding of the exact sum).
TEST(BackendReduce, SplitReductionsWithSeveralOutputsInEveryDtype) {
  const int64_t n = 300007;
  struct Case {
    Shape shape;
    int64_t axis;
  };
  const Case cases[] = {{{n}, 0}, {{3, n}, 1}, {{5, 2, n}, 2}, {{n, 3}, 0}, {{n, 2, 3}, 0}};
  std::mt19937 rng(7);
  for (DType d : kAllDtypes) {
    for (const Case& c : cases) {
      const int64_t outputs = shape_size(c.shape) / n;
      // Element i of output o is at o * out_stride + i * in_stride.
      const int64_t out_stride = c.axis == 0 ? 1 : n, in_stride = c.axis == 0 ? outputs : 1;
      const bool sums = d != DType::bool_;
      // Random values; an integer's extremes early on, each output's maximum of b at its last
      // element (the last part's last step).
      std::vector<double> a(static_cast<size_t>(outputs * n)), b(a.size());
      for (size_t i = 0; i < a.size(); ++i) {
        const int r = static_cast<int>(rng() % 2001) - 1000;
        a[i] = d == DType::bool_ ? r > 0 : is_float(d) ? r / 250.0 : d == DType::u32 ? r + 1000 : r;
        b[i] = d == DType::bool_ ? 0 : a[i] / 2;
      }
      if (d == DType::i32) a[1] = -2147483648.0, a[2] = 2147483647.0;
      if (d == DType::u32) a[1] = 4294967295.0;
      for (int64_t o = 0; o < outputs; ++o)
        b[static_cast<size_t>(o * out_stride + (n - 1) * in_stride)] = 1000 + o % 2;
      const ir::Type type = T(d, c.shape);
      auto fn = trace({type, type}, [&](std::vector<Array> x) {
        std::vector<Array> out = {tj::max(x[0], {c.axis}), tj::max(x[1], {c.axis})};
        if (sums) {
          out.push_back(tj::sum(x[0], {c.axis}));
          out.push_back(tj::sum(x[0] * x[1], {c.axis}));
        }
        return out;
      });
      Array in_a = make_array(type, a), in_b = make_array(type, b);
      auto exe = compile(*fn, {});
      std::vector<Array> got = run_on(exe, {in_a, in_b});
      const std::string& fused = exe->fused_ir();
      const std::string what =
          absl::StrCat(std::string(dtype_name(d)), " ", ir::type_str(type), " axis ", c.axis);
      EXPECT_EQ(count_kernels(fused), 1) << what << "\n" << fused;
      EXPECT_NE(fused.find(sums ? ", 4 outputs, " : ", 2 outputs, "), std::string::npos) << fused;
      EXPECT_NE(fused.find(" parts):"), std::string::npos) << what << "\n" << fused;
      // The inputs as stored (f32 rounds, integers truncate, bool is 0 or 1).
      std::vector<double> av = in_a.to_vector<double>(), bv = in_b.to_vector<double>();
      std::vector<std::vector<double>> values;
      for (const Array& g : got) values.push_back(g.to_vector<double>());
      for (int64_t o = 0; o < outputs; ++o) {
        double max_a = -INFINITY, max_b = -INFINITY, sum_a = 0, sum_ab = 0, mag = 0;
        uint32_t wrap_a = 0, wrap_ab = 0;
        for (int64_t i = 0; i < n; ++i) {
          const size_t at = static_cast<size_t>(o * out_stride + i * in_stride);
          const double x = av[at], y = bv[at];
          const double xy = d == DType::f32 ? static_cast<float>(x) * static_cast<float>(y) : x * y;
          max_a = std::max(max_a, x), max_b = std::max(max_b, y);
          sum_a += x, sum_ab += xy, mag += std::fabs(x) + std::fabs(xy);
          if (is_integer(d)) {
            const auto u = [](double z) { return static_cast<uint32_t>(static_cast<int64_t>(z)); };
            wrap_a += u(x), wrap_ab += u(x) * u(y);
          }
        }
        auto value = [&](size_t k) { return values[k][static_cast<size_t>(o)]; };
        auto wrapped = [&](uint32_t s) {  // as i32 or u32
          return d == DType::i32 ? static_cast<int32_t>(s) : static_cast<double>(s);
        };
        EXPECT_EQ(value(0), max_a) << what << " output " << o;
        EXPECT_EQ(value(1), max_b) << what << " output " << o;
        if (!sums) continue;
        if (is_integer(d)) {
          EXPECT_EQ(value(2), wrapped(wrap_a)) << what << " output " << o;
          EXPECT_EQ(value(3), wrapped(wrap_ab)) << what << " output " << o;
        } else {
          // Flat: accumulated in f64, so the output's rounding; row-major f32: accumulated in
          // f32 (as unsplit), k terms per part and 64 parts, within (k + 64) ulps of mag.
          const double k = static_cast<double>(n) / 64 + 64;
          const double tol = d == DType::f64            ? 1e-12 * mag
                             : c.axis + 1 == static_cast<int64_t>(c.shape.size()) ? 1e-7 * mag
                                                                                 : k * 6e-8 * mag;
          EXPECT_NEAR(value(2), sum_a, tol) << what << " output " << o;
          EXPECT_NEAR(value(3), sum_ab, tol) << what << " output " << o;
        }
      }
    }
  }
}

// ---- Matmul ----

TEST(BackendMatmul, Shapes) {
  for (auto [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {3, 4, 5}, {1, 7, 9}, {8, 6, 1}, {1, 1, 1}, {17, 33, 65}, {4, 0, 3}}) {
    auto fn = trace({T(DType::f32, {m, k}), T(DType::f32, {k, n})},
                    [](std::vector<Array> x) { return std::vector<Array>{tj::matmul(x[0], x[1])}; });
    // Summed over k in order, as the reference: exact.
    expect_matches(*fn, {test_array(T(DType::f32, {m, k})), test_array(T(DType::f32, {k, n}), 1)});
  }
}

TEST(BackendMatmul, OperandsComputedAndIntegersWrap) {
  auto fn = trace({T(DType::i32, {5, 4}), T(DType::i32, {5, 3})}, [](std::vector<Array> x) {
    Array xt = tj::transpose(x[0], {1, 0});                 // a stored operand
    return std::vector<Array>{tj::matmul(xt * 7, x[1] + 1) + 2};
  });
  expect_matches(*fn, {test_array(T(DType::i32, {5, 4})), test_array(T(DType::i32, {5, 3}), 1)});
}

TEST(BackendMatmul, VectorOperands) {
  auto fn = trace({T(DType::f64, {6}), T(DType::f64, {6, 4})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::matmul(x[0], x[1]), tj::matmul(x[1], tj::ones({4}, DType::f64))};
  });
  expect_matches(*fn, {test_array(T(DType::f64, {6})), test_array(T(DType::f64, {6, 4}), 1)});
}

TEST(BackendMatmul, OneElementConstantOperand) {
  // A one-element constant is an LLVM constant, not a buffer: matmul must read it as such.
  Array c = tj::array({2.5f}, {1, 1});
  Array row = tj::array({1.f, -2.f, 3.f}, {1, 3});
  auto fn = trace({T(DType::f32, {4, 1})}, [&](std::vector<Array> x) {
    return std::vector<Array>{tj::matmul(x[0], c), tj::matmul(c, row), tj::matmul(x[0], row)};
  });
  expect_matches(*fn, {test_array(T(DType::f32, {4, 1}))});
}

// ---- Shapes, constants, outputs ----

TEST(BackendProgram, SizeZeroArrays) {
  auto fn = trace({T(DType::f32, {0}), T(DType::i32, {3, 0})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::exp(x[0]) + 1.0f, x[1] * 2, tj::transpose(x[1], {1, 0})};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {0})), test_array(T(DType::i32, {3, 0}))});
  auto out = run_on(exe, {test_array(T(DType::f32, {0})), test_array(T(DType::i32, {3, 0}))});
  EXPECT_EQ(out[2].shape(), (Shape{0, 3}));
}

TEST(BackendProgram, ZeroDimensionalArrays) {
  auto fn = trace({T(DType::f32, {}), T(DType::i32, {}), T(DType::bool_, {})}, [](std::vector<Array> x) {
    Array f = tj::where(x[2], tj::sin(x[0]) * 3.0f, x[0] - 1.0f);
    return std::vector<Array>{f, x[1] * x[1] - 4, x[2] ^ tj::Array(true), tj::astype(x[1], DType::f32) + f};
  });
  for (bool c : {false, true})
    expect_matches(*fn, {tj::array({0.7f}, {}), tj::array({-9}, {}), tj::array({c}, {})}, 1e-6);
}

TEST(BackendProgram, ScalarAndBigConstants) {
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * static_cast<float>(i);
  Array table = tj::array(values, {1000});
  Array nan_const = tj::array({std::nanf("")}, {});
  auto fn = trace({T(DType::f32, {1000})}, [&](std::vector<Array> x) {
    return std::vector<Array>{x[0] * table + 3.5f, tj::maximum(x[0], nan_const), table * 2.0f};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {1000}))});
  EXPECT_TRUE(std::isnan(run_on(exe, {test_array(T(DType::f32, {1000}))})[1].to_vector<float>()[3]));
}

TEST(BackendProgram, OutputsThatAreInputsConstantsOrRepeated) {
  Array c = tj::array({1, 2, 3}, {3});
  auto fn = trace({T(DType::i32, {3}), T(DType::f32, {2})}, [&](std::vector<Array> x) {
    Array y = x[0] + 1;
    return std::vector<Array>{x[0], y, y, c, x[1], tj::Array(5)};
  });
  auto exe = compile(*fn, {});
  Array a = tj::array({4, 5, 6}, {3}), b = tj::array({1.f, 2.f}, {2});
  auto out = run_on(exe, {a, b});
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[0].impl(), a.impl());  // aliased, not copied
  EXPECT_EQ(out[1].to_vector<int32_t>(), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(out[2].to_vector<int32_t>(), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(out[3].to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(out[4].impl(), b.impl());
  EXPECT_EQ(out[5].item<int32_t>(), 5);
  EXPECT_EQ(count_kernels(exe->fused_ir()), 1) << exe->fused_ir();
}

TEST(BackendProgram, BoolsInMemoryAndRegisters) {
  auto fn = trace({T(DType::f32, {9}), T(DType::bool_, {9})}, [](std::vector<Array> x) {
    Array pos = x[0] > 0.0f;
    return std::vector<Array>{pos, pos & x[1], pos | x[1], tj::where(pos ^ x[1], x[0], -x[0]),
                              tj::astype(x[1], DType::i32), tj::max(x[1]), pos == x[1]};
  });
  expect_matches(*fn, {test_array(T(DType::f32, {9})), test_array(T(DType::bool_, {9}), 1)});
}

TEST(BackendProgram, DeadEquationsAreIgnored) {
  auto fn = trace({T(DType::f32, {4})}, [](std::vector<Array> x) {
    Array unused = tj::sum(tj::exp(x[0]));
    (void)unused;
    return std::vector<Array>{x[0] + 1.0f};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {4}))});
  EXPECT_EQ(count_kernels(exe->fused_ir()), 1) << exe->fused_ir();
}

TEST(BackendProgram, InputOfTheWrongTypeIsAnError) {
  auto fn = trace({T(DType::f32, {4})}, [](std::vector<Array> x) { return std::vector<Array>{x[0] * 2.0f}; });
  auto exe = compile(*fn, {});
  EXPECT_THROW(run_on(exe, {tj::array({1, 2, 3, 4}, {4})}), tj::TypeError);
  EXPECT_THROW(run_on(exe, {tj::array({1.f, 2.f}, {2})}), tj::TypeError);
  EXPECT_THROW(run_on(exe, {}), tj::Error);
}

// ---- Fusion decisions ----

TEST(BackendFusion, DependentElementwiseOutputsShareALoop) {
  auto fn = trace({T(DType::f32, {64})}, [](std::vector<Array> x) {
    Array y1 = tj::exp(x[0]);
    return std::vector<Array>{y1, y1 * 2.0f, tj::sum(x[0], {0})};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {64}))}, 1e-6);
  EXPECT_NE(exe->fused_ir().find("(elementwise, 2 outputs, over f32[64])"), std::string::npos)
      << exe->fused_ir();
}

TEST(BackendFusion, CostlyValueUnderBroadcastIsStored) {
  auto fn = trace({T(DType::f32, {300})}, [](std::vector<Array> x) {
    Array e = tj::exp(tj::sin(x[0]));                  // costly, expanded 64 times
    return std::vector<Array>{tj::broadcast_to(e, {64, 300}) * 2.0f};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {300}))}, 1e-6);
  EXPECT_EQ(count_kernels(exe->fused_ir()), 2) << exe->fused_ir();
}

TEST(BackendFusion, BlowUpFallsBackToStoredLayoutResults) {
  // Each step reads its input at two shifted positions: inlined, 2^20 evaluations.
  auto fn = trace({T(DType::f32, {64})}, [](std::vector<Array> x) {
    Array y = x[0];
    for (int i = 0; i < 20; ++i) {
      int64_t n = y.shape()[0];
      y = (tj::slice(y, {0}, {n - 1}) + tj::slice(y, {1}, {n})) * 0.5f;
    }
    return std::vector<Array>{y};
  });
  auto exe = expect_matches(*fn, {test_array(T(DType::f32, {64}))});
  EXPECT_GT(count_kernels(exe->fused_ir()), 10) << exe->fused_ir();
}

TEST(BackendFusion, FusedIrNamesMatchThePrinter) {
  auto fn = trace({T(DType::f32, {3}), T(DType::f32, {3})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::exp(x[0]) * x[1]};
  });
  auto exe = compile(*fn, {});
  std::string printed = ir::to_string(*fn), fused = exe->fused_ir();
  // Same header and the same binders, only grouped.
  EXPECT_EQ(printed.substr(0, printed.find('\n')), fused.substr(0, fused.find('\n')));
  EXPECT_NE(fused.find("c:f32[3] = exp a"), std::string::npos) << fused;
  EXPECT_NE(fused.find("d:f32[3] = mul c b"), std::string::npos) << fused;
  EXPECT_NE(fused.find("  in (d,) }"), std::string::npos) << fused;
}

// ---- Large arrays, threads, vector code ----

TEST(BackendRuntime, LargeArraysTakeTheParallelPath) {
  const int64_t n = int64_t{1} << 20;
  auto fn = trace({T(DType::f32, {n}), T(DType::f32, {1024, 1024})}, [](std::vector<Array> x) {
    Array y = tj::sqrt(tj::abs(x[0])) * 3.0f + x[0];
    return std::vector<Array>{y, tj::max(x[1], {1}), tj::transpose(x[1], {1, 0}) - x[1]};
  });
  std::vector<Array> in = {test_array(T(DType::f32, {n})), test_array(T(DType::f32, {1024, 1024}), 1)};
  expect_matches(*fn, in);  // exact: no reassociation
  // Sums of 1024 terms in a different order: within a few ulps of the sum of magnitudes.
  auto sums = trace({T(DType::f32, {1024, 1024})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::sum(x[0], {1}), tj::sum(x[0], {0}), tj::sum(x[0])};
  });
  expect_matches(*sums, {in[1]}, 1e-3);
  auto fn3 = trace({T(DType::f32, {64, 256, 64})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::sum(x[0], {1}), tj::max(x[0], {1})};  // row-major, split on axis 0
  });
  expect_matches(*fn3, {test_array(T(DType::f32, {64, 256, 64}))}, 1e-3);
  auto mm = trace({T(DType::f32, {256, 128}), T(DType::f32, {128, 256})},
                  [](std::vector<Array> x) { return std::vector<Array>{tj::matmul(x[0], x[1])}; });
  expect_matches(*mm, {test_array(T(DType::f32, {256, 128})), test_array(T(DType::f32, {128, 256}), 1)});
}

TEST(BackendRuntime, ConcurrentRunsFromFourThreads) {
  const int64_t n = 200000;
  auto fn = trace({T(DType::f32, {n})}, [](std::vector<Array> x) {
    return std::vector<Array>{x[0] * 2.0f + 1.0f, tj::sum(x[0], {0})};
  });
  auto exe = compile(*fn, {});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<float> v(n, static_cast<float>(t + rep));
        auto out = run_on(exe, {tj::array(v, {n})});
        auto y = out[0].to_vector<float>();
        float want = static_cast<float>(t + rep) * 2.0f + 1.0f;
        if (y[0] != want || y[n - 1] != want ||
            std::fabs(out[1].item<float>() - static_cast<float>(t + rep) * n) > 1e-3f * n * (t + rep + 1))
          ++failures[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(BackendRuntime, VectorCodeForALargeElementwiseKernel) {
  auto fn = trace({T(DType::f32, {1 << 16}), T(DType::f32, {1 << 16})}, [](std::vector<Array> x) {
    return std::vector<Array>{x[0] * x[1] + 2.0f, tj::sum(x[0])};
  });
  CompileOptions options;
  options.want_texts = true;
  auto exe = compile(*fn, options);
  EXPECT_TRUE(std::regex_search(exe->optimized_llvm_ir(), std::regex("<[0-9]+ x float>")))
      << exe->optimized_llvm_ir();
  EXPECT_NE(exe->optimized_llvm_ir().find("reassoc"), std::string::npos);
  EXPECT_FALSE(exe->llvm_ir().empty());
  EXPECT_FALSE(exe->assembly().empty());
  auto plain = compile(*fn, {});
  EXPECT_TRUE(plain->llvm_ir().empty());
  EXPECT_TRUE(plain->assembly().empty());
  EXPECT_FALSE(plain->fused_ir().empty());
}

// A root kernel the runtime never splits runs over [0, trip count), and is compiled over those
// constants: 128 floats (four 32-float vector steps on AVX-512, or sixteen with 8-wide AVX2)
// unroll whole, leaving straight-line code with no loop for level-0 code generation to spill.
// Other sizes (a remainder, a loop too long to unroll, one element) still compute every element.
TEST(BackendRuntime, ASmallRootKernelIsCompiledOverItsWholeRange) {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{100}, int64_t{128}, int64_t{1000}, int64_t{4099}}) {
    auto fn = trace({T(DType::f32, {}), T(DType::f32, {n}), T(DType::f32, {n})}, [](std::vector<Array> x) {
      Array r = x[0] * x[1] - x[2];
      return std::vector<Array>{r + r, (r + r) * x[1]};
    });
    CompileOptions options;
    options.want_texts = true;
    auto exe = expect_matches(*fn, {test_array(T(DType::f32, {})), test_array(T(DType::f32, {n}), 1),
                                    test_array(T(DType::f32, {n}), 2)},
                              0, options);
    if (n == 128) {
      EXPECT_EQ(exe->optimized_llvm_ir().find(" phi "), std::string::npos) << exe->optimized_llvm_ir();
    }
  }
}

TEST(BackendRuntime, OptLevelZeroAndFastMathAgree) {
  auto fn = trace({T(DType::f32, {3, 50})}, [](std::vector<Array> x) {
    return std::vector<Array>{tj::sum(tj::tanh(x[0]) * tj::log1p(tj::abs(x[0])), {1}),
                              tj::transpose(x[0], {1, 0}) / 3.0f};
  });
  std::vector<Array> in = {test_array(T(DType::f32, {3, 50}))};
  CompileOptions o0;
  o0.opt_level = 0;
  expect_matches(*fn, in, 1e-5, o0);
  CompileOptions fast;
  fast.fast_math = true;
  auto out = compile(*fn, fast)->run(in);
  auto want = detail::eval_ir(*fn, in, {});
  // Fast math may reorder and use reciprocals: close, not exact (no NaN or inf in these).
  auto g = out[1].to_vector<float>(), w = want[1].to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(w[i])) continue;
    EXPECT_NEAR(g[i], w[i], 1e-5 * std::max(1.0f, std::fabs(w[i])));
  }
}

TEST(BackendRuntime, PhaseTimesAreFilled) {
  auto exe = compile(*regression_step(128), {});
  const BackendTimes& t = exe->times();
  EXPECT_GT(t.fusion_s, 0);
  EXPECT_GT(t.lower_s, 0);
  EXPECT_GT(t.llvm_opt_s, 0);
  EXPECT_GT(t.codegen_s, 0);
}

}  // namespace
}  // namespace tracejit::backend

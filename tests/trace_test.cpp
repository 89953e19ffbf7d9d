// The tracer and the IR: what tracing records, how the printer shows it, what the verifier
// rejects, how traces nest, and that misuse leaves no trace state behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/array_impl.h"
#include "ir/ir.h"
#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using ::testing::HasSubstr;

namespace {

using seed::Params;

using seed::loss;

const tj::ir::Function& fn_of(const tj::IR& ir) { return ir.function(); }

std::vector<std::string> prim_names(const tj::ir::Function& fn) {
  std::vector<std::string> names;
  for (const auto& e : fn.eqns) names.emplace_back(tj::ir::prim_name(e.prim));
  return names;
}

TEST(Trace, SeedLossStructure) {
  Params p{Array(1.f), Array(0.f)};
  tj::IR ir = tj::make_ir(loss)(p, tj::zeros({128, 1}), tj::zeros({128, 1}));
  const auto& fn = fn_of(ir);
  // Four inputs: weight, bias (leaf order of the struct), x, y.
  ASSERT_EQ(fn.inputs.size(), 4u);
  EXPECT_EQ(tj::ir::type_str(fn.type(fn.inputs[0])), "f32[]");
  EXPECT_EQ(tj::ir::type_str(fn.type(fn.inputs[2])), "f32[128,1]");
  // w*x broadcasts w, + b broadcasts b, - y is add(neg), square is mul, mean is sum then div.
  EXPECT_EQ(prim_names(fn),
            (std::vector<std::string>{"broadcast_in_dim", "mul", "broadcast_in_dim", "add", "neg",
                                      "add", "mul", "reduce_sum", "div"}));
  ASSERT_EQ(fn.outputs.size(), 1u);
  EXPECT_EQ(tj::ir::type_str(fn.type(fn.outputs[0])), "f32[]");
  std::string text = ir.str();
  EXPECT_THAT(text, HasSubstr("{ lambda ; a:f32[] b:f32[] c:f32[128,1] d:f32[128,1]. let"));
  EXPECT_THAT(text, HasSubstr("e:f32[128,1] = broadcast_in_dim[broadcast_dimensions=() shape=(128, 1)] a"));
  EXPECT_THAT(text, HasSubstr("reduce_sum[axes=(0, 1)]"));
  EXPECT_THAT(text, HasSubstr("div l 128.0:f32[]"));  // the count, a weak literal
  EXPECT_THAT(text, HasSubstr("in (m,) }"));
}

TEST(Trace, OneEquationPerLineWithTypedBinders) {
  tj::IR ir = tj::make_ir([](Array x) { return tj::sin(x) * 2.f; })(tj::ones({3}));
  std::string text = ir.str();
  // The header and three equations end in a newline; the closing "in" line does not.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 3);
  EXPECT_THAT(text, HasSubstr("b:f32[3] = sin a"));
  EXPECT_THAT(text, HasSubstr("broadcast_in_dim[broadcast_dimensions=() shape=(3,)] 2.0:f32[]"));
}

TEST(Trace, CapturedConcreteArrayBecomesConstant) {
  Array table = tj::array({1.f, 2.f, 3.f}, {3});
  tj::IR ir = tj::make_ir([&](Array x) { return x + table; })(tj::ones({3}));
  const auto& fn = fn_of(ir);
  ASSERT_EQ(fn.const_vars.size(), 1u);
  EXPECT_EQ(tj::detail::array_over(fn.type(fn.const_vars[0]), fn.const_values[0]).to_vector<float>(),
            (std::vector<float>{1, 2, 3}));
  EXPECT_THAT(ir.str(), HasSubstr("{ lambda a:f32[3] ; b:f32[3]. let"));
}

TEST(Trace, WeakScalarTakesArrayDtype) {
  tj::IR ir = tj::make_ir([](Array n) { return n + 1; })(Array(0));
  EXPECT_THAT(ir.str(), HasSubstr("add a 1:i32[]"));
  tj::IR f64 = tj::make_ir([](Array x) { return x * 0.5f; })(tj::zeros({2}, tj::DType::f64));
  EXPECT_THAT(f64.str(), HasSubstr("0.5:f64[]"));
}

TEST(Trace, HashConsesIdenticalEquations) {
  tj::IR ir = tj::make_ir([](Array x) { return tj::exp(x) + tj::exp(x); })(tj::ones({2}));
  EXPECT_EQ(prim_names(fn_of(ir)), (std::vector<std::string>{"exp", "add"}));
}

TEST(Trace, EqualCxxScalarsShareOneConstant) {
  // Each `0.25f` is a fresh Array; the trace keeps one constant per (type, bits), so the
  // broadcasts of it hash-cons and `x * 0.25f` traced twice is one equation: broadcast 0.25,
  // mul, add, broadcast 0.5, mul, add. 0.0f and -0.0f differ in bits and stay apart.
  tj::IR ir = tj::make_ir([](const Array& x) {
    Array y = x * 0.25f + 0.25f;
    return y * 0.5f + x * 0.25f;
  })(tj::zeros({4}));
  EXPECT_EQ(fn_of(ir).eqns.size(), 6u) << ir.str();
  EXPECT_EQ(fn_of(ir).const_vars.size(), 2u) << ir.str();
  tj::IR zeros = tj::make_ir([](const Array& x) { return (x + 0.f) * (x + -0.f); })(tj::zeros({4}));
  EXPECT_EQ(fn_of(zeros).const_vars.size(), 2u) << zeros.str();
}

TEST(Trace, ParametersArePrinted) {
  tj::IR ir = tj::make_ir([](Array x) {
    return tj::sum(tj::transpose(tj::reshape(x, {2, 3}), {1, 0}), {0});
  })(tj::arange(6, tj::DType::f32));
  std::string text = ir.str();
  EXPECT_THAT(text, HasSubstr("reshape[new_sizes=(2, 3)]"));
  EXPECT_THAT(text, HasSubstr("transpose[permutation=(1, 0)]"));
  EXPECT_THAT(text, HasSubstr("reduce_sum[axes=(0,)]"));
}

TEST(Trace, ConcreteResultIsCapturedAsOutput) {
  // A function that ignores its argument: the output is the constant computed at trace time.
  tj::IR ir = tj::make_ir([](Array) { return 7; })(Array(1.f));
  EXPECT_THAT(ir.str(), HasSubstr("in (7:i32[],) }"));
}

TEST(Trace, NestedTraceCapturesOuterTracer) {
  // Inside the outer trace, an inner trace uses the outer tracer x: it becomes a capture of the
  // inner IR, and replaying the inner IR in the outer trace wires x back in.
  tj::IR outer = tj::make_ir([](Array x) {
    tj::detail::TraceScope inner("inner");
    Array y = inner.new_input(tj::DType::f32, {}, false);
    tj::detail::Traced t = inner.finish({y * x});
    EXPECT_EQ(t.fn->captures.size(), 1u);
    EXPECT_EQ(t.captured.size(), 1u);
    std::vector<Array> in = {Array(3.f)};
    return tj::detail::eval_ir(*t.fn, in, t.captured)[0];
  })(Array(2.f));
  EXPECT_THAT(outer.str(), HasSubstr("mul 3.0:f32[] a"));
}

TEST(Trace, EvalIrEagerlyComputesValues) {
  tj::IR ir = tj::make_ir(loss)(Params{Array(2.f), Array(1.f)}, tj::zeros({4, 1}), tj::zeros({4, 1}));
  std::vector<Array> in = {Array(2.f), Array(1.f), tj::array({1.f, 2.f, 3.f, 4.f}, {4, 1}),
                           tj::array({3.f, 5.f, 7.f, 10.f}, {4, 1})};
  // pred = 3 5 7 9; residuals 0 0 0 -1; mean of squares = 1/4.
  EXPECT_FLOAT_EQ(tj::detail::eval_ir(ir.function(), in, {})[0].item<float>(), 0.25f);
}

TEST(TraceErrors, ItemOnTracerIsConcretizationError) {
  try {
    tj::make_ir([](Array x) { return Array(x.item<float>()); })(Array(1.f));
    FAIL() << "expected ConcretizationError";
  } catch (const tj::ConcretizationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("[item]"));
    EXPECT_THAT(e.what(), HasSubstr("f32[]"));
    EXPECT_THAT(e.what(), HasSubstr("exists only when the compiled code runs"));
  }
}

TEST(TraceErrors, IfOnTracerIsConcretizationError) {
  EXPECT_THROW(tj::make_ir([](Array x) { return (x > 0) ? x : -x; })(Array(1.f)),
               tj::ConcretizationError);
  EXPECT_THROW(tj::make_ir([](Array x) { return x.to_vector<float>().size(); })(tj::ones({2})),
               tj::ConcretizationError);
}

TEST(TraceErrors, LeakedTracerUsedLater) {
  Array leaked;
  tj::make_ir([&](Array x) {
    leaked = x * 2;
    return x;
  })(Array(1.f));
  try {
    Array y = leaked + 1;
    FAIL() << "expected TracerLeakError";
  } catch (const tj::TracerLeakError& e) {
    EXPECT_THAT(e.what(), HasSubstr("[add]"));
    EXPECT_THAT(e.what(), HasSubstr("after that trace had ended"));
    EXPECT_THAT(e.what(), HasSubstr("return them"));
  }
  EXPECT_THROW(leaked.item<float>(), tj::TracerLeakError);
  // A later trace that uses the leaked tracer is refused too.
  EXPECT_THROW(tj::make_ir([&](Array x) { return x + leaked; })(Array(1.f)), tj::TracerLeakError);
}

TEST(TraceErrors, ExceptionMidTraceLeavesNoState) {
  EXPECT_THROW(tj::make_ir([](Array x) {
                 Array y = x * 2;
                 return tj::reshape(y, {5});  // f32[3] cannot become [5]
               })(tj::ones({3})),
               tj::ShapeError);
  EXPECT_FALSE(tj::detail::tracing());
  // Eager work and a good trace afterwards are unaffected.
  EXPECT_EQ((tj::ones({2}) + 1).to_vector<float>(), (std::vector<float>{2, 2}));
  tj::IR ir = tj::make_ir([](Array x) { return x * 2; })(tj::ones({3}));
  EXPECT_EQ(ir.function().eqns.size(), 2u);
}

TEST(TraceErrors, UserExceptionPropagatesUnchanged) {
  struct Mine : std::runtime_error {
    Mine() : std::runtime_error("mine") {}
  };
  EXPECT_THROW(tj::make_ir([](Array x) -> Array { throw Mine(); })(Array(1.f)), Mine);
  EXPECT_FALSE(tj::detail::tracing());
}

// The verifier: hand-broken IR is rejected with the pass named.
tj::ir::Function small_function() {
  tj::IR ir = tj::make_ir([](Array x) { return tj::exp(x) * x; })(tj::ones({3}));
  return ir.function();
}

TEST(Verifier, AcceptsTracedIr) { EXPECT_NO_THROW(tj::ir::verify(small_function(), "test")); }

TEST(Verifier, RejectsWrongResultType) {
  tj::ir::Function fn = small_function();
  fn.types[static_cast<size_t>(fn.eqns[0].out[0])].shape = {4};
  try {
    tj::ir::verify(fn, "broken-pass");
    FAIL();
  } catch (const tj::InternalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("broken-pass"));
    EXPECT_THAT(e.what(), HasSubstr("equation 0 (exp) result 0 is recorded as f32[4]"));
  }
}

TEST(Verifier, RejectsUseBeforeDefinition) {
  tj::ir::Function fn = small_function();
  std::swap(fn.eqns[0], fn.eqns[1]);
  EXPECT_THROW(tj::ir::verify(fn, "reorder"), tj::InternalError);
}

TEST(Verifier, RejectsDoubleDefinition) {
  tj::ir::Function fn = small_function();
  fn.eqns[1].out[0] = fn.eqns[0].out[0];
  EXPECT_THROW(tj::ir::verify(fn, "dup"), tj::InternalError);
}

TEST(Verifier, RejectsIllTypedOperands) {
  tj::ir::Function fn = small_function();
  tj::ir::VarId i32 = fn.new_var(tj::ir::Type{tj::DType::i32, {3}, false});
  fn.inputs.push_back(i32);
  fn.eqns[1].in[1] = i32;  // mul f32[3] i32[3]
  EXPECT_THROW(tj::ir::verify(fn, "retype"), tj::InternalError);
}

TEST(PrimitiveTable, EveryPrimitiveHasNameArityAndShapeRule) {
  std::set<std::string> names;
  for (tj::ir::Prim p : tj::ir::all_prims()) {
    const auto& info = tj::ir::prim_info(p);
    EXPECT_FALSE(info.name.empty());
    EXPECT_TRUE(names.insert(std::string(info.name)).second) << info.name << " twice";
    EXPECT_GE(info.arity, -1);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(tj::ir::kNumPrims));
}

}  // namespace

// The IR passes: each rewrite checked on the equations it leaves, the values unchanged
// (evaluated eagerly before and after), and the verifier run by the pipeline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ir/ir.h"
#include "passes/pipeline.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

template <class F, class... Args>
tj::ir::Function traced(F f, const Args&... args) {
  return tj::make_ir(f)(args...).function();
}

std::vector<std::string> prims(const tj::ir::Function& fn) {
  std::vector<std::string> names;
  for (const auto& e : fn.eqns) names.emplace_back(tj::ir::prim_name(e.prim));
  return names;
}

std::vector<float> run(const tj::ir::Function& fn, std::vector<Array> in) {
  return tj::detail::eval_ir(fn, in, {})[0].to_vector<float>();
}

TEST(PassesDce, RemovesUnusedEquationsAndConstants) {
  Array unused_const = tj::array({1.f, 2.f});
  tj::ir::Function fn = traced([&](Array x) {
    Array dead = tj::exp(x) + unused_const;  // never returned
    (void)dead;
    return x * x;
  }, tj::ones({2}));
  EXPECT_EQ(prims(fn), (std::vector<std::string>{"exp", "add", "mul"}));
  EXPECT_TRUE(tj::passes::dce(fn));
  EXPECT_EQ(prims(fn), (std::vector<std::string>{"mul"}));
  EXPECT_TRUE(fn.const_vars.empty());
  EXPECT_NO_THROW(tj::ir::verify(fn, "dce"));
  EXPECT_FALSE(tj::passes::dce(fn));  // nothing more to do
}

TEST(PassesCse, MergesEqualConstantsAndEquations) {
  // Two separately built but equal arrays are two constants; CSE merges them and then the two
  // identical adds that read them.
  Array c1 = tj::array({1.f, 2.f}), c2 = tj::array({1.f, 2.f});
  tj::ir::Function fn = traced([&](Array x) { return (x + c1) * (x + c2); }, tj::ones({2}));
  EXPECT_EQ(prims(fn), (std::vector<std::string>{"add", "add", "mul"}));
  tj::ir::Function before = fn;
  EXPECT_TRUE(tj::passes::cse(fn));
  tj::passes::dce(fn);
  EXPECT_EQ(prims(fn), (std::vector<std::string>{"add", "mul"}));
  EXPECT_EQ(fn.const_vars.size(), 1u);
  std::vector<Array> in = {tj::array({3.f, 4.f})};
  EXPECT_EQ(run(fn, in), run(before, in));  // (4*4, 6*6)
  EXPECT_EQ(run(fn, in), (std::vector<float>{16, 36}));
}

TEST(PassesSimplify, MultiplyByOneAndDoubleNegation) {
  tj::ir::Function fn = traced([](Array x) { return -(-(x * 1.f)) / 1.f; }, tj::ones({3}));
  tj::ir::Function opt = tj::passes::optimize(fn);
  EXPECT_TRUE(opt.eqns.empty());  // the output is the input itself
  EXPECT_EQ(opt.outputs[0], opt.inputs[0]);
}

TEST(PassesSimplify, AddZeroOnlyForIntegers) {
  // x + 0 is not x for x = -0.0 in IEEE arithmetic, so floats keep the add.
  tj::ir::Function f = tj::passes::optimize(traced([](Array x) { return x + 0.f; }, tj::ones({2})));
  EXPECT_EQ(prims(f), (std::vector<std::string>{"broadcast_in_dim", "add"}));
  tj::ir::Function i = tj::passes::optimize(
      traced([](Array x) { return x + 0; }, tj::ones({2}, tj::DType::i32)));
  EXPECT_TRUE(i.eqns.empty());
  std::vector<Array> in = {tj::array({-0.f, 1.f})};
  EXPECT_FALSE(std::signbit(run(f, in)[0]));  // -0 + 0 = +0 is kept
}

TEST(PassesSimplify, FoldsSmallConstantsButNotBroadcasts) {
  Array two(2.f);
  tj::ir::Function fn = traced([&](Array x) { return x * tj::exp(two * 0.5f); }, tj::ones({1000}));
  tj::ir::Function opt = tj::passes::optimize(fn);
  // exp(2 * 0.5) folds to one scalar constant; its broadcast to [1000] stays an equation.
  EXPECT_EQ(prims(opt), (std::vector<std::string>{"broadcast_in_dim", "mul"}));
  std::vector<Array> in = {tj::ones({1000})};
  EXPECT_FLOAT_EQ(run(opt, in)[999], std::exp(1.f));
}

TEST(PassesSimplify, IdentityLayoutOpsDisappear) {
  tj::ir::Function fn = traced([](Array x) {
    return tj::transpose(tj::reshape(tj::reshape(x, {6}), {2, 3}), {0, 1}) + tj::stop_gradient(x);
  }, tj::ones({2, 3}));
  tj::ir::Function opt = tj::passes::optimize(fn);
  EXPECT_EQ(prims(opt), (std::vector<std::string>{"add"}));
}

TEST(PassesPipeline, TraceHookSeesEachChangingPass) {
  tj::ir::Function fn = traced([](Array x) {
    Array dead = tj::sin(x);
    (void)dead;
    return x * 1.f;
  }, tj::ones({2}));
  std::vector<std::string> passes;
  tj::passes::optimize(fn, [&](std::string_view pass, const tj::ir::Function& f) {
    passes.emplace_back(pass);
    tj::ir::verify(f, pass);
  });
  EXPECT_THAT(passes, ::testing::Contains("simplify"));
  EXPECT_THAT(passes, ::testing::Contains("dce"));
}

TEST(PassesPipeline, GradientIrShrinks) {
  auto loss = [](Array w, Array x) { return tj::sum(tj::square(w * x)); };
  tj::ir::Function fn = traced(tj::grad(loss), Array(2.f), tj::ones({8}));
  tj::ir::Function opt = tj::passes::optimize(fn);
  EXPECT_LT(opt.eqns.size(), fn.eqns.size());
  std::vector<Array> in = {Array(2.f), tj::arange(8, tj::DType::f32)};
  // d/dw sum((w x)^2) = 2 w sum(x^2) = 4 * 140
  EXPECT_FLOAT_EQ(tj::detail::eval_ir(opt, in, {})[0].item<float>(), 560.f);
  EXPECT_FLOAT_EQ(tj::detail::eval_ir(fn, in, {})[0].item<float>(), 560.f);
}

}  // namespace

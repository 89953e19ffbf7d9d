// Two-tier compilation (runtime/tiered.h): quick code first, optimized code compiled by the
// second call and swapped in; the same bits from both tiers and during the swap, on several
// threads; programs with float sums skip the quick tier.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>

#include "runtime/tiered.h"
#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace {

using seed::Params;

auto sgd_step(tj::JitOptions options) {
  return tj::jit(
      [](const Params& p, const Array& x, const Array& y) {
        Params g = tj::grad(seed::loss)(p, x, y);
        return tj::tree_map([](const Array& v, const Array& d) { return v - d * 0.1f; }, p, g);
      },
      options);
}

// x = [0, 1, 2, 3], y = 2x - 1, from w = b = 0: the gradient of mean((wx + b - y)^2) is
// dw = 2 mean((wx+b-y) x) = 2 mean((1 - 2x) x) = 2 (6 - 28) / 4 = -11 and
// db = 2 mean(wx+b-y) = 2 mean(1 - 2x) = 2 (4 - 12) / 4 = -4, so one step of 0.1 gives
// w = 1.1, b = 0.4.
const Array& xs() {
  static const Array x = tj::array({0.f, 1.f, 2.f, 3.f});
  return x;
}
const Array& ys() {
  static const Array y = xs() * 2.f - 1.f;
  return y;
}

bool tiers_off_by_env() {
  const char* env = std::getenv("TRACEJIT_TIERED");
  return env && std::string(env) == "0";
}

void expect_first_step(const Params& p) {
  EXPECT_NEAR(p.weight.item<float>(), 1.1f, 1e-6f);
  EXPECT_NEAR(p.bias.item<float>(), 0.4f, 1e-6f);
}

// No float sum, so it gets a quick tier; exp, tanh and log1p are the lowering's own polynomials,
// whose multiply-adds both tiers must round alike.
auto transcendental(tj::JitOptions options) {
  return tj::jit([](const Array& v) { return tj::tanh(v) * 2.f + tj::exp(-v * v) + tj::log1p(v * v); },
                 options);
}
double transcendental_ref(double v) { return std::tanh(v) * 2 + std::exp(-v * v) + std::log1p(v * v); }

const Array& grid() {  // 4096 points in [-6, 6)
  static const Array g = (tj::astype(tj::arange(4096), tj::DType::f32) - 2048.f) / 341.3333f;
  return g;
}

void expect_transcendental(const Array& out) {
  const std::vector<float> x = grid().to_vector<float>(), y = out.to_vector<float>();
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = transcendental_ref(x[i]);
    ASSERT_NEAR(y[i], want, 4e-6 * (1 + std::abs(want))) << "at x = " << x[i];
  }
}

TEST(Tiered, QuickCodeFirstThenTheOptimizedCodeGivesTheSameBits) {
  if (tiers_off_by_env()) GTEST_SKIP() << "TRACEJIT_TIERED=0 turns tiers off";
  const int64_t swaps = tj::detail::tier_swaps();
  auto f = transcendental({.share_code = false, .tiered = true});
  const Array first = f(grid());
  expect_transcendental(first);
  EXPECT_EQ(tj::detail::tier_swaps(), swaps);  // the first call ran the quick code only
  const Array second = f(grid());              // the second compiles the optimized code
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);
  const Array third = f(grid());
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);
  const std::vector<float> a = first.to_vector<float>();
  for (const Array& later : {second, third}) {
    const std::vector<float> b = later.to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
  }
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.compiles, 1);  // the two tiers are one compile
  EXPECT_EQ(s.traces, 1);
}

TEST(Tiered, AProgramWithAFloatSumStartsOnTheStandardCompile) {
  if (tiers_off_by_env()) GTEST_SKIP() << "TRACEJIT_TIERED=0 turns tiers off";
  // Quick code would sum in another order than the optimized code, which vectorizes float sums:
  // the first tier is the optimized IR with fast code generation, the second differs only in
  // machine code, so the bits stay.
  const int64_t swaps = tj::detail::tier_swaps();
  auto step = sgd_step({.share_code = false, .tiered = true});
  for (int i = 0; i < 3; ++i) expect_first_step(step(Params{Array(0.f), Array(0.f)}, xs(), ys()));
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);
  EXPECT_EQ(step.stats().compiles, 1);
  auto total = tj::jit([](const Array& v) { return tj::sum(tj::exp(v) * v, {0}); },
                       {.share_code = false, .tiered = true});
  const Array g = tj::reshape(grid(), {64, 64});
  const std::vector<float> first = total(g).to_vector<float>();
  const std::vector<float> second = total(g).to_vector<float>();  // compiles the optimized tier
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 2);
  EXPECT_EQ(first, second);
  const std::vector<float> x = grid().to_vector<float>();
  for (size_t j = 0; j < 64; ++j) {
    double want = 0;
    for (size_t i = 0; i < 64; ++i) want += std::exp(double{x[i * 64 + j]}) * x[i * 64 + j];
    EXPECT_NEAR(first[j], want, 1e-5 * (1 + std::abs(want))) << "column " << j;
  }
}

TEST(Tiered, OffMeansOneOptimizedCompileAndNoSwap) {
  const int64_t swaps = tj::detail::tier_swaps();
  auto step = sgd_step({.share_code = false});  // off by default
  for (int i = 0; i < 3; ++i) expect_first_step(step(Params{Array(0.f), Array(0.f)}, xs(), ys()));
  EXPECT_EQ(tj::detail::tier_swaps(), swaps);
  setenv("TRACEJIT_TIERED", "0", 1);
  auto env_off = sgd_step({.share_code = false, .tiered = true});
  for (int i = 0; i < 3; ++i) expect_first_step(env_off(Params{Array(0.f), Array(0.f)}, xs(), ys()));
  unsetenv("TRACEJIT_TIERED");
  EXPECT_EQ(tj::detail::tier_swaps(), swaps);
}

TEST(Tiered, CallsOnSeveralThreadsDuringTheSwapStayCorrect) {
  if (tiers_off_by_env()) GTEST_SKIP() << "TRACEJIT_TIERED=0 turns tiers off";
  const int64_t swaps = tj::detail::tier_swaps();
  auto f = transcendental({.share_code = false, .tiered = true});
  const std::vector<float> want = transcendental({.share_code = false})(grid()).to_vector<float>();
  std::atomic<int> wrong{0};
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  // Four threads call at once from the start: one of them makes the optimized code while the
  // others go on with the quick code; every call gives the optimized code's bits.
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        const std::vector<float> got = f(grid()).to_vector<float>();
        calls.fetch_add(1);
        if (got != want) wrong.fetch_add(1);
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(calls.load(), 400);
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);  // exactly one optimized compile
  EXPECT_EQ(f.stats().traces, 1);
}

TEST(Tiered, ACalledOnceFunctionIsNeverOptimized) {
  const int64_t swaps = tj::detail::tier_swaps();
  for (int i = 0; i < 8; ++i) {
    auto f = tj::jit([i](const Array& v) { return v * static_cast<float>(i) + 1.f; },
                     {.share_code = false, .tiered = true});
    EXPECT_EQ(f(Array(2.f)).item<float>(), 2.f * static_cast<float>(i) + 1.f);
  }
  EXPECT_EQ(tj::detail::tier_swaps(), swaps);
}

TEST(Tiered, LowerAndDumpsShowTheOptimizedCode) {
  auto f = tj::jit([](const Array& v) { return v * 2.f + 1.f; }, {.share_code = false});
  tj::Lowered l = f.lower(tj::ones({1024}));
  // The quick tier never vectorizes; the optimized pipeline does on every x86-64 (SSE2 at least).
  EXPECT_NE(l.optimized_llvm_ir().find(" x float>"), std::string::npos) << "no vector type in the optimized IR";
}

}  // namespace

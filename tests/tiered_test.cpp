// Two-tier compilation (runtime/tiered.h): quick code first, optimized code compiled by the
// second call and swapped in; the same values from both tiers and during the swap, on several
// threads.
#include <gtest/gtest.h>

#include <atomic>
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

TEST(Tiered, QuickCodeFirstThenTheOptimizedCodeGivesTheSameValues) {
  if (tiers_off_by_env()) GTEST_SKIP() << "TRACEJIT_TIERED=0 turns tiers off";
  const int64_t swaps = tj::detail::tier_swaps();
  auto step = sgd_step({.share_code = false, .tiered = true});
  const Params p0{Array(0.f), Array(0.f)};
  Params first = step(p0, xs(), ys());
  expect_first_step(first);
  EXPECT_EQ(tj::detail::tier_swaps(), swaps);  // the first call ran the quick code only
  Params second = step(p0, xs(), ys());        // the second compiles the optimized code
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);
  Params third = step(p0, xs(), ys());
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);
  // Bit for bit: neither tier reassociates float arithmetic without fast_math.
  for (const Params& p : {second, third}) {
    EXPECT_EQ(first.weight.item<float>(), p.weight.item<float>());
    EXPECT_EQ(first.bias.item<float>(), p.bias.item<float>());
  }
  tj::JitStats s = step.stats();
  EXPECT_EQ(s.compiles, 1);  // the two tiers are one compile
  EXPECT_EQ(s.traces, 1);
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
  auto step = sgd_step({.share_code = false, .tiered = true});
  const Params p0{Array(0.f), Array(0.f)};
  std::atomic<int> wrong{0};
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  // Four threads call at once from the start: one of them makes the optimized code while the
  // others go on with the quick code.
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        Params p = step(p0, xs(), ys());
        calls.fetch_add(1);
        if (std::abs(p.weight.item<float>() - 1.1f) > 1e-6f || std::abs(p.bias.item<float>() - 0.4f) > 1e-6f)
          wrong.fetch_add(1);
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(calls.load(), 800);
  EXPECT_EQ(tj::detail::tier_swaps(), swaps + 1);  // exactly one optimized compile
  EXPECT_EQ(step.stats().traces, 1);
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

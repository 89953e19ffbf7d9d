// The call path of a compiled function: tj::Compiled (jitted.lower(args...).compile()), which
// checks each leaf's dtype and shape and runs, and jit's fast path for a repeated call (the
// thread's last entry, found with no lock), which must stay exact under eviction, tracers,
// global-mode switches and threads. Expected values are computed by hand or in plain C++.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <latch>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "promotion_mode.h"
#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using ::testing::HasSubstr;

namespace {

std::vector<float> vec(const Array& a) { return a.to_vector<float>(); }

template <class F>
std::string type_error_of(F&& f) {
  try {
    f();
  } catch (const tj::TypeError& e) {
    return e.what();
  }
  return "(no TypeError)";
}

// One SGD step of the seed's model in plain C++ (double accumulation): the hand-derived
// gradients of mean((w x + b - y)^2) are mean(2 r x) and mean(2 r) with r = w x + b - y.
std::pair<float, float> sgd_step_by_hand(float w, float b, const std::vector<float>& x,
                                         const std::vector<float>& y, float lr) {
  double dw = 0, db = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = double(w) * x[i] + b - y[i];
    dw += 2 * r * x[i];
    db += 2 * r;
  }
  const double n = static_cast<double>(x.size());
  return {static_cast<float>(w - lr * dw / n), static_cast<float>(b - lr * db / n)};
}

// Runs body(t) on `threads` threads at once (released together) and joins them.
template <class F>
void on_threads(int threads, F body) {
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      body(t);
    });
  for (std::thread& th : pool) th.join();
}

auto seed_update() {
  return tj::jit([](const seed::Params& p, const Array& x, const Array& y) {
    seed::Params g = tj::grad(seed::loss)(p, x, y);
    return tj::tree_map([](const Array& v, const Array& d) { return v - d * 0.25f; }, p, g);
  });
}

TEST(Compiled, ComputesWhatTheFunctionComputes) {
  auto f = tj::jit([](const Array& x) { return x * 2 + 1; });
  auto c = f.lower(tj::array({1.f, 2.f, 3.f})).compile();
  EXPECT_EQ(vec(c(tj::array({4.f, 5.f, 6.f}))), (std::vector<float>{9, 11, 13}));
  EXPECT_EQ(vec(c(tj::array({0.f, -1.f, 0.5f}))), (std::vector<float>{1, -1, 2}));
  // No cache lookup: the jitted function's own cache never saw these calls.
  EXPECT_EQ(f.stats().cache_hits, 0);
  EXPECT_EQ(f.stats().traces, 0);
}

TEST(Compiled, LoweredKeepsItsTextsAndCompilesOnce) {
  auto f = tj::jit([](const Array& x) { return tj::sum(x * x); }, {.name = "sumsq"});
  tj::Lowered lowered = f.lower(tj::ones({4}));
  EXPECT_THAT(lowered.ir(), HasSubstr("reduce_sum"));
  EXPECT_FALSE(lowered.optimized_ir().empty());
  EXPECT_FALSE(lowered.llvm_ir().empty());
  EXPECT_FALSE(lowered.assembly().empty());
  auto a = lowered.compile();
  auto b = lowered.compile();  // the same executable, not a second compilation
  EXPECT_FLOAT_EQ(a(tj::array({1.f, 2.f, 3.f, 4.f})).item<float>(), 30);
  EXPECT_FLOAT_EQ(b(tj::array({1.f, 1.f, 2.f, 2.f})).item<float>(), 10);
}

TEST(Compiled, SeedStepWithPytreeArgumentsAndResults) {
  auto update = seed_update();
  const std::vector<float> xs = {-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 3};
  std::vector<float> ys;
  for (float x : xs) ys.push_back(2 * x - 1);  // w = 2, b = -1
  const Array x = tj::array(xs, {8, 1}), y = tj::array(ys, {8, 1});
  seed::Params p{Array(0.5f), Array(0.f)};
  auto step = update.lower(p, x, y).compile();
  float w = 0.5f, b = 0.f;
  for (int i = 0; i < 5; ++i) {
    p = step(p, x, y);
    std::tie(w, b) = sgd_step_by_hand(w, b, xs, ys, 0.25f);
    EXPECT_NEAR(p.weight.item<float>(), w, 1e-5f) << i;
    EXPECT_NEAR(p.bias.item<float>(), b, 1e-5f) << i;
  }
  // jit's path gives the same parameters.
  seed::Params q = update(seed::Params{Array(0.5f), Array(0.f)}, x, y);
  seed::Params r = step(seed::Params{Array(0.5f), Array(0.f)}, x, y);
  EXPECT_EQ(q.weight.item<float>(), r.weight.item<float>());
  EXPECT_EQ(q.bias.item<float>(), r.bias.item<float>());
}

TEST(Compiled, WrongShapeOrDtypeNamesTheLeafAndTheCallStillWorksAfter) {
  auto update = seed_update();
  const Array x = tj::ones({4, 1}), y = tj::ones({4, 1});
  auto step = update.lower(seed::Params{Array(1.f), Array(0.f)}, x, y).compile();
  std::string err = type_error_of([&] { step(seed::Params{tj::ones({2}), Array(0.f)}, x, y); });
  EXPECT_THAT(err, HasSubstr("arg 0 .weight: f32[], got f32[2]"));
  err = type_error_of([&] { step(seed::Params{Array(1.f), Array(0.0)}, x, y); });
  EXPECT_THAT(err, HasSubstr("arg 0 .bias: f32[], got f64[]"));
  err = type_error_of([&] { step(seed::Params{Array(1.f), Array(0.f)}, x, tj::ones({5, 1})); });
  EXPECT_THAT(err, HasSubstr("arg 2: f32[4,1], got f32[5,1]"));
  EXPECT_THAT(err, HasSubstr("lower and compile again"));
  // w = 1, b = 0 fit y = 1 at x = 1 except for the bias: r = 0, so nothing moves.
  seed::Params p = step(seed::Params{Array(1.f), Array(0.f)}, x, y * 1.f);
  EXPECT_FLOAT_EQ(p.weight.item<float>(), 1);
  EXPECT_FLOAT_EQ(p.bias.item<float>(), 0);
}

TEST(Compiled, WrongStructureNamesTheArgument) {
  auto f = tj::jit([](const std::vector<Array>& v) { return v[0] + v[1]; });
  auto c = f.lower(std::vector<Array>{Array(1.f), Array(2.f)}).compile();
  EXPECT_FLOAT_EQ(c(std::vector<Array>{Array(3.f), Array(4.f)}).item<float>(), 7);
  std::string err =
      type_error_of([&] { c(std::vector<Array>{Array(1.f), Array(2.f), Array(3.f)}); });
  EXPECT_THAT(err, HasSubstr("arg 0: PyTreeDef([*, *]), got PyTreeDef([*, *, *])"));
  err = type_error_of([&] { c(std::vector<Array>{Array(1.f), Array(2.f)}, Array(1.f)); });
  EXPECT_THAT(err, HasSubstr("compiled for 1 arguments, got 2"));
  err = type_error_of([&] { c(std::vector<Array>{Array(1.f), tj::ones({3})}); });
  EXPECT_THAT(err, HasSubstr("arg 0 [1]: f32[], got f32[3]"));
  auto m = tj::jit([](const std::map<std::string, Array>& d) { return d.at("a") * d.at("b"); });
  auto mc = m.lower(std::map<std::string, Array>{{"a", Array(2.f)}, {"b", Array(3.f)}}).compile();
  EXPECT_FLOAT_EQ(mc(std::map<std::string, Array>{{"a", Array(5.f)}, {"b", Array(7.f)}}).item<float>(), 35);
  err = type_error_of([&] { mc(std::map<std::string, Array>{{"a", Array(5.f)}, {"c", Array(7.f)}}); });
  EXPECT_THAT(err, HasSubstr("arg 0: PyTreeDef({'a': *, 'b': *}), got PyTreeDef({'a': *, 'c': *})"));
}

TEST(Compiled, TracerArgumentsAreAnErrorNotACrash) {
  auto f = tj::jit([](const Array& x) { return x + 1; });
  auto c = f.lower(Array(1.f)).compile();
  auto outer = tj::jit([&](const Array& x) { return c(x); });
  try {
    outer(Array(2.f));
    ADD_FAILURE() << "no error";
  } catch (const tj::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("runs on concrete arrays only"));
  }
  EXPECT_FLOAT_EQ(c(Array(2.f)).item<float>(), 3);
}

TEST(Compiled, ConcurrentCallsFromEightThreads) {
  auto f = tj::jit([](const Array& x, const Array& y) { return std::tuple{x * y, x + y}; });
  auto c = f.lower(Array(1.f), Array(1.f)).compile();
  std::atomic<int> wrong{0};
  on_threads(8, [&](int t) {
    for (int i = 0; i < 300; ++i) {
      const float a = static_cast<float>(t), b = static_cast<float>(i);
      auto [prod, sum] = c(Array(a), Array(b));
      if (prod.item<float>() != a * b || sum.item<float>() != a + b) ++wrong;
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

// ---- jit's fast path for a repeated call ----

TEST(JitCallPath, EveryRepeatedCallIsAnExactCacheHit) {
  auto f = tj::jit([](const Array& n) { return std::tuple{n + 1, n + 1}; });
  Array state(0);
  for (int i = 0; i < 100; ++i) {
    auto [value, next] = f(state);
    EXPECT_EQ(value.item<int>(), i + 1);
    state = next;
  }
  EXPECT_EQ(state.item<int>(), 100);
  EXPECT_EQ(f.stats().traces, 1);
  EXPECT_EQ(f.stats().cache_hits, 99);
}

TEST(JitCallPath, HitsFromEightThreadsAreCountedExactly) {
  auto f = tj::jit([](const Array& x) { return x * 3; });
  f(Array(1.f));
  constexpr int kThreads = 8, kCalls = 500;
  std::atomic<int> wrong{0};
  on_threads(kThreads, [&](int t) {
    for (int i = 0; i < kCalls; ++i)
      if (f(Array(static_cast<float>(t + i))).item<float>() != 3.f * static_cast<float>(t + i)) ++wrong;
  });
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(f.stats().traces, 1);
  EXPECT_EQ(f.stats().cache_hits, kThreads * kCalls);
}

TEST(JitCallPath, AnEvictedSignatureTracesAgainOnTheThreadThatLastRanIt) {
  auto f = tj::jit([](const Array& x) { return tj::sum(x); }, {.max_cached_signatures = 1});
  EXPECT_FLOAT_EQ(f(tj::ones({1})).item<float>(), 1);
  EXPECT_FLOAT_EQ(f(tj::ones({1})).item<float>(), 1);  // served from this thread's last entry
  EXPECT_FLOAT_EQ(f(tj::ones({2})).item<float>(), 2);  // evicts [1]
  EXPECT_FLOAT_EQ(f(tj::ones({1})).item<float>(), 1);  // evicts [2]: traced again
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.traces, 3);
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.cache_hits, 1);
}

TEST(JitCallPath, ALeakedTracerOfTheCachedTypeIsStillALeak) {
  auto f = tj::jit([](const Array& x) { return x * 2; });
  EXPECT_FLOAT_EQ(f(Array(1.f)).item<float>(), 2);
  EXPECT_FLOAT_EQ(f(Array(2.f)).item<float>(), 4);
  Array leaked;
  tj::jit([&](const Array& x) {
    leaked = x;
    return x;
  })(Array(0.f));
  EXPECT_THROW(f(leaked), tj::TracerLeakError);
  EXPECT_THROW(f(Array()), tj::Error);
  EXPECT_FLOAT_EQ(f(Array(3.f)).item<float>(), 6);
}

TEST(JitCallPath, APromotionModeSwitchIsANewSignature) {
  auto f = tj::jit([](const Array& x) { return x + 1; });
  f(Array(1.f));
  f(Array(1.f));
  {
    StrictPromotion strict;
    EXPECT_FLOAT_EQ(f(Array(1.f)).item<float>(), 2);
  }
  EXPECT_EQ(f.stats().traces, 2);
  EXPECT_EQ(f.stats().cache_hits, 1);
}

TEST(JitCallPath, ManyFunctionsAndArgumentTypesOnOneThread) {
  // More functions than a thread keeps last entries for, and one function called with two
  // argument types in turn: each call gets its own function's result.
  std::vector<tj::Jitted<std::function<Array(const Array&)>>> fs;
  for (int k = 0; k < 11; ++k)
    fs.push_back(tj::jit(std::function<Array(const Array&)>([k](const Array& x) { return x + k; })));
  auto g = tj::jit([](const auto& arg) {
    if constexpr (std::is_same_v<std::decay_t<decltype(arg)>, Array>) return arg * 2;
    else return std::get<0>(arg) * std::get<1>(arg);
  });
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 11; ++k) EXPECT_FLOAT_EQ(fs[k](Array(1.f)).item<float>(), 1.f + k);
    EXPECT_FLOAT_EQ(g(Array(3.f)).item<float>(), 6);
    EXPECT_FLOAT_EQ(g(std::tuple{Array(3.f), Array(5.f)}).item<float>(), 15);
  }
  for (int k = 0; k < 11; ++k) EXPECT_EQ(fs[k].stats().cache_hits, 2);
  EXPECT_EQ(g.stats().traces, 2);
  EXPECT_EQ(g.stats().cache_hits, 4);
}

TEST(JitCallPath, ManyScalarLeaves) {
  auto f = tj::jit([](const std::array<Array, 64>& xs) {
    Array total = xs[0];
    for (size_t i = 1; i < xs.size(); ++i) total = total + xs[i] * static_cast<float>(i + 1);
    return total;
  });
  std::array<Array, 64> xs;
  for (auto& x : xs) x = Array(1.f);
  for (int round = 0; round < 3; ++round) EXPECT_FLOAT_EQ(f(xs).item<float>(), 64 * 65 / 2);
  xs[63] = Array(2.f);  // 64 * 65 / 2 + 64
  EXPECT_FLOAT_EQ(f(xs).item<float>(), 2144);
  xs[5] = Array(1.0);  // an f64 leaf: a new signature
  EXPECT_FLOAT_EQ(f(xs).item<float>(), 2144);
  EXPECT_EQ(f.stats().traces, 2);
  EXPECT_EQ(f.stats().cache_hits, 3);
}

TEST(JitCallPath, SmallResultsFreedOnAnotherThread) {
  // Small results come from per-thread free lists; one thread makes them, another drops them.
  auto f = tj::jit([](const Array& x) { return std::tuple{x + 1, tj::broadcast_to(x, {100})}; });
  std::vector<std::tuple<Array, Array>> made;
  for (int i = 0; i < 200; ++i) made.push_back(f(Array(static_cast<float>(i))));
  std::thread([&] { made.clear(); }).join();
  for (int i = 0; i < 200; ++i) {
    auto [a, b] = f(Array(static_cast<float>(i)));
    EXPECT_FLOAT_EQ(a.item<float>(), i + 1.f);
    EXPECT_EQ(vec(b), std::vector<float>(100, static_cast<float>(i)));
  }
}

// A thread's last-entry slots hold their entries until the thread exits, and a call made while
// the thread's own thread-locals are being destroyed still runs (it remembers nothing).
TEST(JitCallPath, ThreadExitReleasesTheLastEntriesAndCallsFromThreadLocalDestructorsRun) {
  auto f = std::make_shared<tj::Jitted<Array (*)(const Array&)>>(
      tj::jit(+[](const Array& x) { return x * 5; }, {.max_cached_signatures = 1}));
  struct CallsAtExit {
    std::shared_ptr<tj::Jitted<Array (*)(const Array&)>> f;
    float* got;
    ~CallsAtExit() { *got = (*f)(Array(2.f)).item<float>(); }
  };
  float at_exit = 0;
  std::thread([&] {
    thread_local CallsAtExit calls{f, &at_exit};
    EXPECT_EQ((*f)(Array(1.f)).item<float>(), 5.f);
    EXPECT_EQ((*f)(Array(3.f)).item<float>(), 15.f);  // from this thread's last entry
  }).join();
  EXPECT_EQ(at_exit, 10.f);
  EXPECT_EQ((*f)(tj::ones({2})).to_vector<float>(), (std::vector<float>{5, 5}));  // evicts f32[]
  EXPECT_EQ((*f)(Array(4.f)).item<float>(), 20.f);
  EXPECT_EQ(f->stats().traces, 3);
}

TEST(JitCallPath, SmallArraysOutliveWhatTheyWereMadeFrom) {
  // Arrays of up to 64 bytes keep their elements inline, in their own block: a reshape of one,
  // and a trace's constant taken from one, must own what they read once it is freed (and its
  // block reused by the next small array).
  Array a = tj::array({1.f, 2.f, 3.f, 4.f});
  Array r = tj::reshape(a, {2, 2});
  a = Array();
  std::vector<Array> reuse;
  for (int i = 0; i < 8; ++i) reuse.push_back(tj::array({-9.f, -9.f, -9.f, -9.f}));
  EXPECT_EQ(vec(tj::reshape(r, {4})), (std::vector<float>{1, 2, 3, 4}));
  auto held = std::make_shared<Array>(tj::array({10.f, 20.f}));
  auto f = tj::jit([held](const Array& x) { return x + *held; });  // *held is traced as a constant
  const Array x = tj::array({1.f, 2.f});
  EXPECT_EQ(vec(f(x)), (std::vector<float>{11, 22}));
  *held = tj::array({0.f, 0.f});  // frees the traced array; the compiled code keeps its values
  for (int i = 0; i < 8; ++i) reuse.push_back(tj::array({-9.f, -9.f}));
  EXPECT_EQ(vec(f(x)), (std::vector<float>{11, 22}));
}

}  // namespace

// tj::jit: trace once per signature, run compiled code afterwards, and everything around it
// (stats, retrace explanations, lowering stages, dumps, threads, errors, nesting).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "external_tools.h"
#include "seed_model.h"
#include "promotion_mode.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

using seed::Params;

std::vector<float> vec(const Array& a) { return a.to_vector<float>(); }

TEST(Jit, SideEffectsRunOnceAtTraceTime) {
  int calls = 0;
  auto f = tj::jit([&](Array x) {
    ++calls;
    return x * 2 + 1;
  });
  EXPECT_EQ(vec(f(tj::array({1.f, 2.f}))), (std::vector<float>{3, 5}));
  EXPECT_EQ(vec(f(tj::array({3.f, 4.f}))), (std::vector<float>{7, 9}));
  EXPECT_EQ(calls, 1);
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.traces, 1);
  EXPECT_EQ(s.compiles + s.shared_hits, 1);  // shared: another test compiled x * 2 + 1
  EXPECT_EQ(s.cache_hits, 1);
}

TEST(Jit, SeedCounterPrintsOneOneOne) {
  int n = 0;
  auto fast_count = tj::jit([&] { return n += 1; }, {.warn_constant_outputs = false});
  std::vector<int> seen;
  for (int i = 0; i < 3; ++i) seen.push_back(fast_count().item<int>());
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(fast_count().dtype(), tj::DType::i32);  // a C++ int result comes back as an Array
}

TEST(Jit, SeedCounterV2ThreadsState) {
  auto count = tj::jit([](Array n) { return std::tuple<Array, Array>{n + 1, n + 1}; });
  Array state(0);
  std::vector<int> seen;
  for (int i = 0; i < 3; ++i) {
    auto [value, next] = count(state);
    state = next;
    seen.push_back(value.item<int>());
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(count.stats().traces, 1);
}

TEST(Jit, NewShapeOrDtypeRetraces) {
  auto f = tj::jit([](Array x) { return tj::sum(x); });
  EXPECT_FLOAT_EQ(f(tj::ones({3})).item<float>(), 3);
  EXPECT_FLOAT_EQ(f(tj::ones({4})).item<float>(), 4);
  EXPECT_DOUBLE_EQ(f(tj::ones({4}, tj::DType::f64)).item<double>(), 4);
  EXPECT_FLOAT_EQ(f(tj::ones({3})).item<float>(), 3);
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.traces, 3);
  EXPECT_EQ(s.cache_hits, 1);
}

TEST(Jit, PytreeArgumentsAndResults) {
  auto step = tj::jit([](const Params& p, const Array& x) {
    return std::pair<Params, Array>{Params{p.weight * 2, p.bias + 1}, tj::sum(p.weight * x)};
  });
  auto [q, s] = step(Params{Array(3.f), Array(1.f)}, tj::array({1.f, 2.f}));
  EXPECT_FLOAT_EQ(q.weight.item<float>(), 6);
  EXPECT_FLOAT_EQ(q.bias.item<float>(), 2);
  EXPECT_FLOAT_EQ(s.item<float>(), 9);
  auto m = tj::jit([](const std::map<std::string, Array>& d) { return d.at("a") - d.at("b"); });
  EXPECT_FLOAT_EQ(m(std::map<std::string, Array>{{"a", Array(5.f)}, {"b", Array(2.f)}}).item<float>(), 3);
}

TEST(Jit, MatchesEagerOnTheSeedLoss) {
  auto loss = [](const Params& p, const Array& x, const Array& y) {
    return tj::mean(tj::square(p.weight * x + p.bias - y));
  };
  Params p{Array(1.5f), Array(-0.5f)};
  Array x = tj::array({1.f, 2.f, 3.f, 4.f}, {4, 1}), y = tj::array({1.f, 3.f, 4.f, 5.f}, {4, 1});
  // pred = 1 2.5 4 5.5; residuals 0 -0.5 0 0.5; mean of squares 0.125 (exact in f32).
  EXPECT_EQ(tj::jit(loss)(p, x, y).item<float>(), 0.125f);
  EXPECT_EQ(loss(p, x, y).item<float>(), 0.125f);
}

TEST(Jit, ExceptionWhileTracingLeavesFunctionUsable) {
  bool fail = true;
  auto f = tj::jit([&](Array x) {
    if (fail) return tj::reshape(x, {7});  // ShapeError for f32[3]
    return x + 1;
  });
  EXPECT_THROW(f(tj::ones({3})), tj::ShapeError);
  EXPECT_FALSE(tj::detail::tracing());
  fail = false;
  EXPECT_EQ(vec(f(tj::ones({3}))), (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(f.stats().compiles + f.stats().shared_hits, 1);  // the failed trace cached nothing
}

TEST(Jit, JitOfJitInlines) {
  auto inner = tj::jit([](Array x) { return tj::exp(x); });
  auto outer = tj::jit([&](Array x) { return inner(x) * 2; });
  EXPECT_NEAR(outer(Array(1.f)).item<float>(), 2 * std::exp(1.f), 1e-6);
  EXPECT_EQ(inner.stats().compiles, 0);  // traced into outer, never compiled on its own
  EXPECT_EQ(inner.stats().traces, 1);
  tj::IR ir = tj::make_ir([&](Array x) { return inner(x); })(Array(1.f));
  EXPECT_THAT(ir.str(), HasSubstr("exp a"));
}

TEST(Jit, LowerGivesEveryStage) {
  auto f = tj::jit([](Array x) { return tj::sum(tj::exp(x) * x); }, {.name = "expsum"});
  tj::Lowered l = f.lower(tj::ones({1024}));
  EXPECT_THAT(l.ir(), HasSubstr("exp"));
  EXPECT_THAT(l.optimized_ir(), HasSubstr("reduce_sum"));
  EXPECT_THAT(l.llvm_ir(), HasSubstr("define"));
  EXPECT_THAT(l.optimized_llvm_ir(), HasSubstr("define"));
  EXPECT_FALSE(l.assembly().empty());
  EXPECT_EQ(f.stats().compiles, 0);  // lowering does not fill the cache
}

TEST(Jit, FastMathOnlyWhenAsked) {
  auto body = [](Array x) { return x * 3 + x * 5; };
  std::string ieee = tj::jit(body).lower(tj::ones({64})).llvm_ir();
  std::string fast = tj::jit(body, {.fast_math = true}).lower(tj::ones({64})).llvm_ir();
  EXPECT_THAT(ieee, Not(HasSubstr("fmul fast")));
  EXPECT_THAT(fast, HasSubstr("fmul fast"));
  EXPECT_EQ(vec(tj::jit(body, {.fast_math = true})(tj::ones({2}))), (std::vector<float>{8, 8}));
}

TEST(Jit, DumpDirWritesEveryStagePerCompilation) {
  auto dir = std::filesystem::temp_directory_path() / "tracejit_dump_test";
  std::filesystem::remove_all(dir);
  setenv("TRACEJIT_DUMP_DIR", dir.c_str(), 1);
  auto f = tj::jit([](Array x) { return x * 3; }, {.name = "triple"});
  f(tj::ones({8}));
  unsetenv("TRACEJIT_DUMP_DIR");
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), tracejit_test::dump_files_per_compilation());
  for (const std::string& n : names) EXPECT_THAT(n, HasSubstr("triple."));
  EXPECT_THAT(names, testing::Contains(testing::EndsWith(".traced.dot")));
  EXPECT_THAT(names, testing::Contains(testing::EndsWith(".optimized.dot")));
  if (tracejit_test::on_path("dot")) {
    EXPECT_THAT(names, testing::Contains(testing::EndsWith(".optimized.svg")));
  }
  std::ifstream traced(dir / names.back());  // *.traced.txt sorts last
  std::string text((std::istreambuf_iterator<char>(traced)), {});
  EXPECT_THAT(text, HasSubstr("broadcast_in_dim[broadcast_dimensions=() shape=(8,)] 3.0:f32[]"));
  std::filesystem::remove_all(dir);
}

TEST(Jit, DefaultNamesSayWhatIsDifferentiated) {
  auto loss = [](const Array& x) { return tj::sum(x * x); };
  auto name_of = [](const auto& fn) { return tj::detail::default_function_name(typeid(fn).name()); };
  const std::string plain = name_of(loss);
  EXPECT_THAT(plain, HasSubstr("lambda"));
  EXPECT_EQ(plain.find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"),
            std::string::npos);
  EXPECT_EQ(name_of(tj::grad(loss)), "grad_" + plain);
  EXPECT_EQ(name_of(tj::grad(loss, 0)), "grad_" + plain);
  EXPECT_EQ(name_of(tj::value_and_grad(loss)), "value_and_grad_" + plain);
  EXPECT_EQ(name_of(tj::grad(tj::grad(loss))), "grad_grad_" + plain);
}

TEST(Jit, UnwritableDumpDirWarnsAndStillComputes) {
  setenv("TRACEJIT_DUMP_DIR", "/proc/tracejit-cannot-write-here", 1);
  auto f = tj::jit([](Array x) { return x + 1; });
  testing::internal::CaptureStderr();
  Array y = f(Array(1.f));
  std::string err = testing::internal::GetCapturedStderr();
  unsetenv("TRACEJIT_DUMP_DIR");
  EXPECT_FLOAT_EQ(y.item<float>(), 2);
  EXPECT_THAT(err, HasSubstr("cannot write dump file"));
}

TEST(Jit, ConcurrentCallsAgree) {
  auto f = tj::jit([](Array x) { return tj::sum(tj::sin(x) * x); });
  Array x = tj::arange(1000, tj::DType::f32) / 1000.f;
  float expected = tj::sum(tj::sin(x) * x).item<float>();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (std::abs(f(x).item<float>() - expected) > 1e-3f * std::abs(expected)) ++wrong;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(f.stats().compiles, 1);
  EXPECT_EQ(f.stats().traces, 1);
}

TEST(Jit, PhaseTimesArePositiveAndBounded) {
  auto f = tj::jit([](Array x) { return tj::tanh(x) + x; });
  auto t0 = std::chrono::steady_clock::now();
  f(tj::ones({64}));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  tj::JitStats s = f.stats();
  for (double t : {s.trace_s, s.passes_s, s.lower_s, s.llvm_opt_s, s.codegen_s}) EXPECT_GT(t, 0);
  EXPECT_LE(s.trace_s + s.passes_s + s.lower_s + s.llvm_opt_s + s.codegen_s, wall);
}

TEST(JitDiagnostics, ConstantOutputWarningOncePerFunction) {
  int n = 0;
  auto counter = tj::jit([&] { return n += 1; }, {.name = "count"});
  testing::internal::CaptureStderr();
  counter();
  counter();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("'count'"));
  EXPECT_THAT(err, HasSubstr("constant fixed at trace time"));
  EXPECT_THAT(err, HasSubstr("pass it in as an argument"));
  EXPECT_EQ(err.find("constant fixed"), err.rfind("constant fixed"));  // once
}

TEST(JitDiagnostics, NoWarningForArgumentDependentOutputs) {
  auto f = tj::jit([](Array n) { return std::tuple<Array, Array>{n + 1, Array(7)}; });
  testing::internal::CaptureStderr();
  f(Array(0));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  auto quiet = tj::jit([] { return 1; }, {.warn_constant_outputs = false});
  testing::internal::CaptureStderr();
  quiet();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(JitDiagnostics, ExplainRetracesNamesPathAndTypes) {
  auto f = tj::jit([](const Params& p, const Array& x) { return p.weight * x + p.bias; },
                   {.name = "model", .explain_retraces = true});
  f(Params{Array(1.f), Array(0.f)}, tj::ones({128, 1}));
  testing::internal::CaptureStderr();
  f(Params{tj::ones({}, tj::DType::f64), tj::zeros({}, tj::DType::f64)},
    tj::ones({128, 1}, tj::DType::f64));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("'model'"));
  EXPECT_THAT(err, HasSubstr("arg 0 .weight: f32[] -> f64[]"));
  EXPECT_THAT(err, HasSubstr("arg 1: f32[128,1] -> f64[128,1]"));
  testing::internal::CaptureStderr();
  f(Params{Array(1.f), Array(0.f)}, tj::ones({256, 1}));
  err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("arg 1: f32[128,1] -> f32[256,1]"));
}

TEST(JitDiagnostics, MaxRetracesThrowsAndCachedSignaturesStillWork) {
  auto f = tj::jit([](Array x) { return x * 2; }, {.max_retraces = 1});
  f(tj::ones({1}));
  f(tj::ones({2}));  // the first retrace is allowed
  try {
    f(tj::ones({3}));
    FAIL() << "expected tj::Error";
  } catch (const tj::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("max_retraces = 1"));
    EXPECT_THAT(e.what(), HasSubstr("arg 0: f32[2] -> f32[3]"));
  }
  EXPECT_EQ(vec(f(tj::ones({2}))), (std::vector<float>{2, 2}));
  EXPECT_EQ(vec(f(tj::ones({1}))), (std::vector<float>{2}));
}

TEST(JitErrors, TracerFromAnotherTraceCannotBeCapturedLater) {
  Array leaked;
  auto g = tj::jit([&](Array x) {
    leaked = x;
    return x;
  });
  g(Array(1.f));
  auto h = tj::jit([&](Array x) { return x + leaked; });
  EXPECT_THROW(h(Array(1.f)), tj::TracerLeakError);
  EXPECT_FLOAT_EQ(g(Array(5.f)).item<float>(), 5);  // g still works
}

TEST(JitErrors, BadInputsGiveErrorsAndJitStillWorks) {
  auto f = tj::jit([](Array a, Array b) { return a + b; });
  EXPECT_THROW(f(tj::ones({2}), tj::ones({3})), tj::ShapeError);
  {
    StrictPromotion strict;
    EXPECT_THROW(f(tj::ones({2}), tj::ones({2}, tj::DType::f64)), tj::TypeError);
  }
  EXPECT_EQ(vec(f(tj::ones({2}), tj::ones({2}))), (std::vector<float>{2, 2}));
}

}  // namespace

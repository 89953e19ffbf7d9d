// Code shared across jit objects in a process (runtime/code_cache.h): a jit created afresh for
// every call traces each time and compiles once; what changes code keeps programs apart.
#include <gtest/gtest.h>

#include "runtime/code_cache.h"
#include "runtime/code_key.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace {

std::vector<float> vec(const Array& a) { return a.to_vector<float>(); }

TEST(SharedCode, AFreshJitPerCallTracesEachTimeAndCompilesOnce) {
  tj::detail::clear_shared_code();
  const Array x = tj::array({1.f, 2.f, 4.f});
  for (int i = 0; i < 4; ++i) {
    int traced = 0;
    auto f = tj::jit([&](const Array& v) {
      ++traced;
      return v * 3.f + 2.f;
    });
    EXPECT_EQ(vec(f(x)), (std::vector<float>{5, 8, 14}));  // 3x + 2 by hand
    EXPECT_EQ(vec(f(x * 2.f)), (std::vector<float>{8, 14, 26}));
    EXPECT_EQ(traced, 1);
    tj::JitStats s = f.stats();
    EXPECT_EQ(s.traces, 1);
    EXPECT_EQ(s.compiles, i == 0 ? 1 : 0) << "object " << i;
    EXPECT_EQ(s.shared_hits, i == 0 ? 0 : 1) << "object " << i;
    EXPECT_EQ(s.disk_hits, 0);
    EXPECT_EQ(s.cache_hits, 1);  // its own signature cache still serves the second call
    EXPECT_EQ(s.traces, s.compiles + s.shared_hits + s.disk_hits);
  }
}

TEST(SharedCode, NamesDoNotMatterButConstantsShapesAndFastMathDo) {
  tj::detail::clear_shared_code();
  const Array x = tj::array({1.f, 2.f});
  auto make = [](float c, tj::JitOptions o) { return tj::jit([c](const Array& v) { return v * c; }, o); };
  auto a = make(2.f, {.name = "a"});
  auto b = make(2.f, {.name = "b"});
  auto c = make(3.f, {.name = "c"});
  auto d = make(2.f, {.name = "d", .fast_math = true});
  EXPECT_EQ(vec(a(x)), (std::vector<float>{2, 4}));
  EXPECT_EQ(vec(b(x)), (std::vector<float>{2, 4}));
  EXPECT_EQ(vec(c(x)), (std::vector<float>{3, 6}));  // another constant: other code
  EXPECT_EQ(vec(d(x)), (std::vector<float>{2, 4}));
  EXPECT_EQ(vec(b(tj::array({1.f, 2.f, 3.f}))), (std::vector<float>{2, 4, 6}));  // another shape
  EXPECT_EQ(a.stats().compiles, 1);
  EXPECT_EQ(b.stats().shared_hits, 1);
  EXPECT_EQ(b.stats().compiles, 1);  // the f32[3] signature
  EXPECT_EQ(c.stats().compiles, 1);
  EXPECT_EQ(d.stats().compiles, 1);  // fast_math changes code
}

TEST(SharedCode, ShareCodeOffCompilesItsOwn) {
  tj::detail::clear_shared_code();
  const Array x = tj::array({1.f});
  for (int i = 0; i < 2; ++i) {
    auto f = tj::jit([](const Array& v) { return v - 7.f; }, {.share_code = false});
    EXPECT_EQ(vec(f(x)), (std::vector<float>{-6}));
    EXPECT_EQ(f.stats().compiles, 1);
    EXPECT_EQ(f.stats().shared_hits, 0);
  }
}

TEST(SharedCode, HoldsAtMostItsBoundLeastRecentlyUsedLeaving) {
  tj::detail::clear_shared_code();
  const Array x = tj::array({1.f});
  auto run = [&](int c) {
    auto f = tj::jit([c](const Array& v) { return v + static_cast<float>(c); }, {.tiered = false});
    EXPECT_EQ(vec(f(x)), (std::vector<float>{1.f + static_cast<float>(c)}));
    return f.stats();
  };
  const int n = static_cast<int>(tj::detail::kMaxSharedExecutables);
  for (int c = 0; c <= n; ++c) EXPECT_EQ(run(c).compiles, 1);  // n + 1 programs: 0 is dropped
  EXPECT_EQ(run(n).shared_hits, 1);
  EXPECT_EQ(run(1).shared_hits, 1);
  EXPECT_EQ(run(0).compiles, 1);
}

TEST(CodeKey, EqualProgramsGiveEqualKeysAndEveryDifferenceShows) {
  auto key = [](auto f, const Array& x, tj::JitOptions o = {}) {
    tj::IR ir = tj::make_ir(f)(x);
    return tj::detail::code_key(ir.function(), o);
  };
  auto twice = [](const Array& v) { return v * 2.f; };
  const Array x = tj::array({1.f, 2.f});
  EXPECT_EQ(key(twice, x), key([](const Array& v) { return v * 2.f; }, x));
  EXPECT_NE(key(twice, x), key([](const Array& v) { return v * 3.f; }, x));
  EXPECT_NE(key(twice, x), key([](const Array& v) { return v + 2.f; }, x));
  EXPECT_NE(key(twice, x), key(twice, tj::array({1.f, 2.f, 3.f})));
  EXPECT_NE(key(twice, x), key(twice, tj::array({1.0, 2.0})));
  EXPECT_NE(key(twice, x), key(twice, x, {.fast_math = true}));
}

}  // namespace

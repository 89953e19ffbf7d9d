// A short soak: after warm-up, calls of a jitted function leave neither resident memory nor the
// heap any larger. tools/bench/soak.cpp (tracejit-soak) runs the full million calls.
#include <gtest/gtest.h>

#include "../tools/bench/process_memory.h"
#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tracejit_bench::heap_in_use_bytes;
using tracejit_bench::resident_bytes;

namespace {

constexpr int kWarmup = 2000;
constexpr int kCalls = 20000;

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;  // their allocators quarantine freed memory, and mallinfo2 does not see it
#else
  return false;
#endif
}

TEST(Soak, TwentyThousandStepsKeepMemoryFlat) {
  if (sanitized()) GTEST_SKIP() << "memory figures mean nothing under a sanitizer's allocator";
  auto update = tj::jit([](const seed::Params& p, const Array& x, const Array& y) {
    seed::Params g = tj::grad(seed::loss)(p, x, y);
    return tj::tree_map([](const Array& v, const Array& d) { return v - d * 0.005f; }, p, g);
  }, {.share_code = false});  // its own code, not what earlier tests left shared
  auto scalar = tj::jit([](const Array& v) { return v * 0.5f + 1.f; }, {.share_code = false});
  const Array x = tj::reshape(tj::arange(128, tj::DType::f32), {128, 1}) / 64.f - 1.f;
  const Array y = x * 2.f - 1.f;
  seed::Params p{tj::zeros({}), tj::zeros({})};
  Array v(10.f);
  auto step = [&] {
    p = update(p, x, y);
    v = scalar(v);
  };
  for (int i = 0; i < kWarmup; ++i) step();
  // (With JitOptions::tiered the optimized tier would come in at the second call.)
  const double rss0 = resident_bytes(), heap0 = heap_in_use_bytes();
  for (int i = 0; i < kCalls; ++i) step();
  EXPECT_LT(resident_bytes() - rss0, 1 << 20);
  EXPECT_LT(heap_in_use_bytes() - heap0, 16 << 10);
  // The calls did their work: x/2 + 1 reached its fixed point 2, and SGD on the exact line
  // y = 2x - 1 approaches w = 2, b = -1.
  EXPECT_EQ(v.item<float>(), 2.f);
  EXPECT_NEAR(p.weight.item<float>(), 2.f, 1e-3f);
  EXPECT_NEAR(p.bias.item<float>(), -1.f, 1e-3f);
  EXPECT_EQ(update.stats().compiles, 1);
}

}  // namespace

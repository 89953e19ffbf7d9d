// The pool behind large array buffers: freed blocks are reused, the cache stays within its bounds,
// and a reused block (which keeps its old contents) never leaks into results.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "base/buffer.h"
#include "base/buffer_pool.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
namespace rt = tracejit::base;

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(BufferPool, FreedLargeBufferIsReusedAndAligned) {
  if (!rt::kUseBufferPool) GTEST_SKIP() << "sanitizer builds keep buffers on the heap";
  rt::pool_trim();
  void* first;
  {
    rt::Buffer b(64 * kMiB);
    first = b.data();
    // 2 MiB alignment is what lets the kernel back the block with huge pages.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2 * kMiB), 0u);
    static_cast<char*>(b.data())[64 * kMiB - 1] = 1;  // the whole size is writable
  }
  EXPECT_EQ(rt::pool_stats().cached_blocks, 1u);
  uint64_t hits = rt::pool_stats().hits;
  {
    rt::Buffer b(64 * kMiB - 100);  // rounds to the same block size
    EXPECT_EQ(b.data(), first);
  }
  EXPECT_EQ(rt::pool_stats().hits, hits + 1);
  rt::pool_trim();
  EXPECT_EQ(rt::pool_stats().cached_bytes, 0u);
}

TEST(BufferPool, CacheStaysWithinItsBounds) {
  if (!rt::kUseBufferPool) GTEST_SKIP() << "sanitizer builds keep buffers on the heap";
  rt::pool_trim();
  {
    std::vector<rt::Buffer*> live;
    for (int i = 0; i < 12; ++i) live.push_back(new rt::Buffer(4 * kMiB));
    for (rt::Buffer* b : live) delete b;
  }
  // 12 blocks freed, at most 8 kept.
  EXPECT_EQ(rt::pool_stats().cached_blocks, rt::kPoolMaxCachedBlocks);
  EXPECT_EQ(rt::pool_stats().cached_bytes, rt::kPoolMaxCachedBlocks * 4 * kMiB);
  {
    std::vector<rt::Buffer*> live;
    for (int i = 0; i < 3; ++i) live.push_back(new rt::Buffer(100 * kMiB));
    for (rt::Buffer* b : live) delete b;
  }
  // Three 100 MiB blocks do not fit in 256 MiB together: the older ones were unmapped.
  EXPECT_LE(rt::pool_stats().cached_bytes, rt::kPoolMaxCachedBytes);
  // Oldest first: the six 4 MiB blocks left, then the first 100 MiB one.
  EXPECT_EQ(rt::pool_stats().cached_blocks, 2u);
  EXPECT_EQ(rt::pool_stats().cached_bytes, static_cast<size_t>(200 * kMiB));
  { rt::Buffer huge(300 * kMiB); }  // larger than the whole cache: never kept
  EXPECT_LE(rt::pool_stats().cached_bytes, rt::kPoolMaxCachedBytes);
  rt::pool_trim();
  EXPECT_EQ(rt::pool_stats().cached_blocks, 0u);
}

TEST(BufferPool, ReusedBlocksGiveFreshResults) {
  // 1M floats (4 MiB) go through the pool; the second call's output block is the first call's.
  auto f = tj::jit([](tj::Array x) { return x * 2.0f + 1.0f; });
  int64_t n = int64_t{1} << 20;
  tj::Array x = tj::arange(n, tj::DType::f32);
  for (int call = 0; call < 3; ++call) {
    std::vector<float> y = f(x).to_vector<float>();
    ASSERT_EQ(static_cast<int64_t>(y.size()), n);
    for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{12345}, n - 1})
      EXPECT_EQ(y[i], 2.0f * static_cast<float>(i) + 1.0f) << "call " << call << ", i = " << i;
  }
  // zeros() into a reused block must still be all zeros.
  { tj::Array junk = tj::full({n}, 7.0, tj::DType::f32); }
  std::vector<float> z = tj::zeros({n}).to_vector<float>();
  for (float v : z) ASSERT_EQ(v, 0.0f);
}

}  // namespace

#include "base/buffer_pool.h"

#include <sys/mman.h>

#include <array>
#include <cstdlib>
#include <new>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tracejit::base {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Blocks are whole huge pages, so a block freed by one size serves any request that rounds to
// the same size.
size_t block_size(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

void* map_block(size_t size) {
  // Over-map by one huge page and trim both ends, so the block starts on a 2 MiB boundary and
  // the kernel can back it with huge pages from the first fault.
  size_t span = size + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  size_t tail = start + span - (aligned + size);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
  void* p = reinterpret_cast<void*>(aligned);
  // Advisory: where THP is "madvise" (as on this project's machines) this turns 512 faults per
  // 2 MiB into one; failure (THP off) just leaves 4 KiB pages.
  madvise(p, size, MADV_HUGEPAGE);
  return p;
}

class Pool {
 public:
  // release() and trim() must not allocate: they run in destructors.
  Pool() { free_.reserve(kPoolMaxCachedBlocks); }

  void* allocate(size_t bytes) {
    size_t size = block_size(bytes);
    {
      absl::MutexLock lock(&mu_);
      // Most recently freed first: its pages are the likeliest to still be in cache.
      for (size_t i = free_.size(); i-- > 0;) {
        if (free_[i].size != size) continue;
        void* p = free_[i].ptr;
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        cached_bytes_ -= size;
        ++hits_;
        return p;
      }
      ++misses_;
    }
    return map_block(size);
  }

  void release(void* p, size_t bytes) noexcept {
    size_t size = block_size(bytes);
    std::array<Block, kPoolMaxCachedBlocks + 1> evicted;
    size_t n_evicted = 0;
    {
      absl::MutexLock lock(&mu_);
      if (size > kPoolMaxCachedBytes) {
        evicted[n_evicted++] = {p, size};
      } else {
        while (!free_.empty() && (cached_bytes_ + size > kPoolMaxCachedBytes ||
                                  free_.size() >= kPoolMaxCachedBlocks)) {
          evicted[n_evicted++] = free_.front();
          cached_bytes_ -= free_.front().size;
          free_.erase(free_.begin());
        }
        free_.push_back({p, size});
        cached_bytes_ += size;
      }
    }
    // Unmap outside the lock: munmap of a large block takes milliseconds.
    for (size_t i = 0; i < n_evicted; ++i) munmap(evicted[i].ptr, evicted[i].size);
  }

  PoolStats stats() {
    absl::MutexLock lock(&mu_);
    return {cached_bytes_, free_.size(), hits_, misses_};
  }

  void trim() noexcept {
    std::array<Block, kPoolMaxCachedBlocks> all;
    size_t n = 0;
    {
      absl::MutexLock lock(&mu_);
      for (const Block& b : free_) all[n++] = b;
      free_.clear();
      cached_bytes_ = 0;
    }
    for (size_t i = 0; i < n; ++i) munmap(all[i].ptr, all[i].size);
  }

 private:
  struct Block {
    void* ptr;
    size_t size;
  };
  absl::Mutex mu_;
  std::vector<Block> free_ ABSL_GUARDED_BY(mu_);  // oldest first
  size_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

// Never destroyed: arrays in static storage may be freed after other statics are gone.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

void* pool_allocate(size_t bytes) { return pool().allocate(bytes); }
void pool_free(void* p, size_t bytes) noexcept { pool().release(p, bytes); }
PoolStats pool_stats() { return pool().stats(); }
void pool_trim() noexcept { pool().trim(); }

}  // namespace tracejit::base

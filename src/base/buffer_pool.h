#pragma once
// Storage for large buffers: mmapped, 2 MiB-aligned blocks that ask for transparent huge pages,
// and a small bounded cache of freed blocks. A fresh 64 MiB result otherwise costs a page fault
// per 4 KiB page (about 16,000 faults, ~60x the kernel's own time); a reused block costs none.
#include <cstddef>
#include <cstdint>

namespace tracejit::base {

/// Requests of at least this many bytes go through the pool; smaller ones use the heap, which
/// already reuses memory at those sizes.
inline constexpr size_t kPoolMinBytes = size_t{2} << 20;

/// Freed blocks kept for reuse: at most this many bytes and this many blocks. Beyond that the
/// least recently freed block is unmapped.
inline constexpr size_t kPoolMaxCachedBytes = size_t{256} << 20;
inline constexpr size_t kPoolMaxCachedBlocks = 8;

/// A block of at least `bytes` (>= kPoolMinBytes), 2 MiB-aligned; throws std::bad_alloc.
/// Contents are unspecified (a reused block keeps its old data).
void* pool_allocate(size_t bytes);
/// Gives back a block from pool_allocate with the same `bytes`.
void pool_free(void* p, size_t bytes) noexcept;

struct PoolStats {
  size_t cached_bytes = 0;
  size_t cached_blocks = 0;
  uint64_t hits = 0;    // allocations served from the cache
  uint64_t misses = 0;  // allocations that mapped fresh memory
};
PoolStats pool_stats();
/// Unmaps every cached block (e.g. before measuring memory).
void pool_trim() noexcept;

}  // namespace tracejit::base

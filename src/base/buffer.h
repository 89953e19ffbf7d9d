#pragma once
// Host storage of concrete arrays: one aligned allocation, shared by every Array copy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "base/buffer_pool.h"
#include "base/free_list.h"
#include "base/sanitizer.h"

namespace tracejit::base {

/// Alignment of every buffer: a full cache line, and enough for 512-bit vector loads.
inline constexpr size_t kBufferAlign = 64;

// Sanitizer builds keep every buffer on the heap, where their allocators check it.
inline constexpr bool kUseBufferPool = !kAddressSanitizer && !kThreadSanitizer;

class Buffer {
 public:
  // Large buffers come from the pool (reused, huge pages): see buffer_pool.h.
  explicit Buffer(int64_t bytes)
      : bytes_(bytes),
        data_(pooled() ? pool_allocate(round_up(bytes))
                       : std::aligned_alloc(kBufferAlign, round_up(bytes))) {
    if (!data_) throw std::bad_alloc();
  }
  ~Buffer() {
    if (inline_) return;  // the elements live in this object's own block
    if (pooled())
      pool_free(data_, round_up(bytes_));
    else
      std::free(data_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }

 protected:
  // Over storage that the derived class holds (InlineBuffer).
  Buffer(int64_t bytes, void* storage) : bytes_(bytes), data_(storage), inline_(true) {}

 private:
  bool pooled() const { return kUseBufferPool && round_up(bytes_) >= kPoolMinBytes; }

  // aligned_alloc wants a multiple of the alignment, and never 0 (size-0 arrays still get one).
  static size_t round_up(int64_t bytes) {
    size_t b = bytes > 0 ? static_cast<size_t>(bytes) : 1;
    return (b + kBufferAlign - 1) / kBufferAlign * kBufferAlign;
  }
  int64_t bytes_;
  void* data_;
  bool inline_ = false;
};

/// A buffer of at most N bytes whose elements follow its header in the same block: with
/// allocate_shared over a FreeList, one small array's storage is one free-list pop.
template <size_t N>
class InlineBuffer final : public Buffer {
 public:
  explicit InlineBuffer(int64_t bytes) : Buffer(bytes, storage_) {}

 private:
  alignas(kBufferAlign) unsigned char storage_[N];
};

/// Small buffers from this thread's free lists (by size class), larger ones from the heap or
/// the pool.
inline std::shared_ptr<Buffer> make_buffer(int64_t bytes) {
  auto small = [&]<size_t N>() -> std::shared_ptr<Buffer> {
    return std::allocate_shared<InlineBuffer<N>>(FreeListAllocator<InlineBuffer<N>>(), bytes);
  };
  if (bytes <= 64) return small.template operator()<64>();
  if (bytes <= 512) return small.template operator()<512>();
  if (bytes <= 4096) return small.template operator()<4096>();
  return std::make_shared<Buffer>(bytes);
}

}  // namespace tracejit::base

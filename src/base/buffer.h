#pragma once
// Host storage of concrete arrays: one aligned allocation, shared by every Array copy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "base/buffer_pool.h"

namespace tracejit::base {

/// Alignment of every buffer: a full cache line, and enough for 512-bit vector loads.
inline constexpr size_t kBufferAlign = 64;

// Sanitizer builds keep every buffer on the heap, where their allocators check it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kUseBufferPool = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kUseBufferPool = false;
#else
inline constexpr bool kUseBufferPool = true;
#endif
#else
inline constexpr bool kUseBufferPool = true;
#endif

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

 private:
  bool pooled() const { return kUseBufferPool && round_up(bytes_) >= kPoolMinBytes; }

  // aligned_alloc wants a multiple of the alignment, and never 0 (size-0 arrays still get one).
  static size_t round_up(int64_t bytes) {
    size_t b = bytes > 0 ? static_cast<size_t>(bytes) : 1;
    return (b + kBufferAlign - 1) / kBufferAlign * kBufferAlign;
  }
  int64_t bytes_;
  void* data_;
};

inline std::shared_ptr<Buffer> make_buffer(int64_t bytes) { return std::make_shared<Buffer>(bytes); }

}  // namespace tracejit::base

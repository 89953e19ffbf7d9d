#pragma once
// Per-thread free lists of fixed-size blocks, and the allocator over them that the small
// arrays use (their ArrayImpl, and their buffer with the elements inline): a jitted call's
// results then cost no malloc. A block freed on another thread joins that thread's list;
// each list is bounded, and what is beyond the bound goes back to the heap.
#include <cstddef>
#include <cstdint>
#include <new>

#include "base/sanitizer.h"

namespace tracejit::base {

/// Blocks each thread keeps per block size.
inline constexpr uint32_t kFreeListMaxBlocks = 64;

// AddressSanitizer must see every free to find uses after it: blocks go back to the heap.
inline constexpr bool kUseFreeLists = !kAddressSanitizer;

/// The free list of this thread for blocks of `Size` bytes aligned to `Align`.
template <size_t Size, size_t Align>
class FreeList {
 public:
  static void* allocate() {
    State& s = state();
    if (kUseFreeLists && s.head != nullptr) {
      Node* n = s.head;
      s.head = n->next;
      --s.count;
      return n;
    }
    return allocate_new();
  }
  [[gnu::noinline]] static void* allocate_new() { return ::operator new(Size, std::align_val_t(Align)); }
  static void release(void* p) noexcept {
    State& s = state();
    if (kUseFreeLists && s.count < kFreeListMaxBlocks && !s.closed) {
      if (!s.draining) {  // registers the thread-exit drain before the first block (once: the
        drainer();        // Drainer's guard is read through __tls_get_addr)
        s.draining = true;
      }
      Node* n = static_cast<Node*>(p);
      n->next = s.head;
      s.head = n;
      ++s.count;
      return;
    }
    ::operator delete(p, std::align_val_t(Align));
  }

 private:
  static_assert(Size >= sizeof(void*));
  struct Node {
    Node* next;
  };
  // Trivially destructible, so it stays usable while other thread-locals are destroyed.
  struct State {
    Node* head = nullptr;
    uint32_t count = 0;
    bool closed = false;    // the thread is exiting: free to the heap from now on
    bool draining = false;  // the Drainer is registered
  };
  // initial-exec: a library's thread-locals otherwise cost a __tls_get_addr call per access.
  static State& state() {
    [[gnu::tls_model("initial-exec")]] thread_local State s;
    return s;
  }
  struct Drainer {
    ~Drainer() {
      State& s = state();
      s.closed = true;
      while (Node* n = s.head) {
        s.head = n->next;
        ::operator delete(n, std::align_val_t(Align));
      }
      s.count = 0;
    }
  };
  static void drainer() {
    [[gnu::tls_model("initial-exec")]] thread_local Drainer d;
    (void)d;
  }
};

/// A standard allocator over FreeList, for std::allocate_shared of one object at a time.
template <class T>
struct FreeListAllocator {
  using value_type = T;
  FreeListAllocator() = default;
  template <class U>
  FreeListAllocator(const FreeListAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(size_t n) {
    if (n == 1) return static_cast<T*>(FreeList<sizeof(T), alignof(T)>::allocate());
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1) return FreeList<sizeof(T), alignof(T)>::release(p);
    ::operator delete(p, std::align_val_t(alignof(T)));
  }
  template <class U>
  bool operator==(const FreeListAllocator<U>&) const noexcept { return true; }
};

}  // namespace tracejit::base

// The array implementation's constructors: concrete arrays over host buffers.
#include "base/array_impl.h"

#include <cstring>
#include <fstream>
#include <new>
#include <string>

#include "base/errors.h"
#include "base/free_list.h"

namespace tracejit::detail {

namespace {

// Buffers from this size up are checked against the memory the system reports available: Linux
// overcommits, so a too-large malloc succeeds and the process is killed later, on first touch.
constexpr int64_t kCheckedAllocationBytes = int64_t{256} << 20;

// MemAvailable of /proc/meminfo in bytes; -1 where the system does not say.
int64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return -1;
}

[[noreturn]] void out_of_memory(const base::Type& type, int64_t bytes, int64_t available) {
  raise<ResourceError>("alloc", "cannot allocate ", base::type_str(type), " (", bytes, " bytes)",
                       available >= 0 ? cat(": the system reports ", available, " bytes available")
                                      : std::string(),
                       "; use smaller arrays or free memory first");
}

// Arrays of up to 4 KiB keep their elements in their ArrayImpl's block, in size classes of 64,
// 512 and 4096 bytes: one free-list block and one reference count per array instead of two of
// each (a jitted call's small results).
template <size_t N>
struct InlineArrayImpl final : ArrayImpl {
  // User-provided, so allocate_shared leaves `storage` unzeroed (value-initializing an
  // aggregate base zeroed it whole with a `rep stos`, half of make_concrete's time).
  explicit InlineArrayImpl(const base::Type& t) : ArrayImpl(t) { elements = storage; }
  alignas(base::kBufferAlign) unsigned char storage[N];
};

// The kinds of block an impl lives in (Counted::block): a plain ArrayImpl, or an inline one.
enum Block : uint8_t { kPlain, kInline64, kInline512, kInline4096 };

template <class T>
using BlockList = base::FreeList<sizeof(T), alignof(T)>;

// A new T (an impl with its count at 1) in a block of its free list.
template <class T, class... Args>
Array make_impl(Block block, const Args&... args) {
  void* p = BlockList<T>::allocate();
  T* impl;
  try {
    impl = new (p) T(args...);
  } catch (...) {  // a shape of rank > 4 allocates
    BlockList<T>::release(p);
    throw;
  }
  impl->block = block;
  return Array(impl);
}

template <class T>
void destroy_as(ArrayImpl* impl) noexcept {
  T* t = static_cast<T*>(impl);
  t->~T();
  BlockList<T>::release(t);
}

// An inline impl never holds a buffer or a trace (array_over and make_tracer make plain
// ones), so its end destroys only the type: a shape of rank > 4 owns an allocation. The null
// shared_ptrs' destructors would only test them.
template <size_t N>
void destroy_inline(ArrayImpl* impl) noexcept {
  std::destroy_at(&impl->type);
  BlockList<InlineArrayImpl<N>>::release(static_cast<InlineArrayImpl<N>*>(impl));
}

template <size_t N>
Array make_inline(const base::Type& type) {
  constexpr Block block = N == 64 ? kInline64 : N == 512 ? kInline512 : kInline4096;
  return make_impl<InlineArrayImpl<N>>(block, type);
}

int64_t bytes_of(const base::Type& type) { return type.size() * dtype_size(type.dtype); }

}  // namespace

namespace {

// make_concrete past 512 bytes, out of its line so that the small arrays' path saves no
// registers.
[[gnu::noinline]] Array make_larger(const base::Type& type, int64_t bytes) {
  if (bytes >= kCheckedAllocationBytes)
    if (int64_t available = available_memory(); available >= 0 && bytes > available)
      out_of_memory(type, bytes, available);
  try {
    if (bytes <= 4096) return make_inline<4096>(type);
    return array_over(type, base::make_buffer(bytes));
  } catch (const std::bad_alloc&) {
    out_of_memory(type, bytes, available_memory());
  }
}

}  // namespace

Array make_concrete(const base::Type& type, int64_t bytes) {
  if (bytes > 512) return make_larger(type, bytes);
  try {
    return bytes <= 64 ? make_inline<64>(type) : make_inline<512>(type);
  } catch (const std::bad_alloc&) {
    out_of_memory(type, bytes, available_memory());
  }
}

Array make_concrete(const base::Type& type) { return make_concrete(type, bytes_of(type)); }

std::shared_ptr<base::Buffer> shared_buffer(const ArrayImpl& impl) {
  if (impl.buffer != nullptr) return impl.buffer;
  const int64_t bytes = bytes_of(impl.type);
  std::shared_ptr<base::Buffer> copy = base::make_buffer(bytes);
  if (bytes > 0) std::memcpy(copy->data(), impl.elements, static_cast<size_t>(bytes));
  return copy;
}

Array retyped(const ArrayImpl& impl, const base::Type& type) {
  if (impl.buffer != nullptr || impl.is_tracer()) {
    Array view = make_impl<ArrayImpl>(kPlain, impl);
    view.impl()->type = type;
    return view;
  }
  const int64_t bytes = bytes_of(type);
  Array out = make_concrete(type, bytes);
  if (bytes > 0) std::memcpy(out.impl()->elements, impl.elements, static_cast<size_t>(bytes));
  return out;
}

void rethrow_as(std::string_view op, const ResourceError& e) {
  std::string_view what = e.what();
  if (what.substr(0, 8) == "[alloc] ") what.remove_prefix(8);
  throw ResourceError(cat("[", op, "] ", what));
}

Array array_over(const base::Type& type, std::shared_ptr<base::Buffer> buffer) {
  Array a = make_impl<ArrayImpl>(kPlain, type);
  ArrayImpl* impl = a.impl();
  impl->elements = buffer->data();
  impl->buffer = std::move(buffer);
  return a;
}

Array make_placeholder(const base::Type& type) { return make_impl<ArrayImpl>(kPlain, type); }

Array make_tracer(const base::Type& type, std::shared_ptr<TraceState> trace, int32_t var) {
  Array a = make_impl<ArrayImpl>(kPlain, type);
  ArrayImpl* impl = a.impl();
  impl->trace = std::move(trace);
  impl->var = var;
  return a;
}

void destroy(Counted* counted) noexcept {
  auto* impl = static_cast<ArrayImpl*>(counted);
  switch (static_cast<Block>(impl->block)) {
    case kPlain: return destroy_as<ArrayImpl>(impl);
    case kInline64: return destroy_inline<64>(impl);
    case kInline512: return destroy_inline<512>(impl);
    case kInline4096: return destroy_inline<4096>(impl);
  }
}

const ArrayImpl& impl_of(const Array& a, std::string_view op) {
  if (!a.valid())
    raise<Error>(op, "got an empty tj::Array (default-constructed, never assigned); give it a "
                     "value first");
  return *a.impl();
}

}  // namespace tracejit::detail

// The array implementation's constructors: concrete arrays over host buffers.
#include "base/array_impl.h"

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

}  // namespace

Array make_concrete(const base::Type& type) {
  const int64_t bytes = type.size() * dtype_size(type.dtype);
  if (bytes >= kCheckedAllocationBytes)
    if (int64_t available = available_memory(); available >= 0 && bytes > available)
      out_of_memory(type, bytes, available);
  try {
    return array_over(type, base::make_buffer(bytes));
  } catch (const std::bad_alloc&) {
    out_of_memory(type, bytes, available_memory());
  }
}

void rethrow_as(std::string_view op, const ResourceError& e) {
  std::string_view what = e.what();
  if (what.substr(0, 8) == "[alloc] ") what.remove_prefix(8);
  throw ResourceError(cat("[", op, "] ", what));
}

Array array_over(const base::Type& type, std::shared_ptr<base::Buffer> buffer) {
  auto impl = std::allocate_shared<ArrayImpl>(base::FreeListAllocator<ArrayImpl>());
  impl->type = type;
  impl->elements = buffer->data();
  impl->buffer = std::move(buffer);
  return Array(std::move(impl));
}

const ArrayImpl& impl_of(const Array& a, std::string_view op) {
  if (!a.valid())
    raise<Error>(op, "got an empty tj::Array (default-constructed, never assigned); give it a "
                     "value first");
  return *a.impl();
}

}  // namespace tracejit::detail

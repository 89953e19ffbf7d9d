// The array implementation's constructors: concrete arrays over host buffers.
#include "base/array_impl.h"

#include "base/errors.h"

namespace tracejit::detail {

Array make_concrete(const base::Type& type) {
  return array_over(type, base::make_buffer(type.size() * dtype_size(type.dtype)));
}

Array array_over(const base::Type& type, std::shared_ptr<base::Buffer> buffer) {
  auto impl = std::make_shared<ArrayImpl>();
  impl->type = type;
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

#include <cstring>

#include "base/dtype_dispatch.h"
#include "base/errors.h"
#include "frontend/format.h"
#include "tracejit/ops.h"
#include "base/array_impl.h"
#include "trace/trace_state.h"

namespace tracejit {
namespace detail {

const ArrayImpl& concrete_impl(const Array& a, std::string_view op) {
  const ArrayImpl& impl = impl_of(a, op);
  if (impl.is_tracer()) {
    if (!impl.trace->active()) raise_leak(impl, op);
    // Under grad, vjp or jvp outside jit, a value computed from concrete inputs has one.
    if (impl.trace->on_this_thread())
      if (const ArrayImpl* known = impl.trace->known_value(impl.var)) return *known;
    raise<ConcretizationError>(
        op, "needs a concrete value, but got a tracer ", ir::type_str(impl.type),
        " inside the trace of '", impl.trace->name(),
        "': its value exists only when the compiled code runs. Return it from the function, "
        "use tj::where instead of an `if`, or compute it outside jit/grad");
  }
  return impl;
}

Array array_from_data(DType dtype, const void* data, int64_t count, const Shape& shape) {
  check_shape("array", shape);
  if (count != shape_size(shape))
    raise<ShapeError>("array", count, " values do not fill shape ", shape_str(shape), " (",
                      shape_size(shape), " elements)");
  Array a = make_concrete(ir::Type{dtype, shape, false});
  if (count > 0)  // an empty vector's data() may be null, which memcpy must not see
    std::memcpy(a.impl()->elements, data, static_cast<size_t>(count * dtype_size(dtype)));
  return a;
}

namespace {

template <class To>
void convert_elements(DType from, const void* src, To* dst, int64_t n) {
  dispatch(from, [&]<class From>() {
    const From* s = static_cast<const From*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<To>(s[i]);
  });
}

}  // namespace
}  // namespace detail

using detail::raise;

Array Array::scalar(DType dtype, double value, bool weak) {
  Array a = detail::make_concrete(ir::Type{dtype, {}, weak});
  void* p = a.impl()->elements;
  switch (dtype) {
    case DType::f32: *static_cast<float*>(p) = static_cast<float>(value); break;
    case DType::f64: *static_cast<double*>(p) = value; break;
    case DType::i32: *static_cast<int32_t*>(p) = static_cast<int32_t>(static_cast<int64_t>(value)); break;
    case DType::u32: *static_cast<uint32_t*>(p) = static_cast<uint32_t>(static_cast<int64_t>(value)); break;
    case DType::bool_: *static_cast<bool*>(p) = value != 0; break;
  }
  return a;
}

const Shape& Array::shape() const { return detail::impl_of(*this, "shape").type.shape; }
int64_t Array::ndim() const { return static_cast<int64_t>(shape().size()); }
int64_t Array::size() const { return shape_size(shape()); }
DType Array::dtype() const { return detail::impl_of(*this, "dtype").type.dtype; }
bool Array::weak_type() const { return detail::impl_of(*this, "weak_type").type.weak; }
bool Array::is_tracer() const { return valid() && impl()->is_tracer(); }

void Array::read_elements(DType as, void* out, int64_t count, const char* op) const {
  const detail::ArrayImpl& impl = detail::concrete_impl(*this, op);
  int64_t n = impl.type.size();
  if (count >= 0 && count != n)
    raise<ShapeError>(op, "needs an array of size ", count, ", got ", ir::type_str(impl.type),
                      count == 1 ? "; index it first, e.g. a[0], or use to_vector()" : "");
  const void* src = impl.elements;
  detail::dispatch(as, [&]<class To>() {
    detail::convert_elements(impl.type.dtype, src, static_cast<To*>(out), n);
  });
}

Array::operator bool() const {
  const detail::ArrayImpl& impl = detail::concrete_impl(*this, "bool");
  if (impl.type.size() != 1)
    raise<ShapeError>("bool", "the truth value of ", ir::type_str(impl.type),
                      " is ambiguous: it has ", impl.type.size(),
                      " elements; reduce it first (tj::max, tj::sum)");
  return item<bool>();
}

Array Array::operator[](int64_t i) const {
  const detail::ArrayImpl& impl = detail::impl_of(*this, "index");
  if (impl.type.rank() == 0)
    raise<IndexError>("index", "cannot index a 0-d array ", ir::type_str(impl.type),
                      "; use item() for its value");
  int64_t n = impl.type.shape[0];
  int64_t j = i < 0 ? i + n : i;
  if (j < 0 || j >= n)
    raise<IndexError>("index", "index ", i, " is out of range for axis 0 of size ", n, " (",
                      ir::type_str(impl.type), "); valid indices run from ", -n, " to ", n - 1);
  Axes starts(impl.type.shape.size(), 0), limits(impl.type.shape.begin(), impl.type.shape.end());
  starts[0] = j;
  limits[0] = j + 1;
  Shape rest(impl.type.shape.begin() + 1, impl.type.shape.end());
  return reshape(slice(*this, starts, limits), rest);
}

std::string Array::str() const {
  if (!valid()) return "Array(uninitialized)";
  if (impl()->is_tracer())
    return absl::StrCat("Traced<", ir::type_str(impl()->type), ">(trace '", impl()->trace->name(), "')");
  return detail::format_array(impl()->type.dtype, impl()->type.shape, impl()->elements);
}

std::ostream& operator<<(std::ostream& os, const Array& a) { return os << a.str(); }

}  // namespace tracejit

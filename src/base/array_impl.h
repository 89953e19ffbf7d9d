#pragma once
// What an Array handle points at: a concrete value (a host buffer) or a tracer (a variable of a
// trace that is being recorded).
#include <memory>

#include "base/buffer.h"
#include "base/type.h"
#include "tracejit/array.h"
#include "tracejit/error.h"

namespace tracejit::detail {

class TraceState;

struct ArrayImpl : Counted {
  ArrayImpl() = default;
  // Copy-constructs the type: a shape of rank <= 4 is then one memcpy of its inline storage
  // (assigning it goes through InlinedVector::Assign, ~5% of a small jitted call).
  explicit ArrayImpl(const base::Type& t) : type(t) {}

  base::Type type;
  // Concrete: the buffer of the elements, row-major; null when they are inline, in this
  // object's own block (small arrays: make_concrete). To keep them beyond the array, take
  // shared_buffer(); to view them as another type, retyped().
  std::shared_ptr<base::Buffer> buffer;
  std::shared_ptr<TraceState> trace;  // tracer: the trace that owns `var`
  int32_t var = -1;  // the trace's ir::VarId
  void* elements = nullptr;  // concrete: the elements, in `buffer` or inline

  bool is_tracer() const { return trace != nullptr; }
  template <class T>
  const T* data() const { return static_cast<const T*>(elements); }
};

/// A concrete array over a fresh, uninitialised buffer of `type`. Throws ResourceError
/// "[alloc] cannot allocate ..." when the memory is not there (rethrow_as names the operation).
Array make_concrete(const base::Type& type);
/// The same, for a caller that knows the byte size (type.size() times the dtype's size).
Array make_concrete(const base::Type& type, int64_t bytes);
/// Rethrows an allocation's ResourceError as the operation `op`'s.
[[noreturn]] void rethrow_as(std::string_view op, const ResourceError& e);
/// An array of `type` with no elements: a placeholder that is only traced over (vmap's lanes).
Array make_placeholder(const base::Type& type);
/// A tracer of `type`: variable `var` of `trace`.
Array make_tracer(const base::Type& type, std::shared_ptr<TraceState> trace, int32_t var);
/// A concrete array of `type` over `buffer` (shared, not copied).
Array array_over(const base::Type& type, std::shared_ptr<base::Buffer> buffer);
/// A buffer holding `impl`'s elements that outlives it (a trace's constants): its own buffer,
/// or a copy of inline elements.
std::shared_ptr<base::Buffer> shared_buffer(const ArrayImpl& impl);
/// `impl`'s value as type `type` of the same byte size (a reshape, a weak-type change): shares
/// its buffer (a tracer: its variable), or copies inline elements.
Array retyped(const ArrayImpl& impl, const base::Type& type);
/// The concrete buffer of `a`; throws ConcretizationError naming `op` when `a` is a tracer.
const ArrayImpl& concrete_impl(const Array& a, std::string_view op);
/// The impl of a valid Array; throws tj::Error naming `op` for a default-constructed one.
const ArrayImpl& impl_of(const Array& a, std::string_view op);

}  // namespace tracejit::detail

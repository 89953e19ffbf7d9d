#pragma once
// What an Array handle points at: a concrete value (a host buffer) or a tracer (a variable of a
// trace that is being recorded).
#include <memory>

#include "ir/ir.h"
#include "runtime/buffer.h"

namespace tracejit::detail {

class TraceState;

struct ArrayImpl {
  ir::Type type;
  std::shared_ptr<runtime::Buffer> buffer;  // concrete: the elements, row-major
  std::shared_ptr<TraceState> trace;        // tracer: the trace that owns `var`
  ir::VarId var = -1;

  bool is_tracer() const { return trace != nullptr; }
  template <class T>
  const T* data() const { return static_cast<const T*>(buffer->data()); }
};

/// A concrete array over a fresh, uninitialised buffer of `type`.
Array make_concrete(const ir::Type& type);
/// The concrete buffer of `a`; throws ConcretizationError naming `op` when `a` is a tracer.
const ArrayImpl& concrete_impl(const Array& a, std::string_view op);
/// The impl of a valid Array; throws tj::Error naming `op` for a default-constructed one.
const ArrayImpl& impl_of(const Array& a, std::string_view op);

}  // namespace tracejit::detail

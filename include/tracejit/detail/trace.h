#pragma once
// The tracing machinery the transformation templates (make_ir, jit, grad) are built on. Users
// do not need this header directly.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tracejit/array.h"

namespace tracejit {

namespace ir {
struct Function;
}

/// A traced program, printable in a jaxpr-like text (one typed equation per line).
class IR {
 public:
  explicit IR(std::shared_ptr<const ir::Function> fn) : fn_(std::move(fn)) {}
  std::string str() const;
  /// The program as a Graphviz DOT digraph: a node per equation (its printed line), an edge per
  /// operand, loops and branches as clusters nesting their regions. `dot -Tsvg` renders it.
  std::string dot() const;
  const ir::Function& function() const { return *fn_; }
  const std::shared_ptr<const ir::Function>& shared() const { return fn_; }

 private:
  std::shared_ptr<const ir::Function> fn_;
};
std::ostream& operator<<(std::ostream& os, const IR& ir);

namespace detail {

class TraceState;

/// What tracing produced: the IR, and the values of enclosing traces it captured (to be
/// supplied, in order, as `captured` when the IR is replayed).
struct Traced {
  std::shared_ptr<const ir::Function> fn;
  std::vector<Array> captured;
};

/// Begins a trace on this thread; operations on arrays are recorded into it until finish() or
/// destruction (which also covers an exception thrown midway: no trace state is left behind).
/// Traces nest: tracers of an enclosing trace used inside become captured values.
class TraceScope {
 public:
  explicit TraceScope(std::string name);
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

  /// A fresh input variable of this trace.
  Array new_input(DType dtype, const Shape& shape, bool weak);
  /// A fresh input of `value`'s type that stands for `value` (TraceState::known_value): an
  /// `if` on what is computed from it works when the value is concrete.
  Array new_input_with_value(const Array& value);
  /// Ends the trace with these outputs (tracers of this trace, enclosing tracers or concrete
  /// arrays) and returns the verified IR.
  Traced finish(const std::vector<Array>& outputs);

 private:
  std::shared_ptr<TraceState> state_;
};

/// Replays `fn` through the current interpreter: evaluated eagerly outside a trace, recorded
/// into the current trace inside one.
std::vector<Array> eval_ir(const ir::Function& fn, std::span<const Array> inputs,
                           std::span<const Array> captured);

/// Records a call of the traced function `traced` (a nested jit named `name`) on `args` into
/// the current trace: one call equation whose region is the function.
std::vector<Array> bind_call(std::string name, Traced traced, std::span<const Array> args);

/// True when a trace is active on this thread.
bool tracing();

}  // namespace detail
}  // namespace tracejit

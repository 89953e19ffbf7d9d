#pragma once
// The interpreter stack. Every primitive goes through bind(), which hands it to the innermost
// active trace of this thread (recording an equation) or, with no trace, evaluates it eagerly.
#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "ir/eqn_index.h"
#include "ir/ir.h"
#include "tracejit/detail/trace.h"

namespace tracejit::detail {

/// This thread's number of active traces, for tracing() on every jitted call (read inline by
/// the library). A plain thread-local: the trace stack's vector has a destructor, which gives it
/// an initialization guard read through __tls_get_addr at every access, even initial-exec
/// (~5% of a small call).
[[gnu::tls_model("initial-exec")]] extern constinit thread_local size_t t_depth;
inline bool tracing_now() { return t_depth != 0; }

struct ArrayImpl;

class TraceState : public std::enable_shared_from_this<TraceState> {
 public:
  TraceState(std::string name, size_t level)
      : name_(name), level_(level), thread_(std::this_thread::get_id()) {
    fn_.name = std::move(name);
  }

  /// A fresh input. With `value` (a concrete array, or a tracer of an enclosing trace), the
  /// input stands for that value: grad, vjp and jvp outside jit trace this way, so that values
  /// computed only from such inputs stay concrete (known_value).
  Array new_input(const ir::Type& type, const Array* value = nullptr);
  /// The concrete value of `v` when it follows from inputs with values, constants and captured
  /// values that have one: computed on demand (eagerly, outside any trace) and kept. Null when
  /// it depends on an input without a value (a jit argument).
  const ArrayImpl* known_value(ir::VarId v);
  std::vector<Array> bind(ir::Prim prim, std::span<const Array> in, const ir::Params& params);
  /// The variable that stands for `a` in this trace, lifting concrete arrays to constants and
  /// tracers of enclosing traces to captures.
  ir::VarId var_for(const Array& a, std::string_view op);
  Traced finish(const std::vector<Array>& outputs);

  /// Read from any thread (a leaked tracer's check), written by the tracing thread: atomic.
  bool active() const { return active_.load(std::memory_order_acquire); }
  void end() { active_.store(false, std::memory_order_release); }
  /// Kept apart from fn_.name: finish() moves fn_ out, and leak errors name the trace after that.
  const std::string& name() const { return name_; }
  /// True when this trace is on the calling thread's stack.
  bool on_this_thread() const;

 private:
  Array make_tracer(ir::VarId v);

  ir::Function fn_;
  std::string name_;
  size_t level_;
  std::thread::id thread_;
  std::atomic<bool> active_{true};
  std::vector<Array> captured_;  // parallel to fn_.captures
  std::vector<Array> const_arrays_;  // the Arrays behind fn_.const_values, while tracing
  // Concrete arrays and outer tracers already lifted, by identity. The Arrays themselves are
  // kept alive by const_arrays_ and captured_, so the pointers stay unique.
  absl::flat_hash_map<const ArrayImpl*, ir::VarId> lifted_;
  // Scalar constants by type and bits (var_for).
  absl::flat_hash_map<std::pair<ir::Type, uint64_t>, ir::VarId> scalar_consts_;
  // known_value: values given for inputs or computed so far, by variable; which equation
  // defines each variable (filled up to eqns_indexed_); variables known to have no value.
  bool has_values_ = false;
  absl::flat_hash_map<ir::VarId, Array> known_;
  absl::flat_hash_map<ir::VarId, size_t> defining_eqn_;
  size_t eqns_indexed_ = 0;
  absl::flat_hash_set<ir::VarId> unknown_;
  // Hash-consing: an equation already recorded with the same operands and parameters.
  ir::EqnIndex recorded_{&fn_.eqns};
};

/// The innermost active trace of this thread, or null.
TraceState* current_trace();

/// The single interception point of every primitive.
std::vector<Array> bind(ir::Prim prim, std::span<const Array> in, const ir::Params& params = {});
Array bind1(ir::Prim prim, std::span<const Array> in, const ir::Params& params = {});
inline Array bind1(ir::Prim prim, std::initializer_list<Array> in, const ir::Params& params = {}) {
  return bind1(prim, std::span<const Array>(in.begin(), in.size()), params);
}

/// A traced sub-program as a closed region: the values it captured from enclosing traces become
/// its leading inputs, and are returned as the operands that feed them.
std::pair<std::shared_ptr<ir::Function>, std::vector<Array>> close_region(Traced t);

/// Traces `body` over fresh inputs of `types` (a nested trace named `name`): how a rule that
/// rewrites a higher-order primitive (jvp, vmap) builds the regions of the equation it binds.
/// What `body` uses from outside becomes the result's captured values.
Traced trace_region(std::string name, std::span<const ir::Type> types,
                    absl::FunctionRef<std::vector<Array>(std::span<const Array>)> body);
/// The same over inputs typed like `like` (dtype, shape and weak bit of each).
Traced trace_region(std::string name, std::span<const Array> like,
                    absl::FunctionRef<std::vector<Array>(std::span<const Array>)> body);

/// Throws TracerLeakError (tracer of an ended trace or another thread) naming `op`.
[[noreturn]] void raise_leak(const ArrayImpl& impl, std::string_view op);

}  // namespace tracejit::detail

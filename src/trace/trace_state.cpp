#include "trace/trace_state.h"

#include <pthread.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "ir/dot.h"
#include "trace/eager.h"

namespace tracejit::detail {

[[gnu::tls_model("initial-exec")]] constinit thread_local size_t t_depth = 0;

namespace {

// This thread's stack of active traces, innermost last.
[[gnu::tls_model("initial-exec")]] thread_local std::vector<std::shared_ptr<TraceState>> t_stack;
void sync_depth() { t_depth = t_stack.size(); }

// A trace nested in another (jit inside jit, a loop's body) runs the user's function deeper on
// the C++ stack, a kilobyte or more per level. A new trace needs at least this much stack left,
// so that recursion through jit 10,000 deep is a tj::ResourceError rather than a SIGSEGV.
constexpr size_t kMinFreeStack = size_t{512} << 10;
// Traces nested fewer deep than this are not checked: finding the stack's floor reads
// /proc/self/maps on the main thread (~0.6 ms in a process that maps libLLVM), which the first
// call of a fresh process paid for nothing; and a thread with a small stack may still trace.
constexpr size_t kUncheckedNesting = 8;

// The lowest address of this thread's stack (it grows down), or 0 when unknown.
uintptr_t stack_floor() {
  thread_local const uintptr_t floor = [] {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return uintptr_t{0};
    void* addr = nullptr;
    size_t size = 0;
    const bool ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
    pthread_attr_destroy(&attr);
    return ok ? reinterpret_cast<uintptr_t>(addr) : uintptr_t{0};
  }();
  return floor;
}

void check_stack_for_trace(const std::string& name) {
  if (t_stack.size() < kUncheckedNesting) return;
  const uintptr_t floor = stack_floor();
  const char here = 0;
  const uintptr_t sp = reinterpret_cast<uintptr_t>(&here);
  if (floor == 0 || sp < floor || sp - floor >= kMinFreeStack) return;
  raise<ResourceError>("jit", "cannot trace '", name, "': ", t_stack.size(),
                       " traces are already nested on this thread and less than ",
                       kMinFreeStack >> 10, " KiB of its stack is left. Recursion through jit (or "
                       "loops nested that deep) unrolls into the C++ stack; express it as a loop "
                       "with tj::fori_loop or tj::scan, or run it on a thread with a larger stack");
}

}  // namespace

TraceState* current_trace() { return t_stack.empty() ? nullptr : t_stack.back().get(); }
bool tracing() { return tracing_now(); }

bool TraceState::on_this_thread() const {
  return thread_ == std::this_thread::get_id() && level_ < t_stack.size() &&
         t_stack[level_].get() == this;
}

void raise_leak(const ArrayImpl& impl, std::string_view op) {
  raise<TracerLeakError>(
      op, "a tracer of type ", ir::type_str(impl.type), " from the trace of '",
      impl.trace->name(), "' was used ",
      impl.trace->active() ? "on another thread than the one tracing it"
                           : "after that trace had ended",
      ". Values computed inside jit, grad or make_ir exist only within that call: return them "
      "from the function instead of storing them in an outer variable");
}

Array TraceState::make_tracer(ir::VarId v) {
  return detail::make_tracer(fn_.type(v), shared_from_this(), v);
}

Array TraceState::new_input(const ir::Type& type, const Array* value) {
  ir::VarId v = fn_.new_var(type);
  fn_.inputs.push_back(v);
  if (value != nullptr) {
    has_values_ = true;
    known_.emplace(v, *value);
  }
  return make_tracer(v);
}

namespace {

// Runs `fn` with this thread's trace stack set aside: binds inside it evaluate eagerly.
template <class F>
auto without_traces(F&& fn) {
  std::vector<std::shared_ptr<TraceState>> saved;
  saved.swap(t_stack);
  sync_depth();
  struct Restore {
    std::vector<std::shared_ptr<TraceState>>& saved;
    ~Restore() {
      saved.swap(t_stack);
      sync_depth();
    }
  } restore{saved};
  return fn();
}

// The concrete impl behind `a`: itself, or the known value of an enclosing trace's tracer.
const ArrayImpl* resolve(const Array& a) {
  const ArrayImpl& impl = *a.impl();
  if (!impl.is_tracer()) return &impl;
  if (!impl.trace->active() || !impl.trace->on_this_thread()) return nullptr;
  return impl.trace->known_value(impl.var);
}

}  // namespace

const ArrayImpl* TraceState::known_value(ir::VarId root) {
  if (!has_values_) return nullptr;
  for (; eqns_indexed_ < fn_.eqns.size(); ++eqns_indexed_)
    for (ir::VarId o : fn_.eqns[eqns_indexed_].out) defining_eqn_.emplace(o, eqns_indexed_);
  // Depth-first over the defining equations, with an explicit stack (chains can be long).
  std::vector<ir::VarId> stack{root};
  while (!stack.empty()) {
    const ir::VarId v = stack.back();
    if (known_.contains(v) || unknown_.contains(v)) {
      stack.pop_back();
      continue;
    }
    auto c = std::find(fn_.const_vars.begin(), fn_.const_vars.end(), v);
    if (c != fn_.const_vars.end()) {
      known_.emplace(v, const_arrays_[static_cast<size_t>(c - fn_.const_vars.begin())]);
      continue;
    }
    auto cap = std::find(fn_.captures.begin(), fn_.captures.end(), v);
    auto def = defining_eqn_.find(v);
    if (cap != fn_.captures.end() || def == defining_eqn_.end()) {
      // A captured value of an enclosing trace has the value that trace knows; an input
      // without a given value has none.
      if (cap != fn_.captures.end())
        known_.emplace(v, captured_[static_cast<size_t>(cap - fn_.captures.begin())]);
      else
        unknown_.insert(v);
      continue;
    }
    const ir::Eqn& eqn = fn_.eqns[def->second];
    bool ready = true, missing = false;
    for (ir::VarId in : eqn.in) {
      if (unknown_.contains(in)) missing = true;
      if (!known_.contains(in) && !unknown_.contains(in)) {
        stack.push_back(in);
        ready = false;
      }
    }
    if (!ready) continue;
    stack.pop_back();
    std::vector<Array> ins;
    for (ir::VarId in : eqn.in) {
      const ArrayImpl* k = missing ? nullptr : resolve(known_.at(in));
      if (k == nullptr) {
        missing = true;
        break;
      }
      ins.push_back(retyped(*k, k->type));
    }
    if (missing) {
      for (ir::VarId o : eqn.out) unknown_.insert(o);
      continue;
    }
    std::vector<ir::Type> out_types;
    for (ir::VarId o : eqn.out) out_types.push_back(fn_.type(o));
    std::vector<Array> outs =
        without_traces([&] { return eval_eager(eqn.prim, ins, eqn.params, out_types); });
    for (size_t i = 0; i < eqn.out.size(); ++i) known_.emplace(eqn.out[i], outs[i]);
  }
  if (unknown_.contains(root)) return nullptr;
  return resolve(known_.at(root));
}

ir::VarId TraceState::var_for(const Array& a, std::string_view op) {
  const ArrayImpl& impl = impl_of(a, op);
  if (impl.trace.get() == this) return impl.var;
  if (auto it = lifted_.find(&impl); it != lifted_.end()) return it->second;
  ir::VarId v;
  if (!impl.is_tracer() && impl.type.rank() == 0) {
    // C++ scalars come as a fresh Array per use (`y + 0.25f` in a loop): one constant per
    // value, so that the broadcasts of it hash-cons too. Not kept in lifted_: this Array is not
    // kept alive, and its address may come back as another one's.
    uint64_t bits = 0;
    std::memcpy(&bits, impl.elements, static_cast<size_t>(dtype_size(impl.type.dtype)));
    auto [it, fresh] = scalar_consts_.try_emplace(std::pair{impl.type, bits}, 0);
    if (!fresh) return it->second;
    it->second = v = fn_.new_var(impl.type);
    fn_.const_vars.push_back(v);
    fn_.const_values.push_back(shared_buffer(impl));
    const_arrays_.push_back(a);
    return v;
  }
  if (!impl.is_tracer()) {
    v = fn_.new_var(impl.type);
    fn_.const_vars.push_back(v);
    fn_.const_values.push_back(shared_buffer(impl));
    const_arrays_.push_back(a);
  } else if (impl.trace->active() && impl.trace->on_this_thread() && impl.trace->level_ < level_) {
    v = fn_.new_var(impl.type);
    fn_.captures.push_back(v);
    captured_.push_back(a);
  } else {
    raise_leak(impl, op);
  }
  lifted_.emplace(&impl, v);
  return v;
}

std::vector<Array> TraceState::bind(ir::Prim prim, std::span<const Array> in,
                                    const ir::Params& params) {
  absl::InlinedVector<ir::VarId, 3> in_vars;
  std::vector<ir::Type> in_types;
  for (const Array& a : in) {
    in_vars.push_back(var_for(a, ir::prim_name(prim)));
    in_types.push_back(fn_.type(in_vars.back()));
  }
  std::vector<Array> outs;
  // Effects (and regions holding one) are recorded every time they are bound.
  bool effect = ir::has_effect(prim, params);
  if (int i = effect ? -1 : recorded_.find(prim, in_vars, params); i >= 0) {
    for (ir::VarId v : fn_.eqns[static_cast<size_t>(i)].out) outs.push_back(make_tracer(v));
    return outs;
  }
  std::vector<ir::Type> out_types = ir::infer_types(prim, in_types, params);
  ir::Eqn eqn{prim, std::move(in_vars), {}, params};
  for (const ir::Type& t : out_types) {
    eqn.out.push_back(fn_.new_var(t));
    outs.push_back(make_tracer(eqn.out.back()));
  }
  fn_.eqns.push_back(std::move(eqn));
  if (!effect) recorded_.insert(static_cast<int>(fn_.eqns.size() - 1));
  return outs;
}

Traced TraceState::finish(const std::vector<Array>& outputs) {
  for (const Array& a : outputs) fn_.outputs.push_back(var_for(a, "trace"));
  ir::verify(fn_, "trace", /*regions=*/false);
  Traced result{std::make_shared<ir::Function>(std::move(fn_)), std::move(captured_)};
  lifted_.clear();
  scalar_consts_.clear();
  recorded_.clear();
  const_arrays_.clear();
  known_.clear();
  defining_eqn_.clear();
  unknown_.clear();
  has_values_ = false;
  return result;
}

std::vector<Array> bind(ir::Prim prim, std::span<const Array> in, const ir::Params& params) {
  if (TraceState* t = current_trace()) return t->bind(prim, in, params);
  std::vector<ir::Type> in_types;
  for (const Array& a : in) {
    const ArrayImpl& impl = impl_of(a, ir::prim_name(prim));
    if (impl.is_tracer()) raise_leak(impl, ir::prim_name(prim));
    in_types.push_back(impl.type);
  }
  std::vector<ir::Type> out_types = ir::infer_types(prim, in_types, params);
  try {
    return eval_eager(prim, in, params, out_types);
  } catch (const ResourceError& e) {
    rethrow_as(ir::prim_name(prim), e);
  }
}

Array bind1(ir::Prim prim, std::span<const Array> in, const ir::Params& params) {
  return bind(prim, in, params)[0];
}

std::pair<std::shared_ptr<ir::Function>, std::vector<Array>> close_region(Traced t) {
  auto fn = std::make_shared<ir::Function>(*t.fn);
  std::vector<ir::VarId> inputs = fn->captures;
  inputs.insert(inputs.end(), fn->inputs.begin(), fn->inputs.end());
  fn->inputs = std::move(inputs);
  fn->captures.clear();
  return {std::move(fn), std::move(t.captured)};
}

Traced trace_region(std::string name, std::span<const ir::Type> types,
                    absl::FunctionRef<std::vector<Array>(std::span<const Array>)> body) {
  TraceScope scope(std::move(name));
  std::vector<Array> inputs;
  inputs.reserve(types.size());
  for (const ir::Type& t : types) inputs.push_back(scope.new_input(t.dtype, t.shape, t.weak));
  return scope.finish(body(inputs));
}

Traced trace_region(std::string name, std::span<const Array> like,
                    absl::FunctionRef<std::vector<Array>(std::span<const Array>)> body) {
  std::vector<ir::Type> types;
  types.reserve(like.size());
  for (const Array& a : like) types.push_back(a.impl()->type);
  return trace_region(std::move(name), types, body);
}

std::vector<Array> bind_call(std::string name, Traced traced, std::span<const Array> args) {
  auto [fn, operands] = close_region(std::move(traced));
  operands.insert(operands.end(), args.begin(), args.end());
  ir::Params params{.text = std::move(name)};
  params.regions = {std::move(fn)};
  return bind(ir::Prim::kCall, operands, params);
}

// TraceScope: the RAII handle that pushes and pops a TraceState.

TraceScope::TraceScope(std::string name)
    : state_((check_stack_for_trace(name), std::make_shared<TraceState>(std::move(name), t_stack.size()))) {
  t_stack.push_back(state_);
  sync_depth();
}

namespace {

// Ends `state` and pops it from this thread's stack, with anything an exception left above it.
void pop_trace(const std::shared_ptr<TraceState>& state) {
  state->end();
  if (std::find(t_stack.begin(), t_stack.end(), state) == t_stack.end()) return;
  while (!t_stack.empty()) {
    bool mine = t_stack.back() == state;
    t_stack.back()->end();
    t_stack.pop_back();
    sync_depth();
    if (mine) break;
  }
}

}  // namespace

TraceScope::~TraceScope() { pop_trace(state_); }

Array TraceScope::new_input(DType dtype, const Shape& shape, bool weak) {
  return state_->new_input(ir::Type{dtype, shape, weak});
}

Array TraceScope::new_input_with_value(const Array& value) {
  const ArrayImpl& impl = impl_of(value, "trace");
  return state_->new_input(impl.type, &value);
}

Traced TraceScope::finish(const std::vector<Array>& outputs) {
  Traced t = state_->finish(outputs);
  pop_trace(state_);  // later operations go to the enclosing trace again
  return t;
}

}  // namespace tracejit::detail

namespace tracejit {
std::string IR::str() const { return ir::to_string(*fn_); }
std::string IR::dot() const { return ir::to_dot(*fn_, fn_->name.empty() ? "traced" : fn_->name); }
std::ostream& operator<<(std::ostream& os, const IR& ir) { return os << ir.str(); }
}  // namespace tracejit

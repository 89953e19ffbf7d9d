#pragma once
// Tracing a C++ callable over pytree arguments: the template half of make_ir, jit and grad.
// Arguments are flattened to leaves, each leaf becomes an input of a new trace, the arguments
// are rebuilt from those tracers and the callable runs once; its result is flattened into the
// trace's outputs.
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tracejit/detail/trace.h"
#include "tracejit/pytree.h"

namespace tracejit::detail {

/// The leaves of all arguments, and each argument's structure.
struct FlatArgs {
  std::vector<Array> leaves;
  std::vector<TreeDef> defs;      // one per argument
  std::vector<size_t> offsets;    // where each argument's leaves begin; offsets.back() == size
};

template <class... Args>
FlatArgs flatten_args(const Args&... args) {
  FlatArgs flat;
  auto add = [&](const auto& arg) {
    flat.offsets.push_back(flat.leaves.size());
    Flattened f = tree_flatten(arg);
    flat.leaves.insert(flat.leaves.end(), f.leaves.begin(), f.leaves.end());
    flat.defs.push_back(std::move(f.def));
  };
  (add(args), ...);
  (void)add;  // unused when there are no arguments
  flat.offsets.push_back(flat.leaves.size());
  return flat;
}

/// Rebuilds the arguments (as values) from `leaves`, laid out as in `flat`.
template <class... Args>
std::tuple<std::remove_cvref_t<Args>...> unflatten_args(const FlatArgs& flat,
                                                        std::span<const Array> leaves) {
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return std::tuple<std::remove_cvref_t<Args>...>{tree_unflatten<std::remove_cvref_t<Args>>(
        flat.defs[I], leaves.subspan(flat.offsets[I], flat.offsets[I + 1] - flat.offsets[I]))...};
  }(std::index_sequence_for<Args...>());
}

/// The type a callable returns for these arguments, without cv/ref.
template <class F, class... Args>
using result_t = std::remove_cvref_t<std::invoke_result_t<F&, const std::remove_cvref_t<Args>&...>>;

/// What tracing a callable gives: the IR (with captured values) and the result's structure.
struct TracedFn {
  Traced traced;
  TreeDef out_def;
};

/// Throws the ConcretizationError of a parameter that takes C++ arithmetic values: tracing
/// would have to hand it `leaf`, a tracer, whose value exists only when the compiled code runs.
[[noreturn]] void raise_scalar_parameter(const std::string& fn_name, size_t arg, const Array& leaf);

/// How a trace's inputs relate to the arguments: abstract (jit, make_ir), or standing for the
/// argument values (grad, vjp, jvp), so that values computed from concrete arguments alone
/// stay concrete and a C++ `if` on them works, as under JAX's grad outside jit.
enum class TraceInputs : bool { kAbstract, kWithValues };

/// Traces `f`, rebuilding its arguments as `Args` from tracers shaped like `flat`'s leaves.
template <class... Args, class F>
TracedFn trace_as(F& f, std::string name, const FlatArgs& flat, TraceInputs mode) {
  TraceScope scope(std::move(name));
  std::vector<Array> inputs;
  inputs.reserve(flat.leaves.size());
  for (const Array& leaf : flat.leaves)
    inputs.push_back(mode == TraceInputs::kWithValues
                         ? scope.new_input_with_value(leaf)
                         : scope.new_input(leaf.dtype(), leaf.shape(), leaf.weak_type()));
  auto args = unflatten_args<Args...>(flat, inputs);
  static_assert(is_pytree_v<result_t<F, Args...>>,
                "tracejit: the function's result is not a pytree; return tj::Array, C++ "
                "scalars, std containers of them, or a struct registered with TRACEJIT_PYTREE");
  Flattened out = tree_flatten(std::apply(f, args));
  return {scope.finish(out.leaves), std::move(out.def)};
}

/// Traces `f` on abstract arguments shaped like `flat`'s leaves. A C++ scalar argument
/// (`jitted(2.f)`) is a weakly typed leaf, as a Python scalar is under jax.jit: when f takes
/// Arrays there, it is traced like any array. Only a parameter that itself takes C++ scalars
/// (`[](Array x, int n)`) cannot receive one; that throws ConcretizationError before tracing.
template <class... Args, class F>
TracedFn trace_fn(F& f, std::string name, const FlatArgs& flat,
                  TraceInputs mode = TraceInputs::kAbstract) {
  if constexpr (std::is_invocable_v<F&, const arrayified_t<Args>&...>) {
    return trace_as<arrayified_t<Args>...>(f, std::move(name), flat, mode);
  } else {
    size_t i = 0;
    auto check = [&]<class Arg>() {
      if (!std::is_same_v<arrayified_t<Arg>, std::remove_cvref_t<Arg>> &&
          flat.offsets[i + 1] > flat.offsets[i])
        raise_scalar_parameter(name, i, flat.leaves[flat.offsets[i]]);
      ++i;
    };
    (check.template operator()<Args>(), ...);
    (void)check;  // unused when there are no arguments
    return trace_as<Args...>(f, std::move(name), flat, mode);
  }
}

/// A readable name for a callable in dumps and messages, when the user gave none.
std::string default_function_name(const char* mangled_type_name);

}  // namespace tracejit::detail

#pragma once
// Reverse-mode automatic differentiation: tj::grad, tj::value_and_grad and tj::vjp.
//
// Each traces the function on abstract inputs into IR (a nested trace), replays that IR on the
// actual arguments through bind, keeping every intermediate value, and sweeps the equations in
// reverse, applying each primitive's VJP rule. Replaying through bind is what makes AD compose:
// outside any trace it computes values; inside one (jit, make_ir, an outer grad) the forward
// and backward computations are recorded into that trace, so jit(grad(f)) compiles both into
// one function and grad(grad(f)) differentiates the recorded backward pass again. The rules
// are written with public ops, so they need no special cases for any of this.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "tracejit/detail/trace_fn.h"

namespace tracejit {

namespace detail {

/// The forward pass of a traced function evaluated on primal values, kept for reverse sweeps.
/// Values are concrete arrays outside a trace and tracers of the current trace inside one.
class VjpTape {
 public:
  /// Replays `traced` on `primals` (one per input of its IR) through bind. `wrt[i]` says
  /// whether input i is differentiated; captured values and constants never are. Without
  /// `replay_effects`, effects (debug_print) are left out of the replay: a reverse sweep that
  /// recomputes a loop body must not print again.
  VjpTape(const Traced& traced, std::span<const Array> primals, std::vector<bool> wrt,
          bool replay_effects = true);

  /// The function's outputs, in order.
  const std::vector<Array>& outputs() const;
  /// Pulls back one cotangent per output (an invalid Array for none; each must have its
  /// output's shape and dtype) to one per input: the accumulated cotangent, or zeros where none
  /// arrived, for differentiated inputs; an invalid Array for the others. Equations whose
  /// results receive no cotangent are skipped. May be called many times.
  std::vector<Array> backward(std::span<const Array> out_cts) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

/// The run-time argument index of grad(f, n), checked against the number of arguments.
size_t check_argnum(std::string_view op, int n, size_t num_args);
/// Throws TypeError unless every leaf of argument `argnum` is a float array.
void check_grad_argument(std::string_view op, const FlatArgs& flat, size_t argnum);

/// What grad and value_and_grad compute once f is traced: the output's value, the aux leaves
/// (with has_aux: f returns std::pair{loss, aux}), and the gradient leaves of each argument in
/// `argnums`. Throws unless the loss is a single scalar float leaf.
struct GradLeaves {
  Array value;
  std::vector<Array> aux;
  TreeDef aux_def;
  std::vector<std::vector<Array>> grads;  // one per argnum
};
GradLeaves grad_leaves(std::string_view op, const TracedFn& traced, const FlatArgs& flat,
                       std::span<const size_t> argnums, bool has_aux);

/// Checks a vjp cotangent against the outputs (structure `out_def`, values `outputs`) and
/// returns its leaves; throws TreeError, ShapeError or TypeError naming the mismatch.
std::vector<Array> check_cotangent(const TreeDef& out_def, const std::vector<Array>& outputs,
                                   const Flattened& cotangent);

/// What f returns under has_aux: std::pair{loss, aux} (or a two-element tuple).
template <class T> inline constexpr bool is_loss_and_aux_v = false;
template <class A, class B> inline constexpr bool is_loss_and_aux_v<std::pair<A, B>> = true;
template <class A, class B> inline constexpr bool is_loss_and_aux_v<std::tuple<A, B>> = true;

/// The callable grad and value_and_grad return. kArgs are the differentiated arguments'
/// indices (several: the gradients come as a std::tuple), or the single -1 when the index is
/// given at run time (`arg_`). kHasAux: f returns std::pair{loss, aux}.
template <class F, bool kWithValue, bool kHasAux, int... kArgs>
class GradFn {
  static constexpr bool kRuntimeArg = sizeof...(kArgs) == 1 && ((kArgs < 0) && ...);
  static constexpr bool kSeveral = sizeof...(kArgs) > 1;

 public:
  GradFn(F f, int arg) : f_(std::make_shared<F>(std::move(f))), arg_(arg) {}

  template <class... Args>
  auto operator()(const Args&... args) const {
    static_assert(sizeof...(Args) > 0, "tracejit: grad needs a function of at least one argument");
    using Tuple = std::tuple<std::remove_cvref_t<Args>...>;
    using First = std::tuple_element_t<0, Tuple>;
    if constexpr (kRuntimeArg)
      static_assert((std::is_same_v<std::remove_cvref_t<Args>, First> && ...),
                    "tracejit: grad(f, n) with a run-time argument index needs all arguments to "
                    "have one type (the gradient's type); use tj::grad<N>(f) instead");
    else
      static_assert(((kArgs < static_cast<int>(sizeof...(Args))) && ...),
                    "tracejit: grad<N>(f): N must be below the number of arguments");
    constexpr std::string_view op = kWithValue ? "value_and_grad" : "grad";

    FlatArgs flat = flatten_args(args...);
    std::vector<size_t> argnums;
    if constexpr (kRuntimeArg)
      argnums.push_back(check_argnum(op, arg_, sizeof...(Args)));
    else
      (argnums.push_back(index<kArgs, sizeof...(Args)>()), ...);
    for (size_t n : argnums) check_grad_argument(op, flat, n);
    TracedFn traced = trace_fn<Args...>(*f_, default_function_name(typeid(F).name()), flat,
                                        TraceInputs::kWithValues);
    GradLeaves r = grad_leaves(op, traced, flat, argnums, kHasAux);
    auto grad_of = [&]<int kArg>(size_t i) {
      using Grad = arrayified_t<std::tuple_element_t<index<kArg, sizeof...(Args)>(), Tuple>>;
      return tree_unflatten<Grad>(flat.defs[argnums[i]], r.grads[i]);
    };
    auto grads = [&] {
      if constexpr (kSeveral) {
        return [&]<size_t... I>(std::index_sequence<I...>) {
          return std::tuple{grad_of.template operator()<kArgs>(I)...};
        }(std::make_index_sequence<sizeof...(kArgs)>());
      } else {
        return grad_of.template operator()<(kArgs, ...)>(0);
      }
    };
    using Result = arrayified_t<result_t<F, Args...>>;
    if constexpr (kHasAux && !is_loss_and_aux_v<Result>) {
      static_assert(dependent_false_v<Result>,
                    "tracejit: with tj::has_aux, f must return std::pair{loss, aux}");
    } else if constexpr (kHasAux) {
      using Value = std::tuple_element_t<0, Result>;
      using Aux = std::tuple_element_t<1, Result>;
      Value value = tree_unflatten<Value>(TreeDef({TreeNode{}}), std::span<const Array>(&r.value, 1));
      Aux aux = tree_unflatten<Aux>(r.aux_def, r.aux);
      if constexpr (kWithValue)
        return std::pair{std::pair<Value, Aux>(std::move(value), std::move(aux)), grads()};
      else
        return std::pair{grads(), std::move(aux)};
    } else if constexpr (kWithValue) {
      Result value = tree_unflatten<Result>(traced.out_def, std::span<const Array>(&r.value, 1));
      return std::pair{std::move(value), grads()};
    } else {
      return grads();
    }
  }

 private:
  // A compile-time argument index, clamped so that the type computations above stay valid
  // while the static_assert reports the error.
  template <int kArg, size_t kNumArgs>
  static constexpr size_t index() {
    return kArg < 0 ? 0 : std::min<size_t>(static_cast<size_t>(kArg), kNumArgs - 1);
  }

  std::shared_ptr<F> f_;
  int arg_;
};

/// The vjp_fn of tj::vjp: maps a cotangent of the outputs to one cotangent per primal.
template <class... Args>
class VjpFn {
 public:
  VjpFn(std::shared_ptr<const VjpTape> tape, TreeDef out_def, FlatArgs layout)
      : tape_(std::move(tape)), out_def_(std::move(out_def)), layout_(std::move(layout)) {}

  /// `cotangent` has the outputs' structure, shapes and dtypes; the result is a std::tuple
  /// with one cotangent per primal, each with its primal's structure.
  template <class Ct>
  std::tuple<arrayified_t<Args>...> operator()(const Ct& cotangent) const {
    std::vector<Array> cts = check_cotangent(out_def_, tape_->outputs(), tree_flatten(cotangent));
    std::vector<Array> in_cts = tape_->backward(cts);
    return unflatten_args<arrayified_t<Args>...>(layout_, in_cts);
  }

 private:
  std::shared_ptr<const VjpTape> tape_;
  TreeDef out_def_;
  FlatArgs layout_;  // the primals' structures (defs, offsets); no leaves
};

}  // namespace detail

/// The tag of grad(f, tj::has_aux) and value_and_grad(f, tj::has_aux): f returns
/// std::pair{loss, aux}, and aux comes back beside the gradient (JAX's has_aux=True).
struct HasAux {};
inline constexpr HasAux has_aux{};

/// The gradient of `f` with respect to argument N (0 by default), with that argument's type
/// (arithmetic leaves become Arrays). f must return a single scalar float; the argument's
/// leaves must be float arrays. `tj::grad<1>(loss)(params, x, y)` works for any argument types.
/// Outside jit, values computed only from concrete arguments stay concrete while f runs, so a
/// C++ `if` on them works (JAX's tracers over concrete values); under jit it throws
/// ConcretizationError.
template <size_t N = 0, class F>
auto grad(F f) {
  static_assert(N < 1024, "tracejit: grad<N>: unreasonable argument index");
  return detail::GradFn<F, false, false, static_cast<int>(N)>(std::move(f), static_cast<int>(N));
}
/// Gradients with respect to several arguments, as a std::tuple in the order given:
/// `auto [gw, gb] = tj::grad<0, 2>(f)(w, x, b);` (JAX's argnums=(0, 2)).
template <size_t N0, size_t N1, size_t... Ns, class F>
auto grad(F f) {
  return detail::GradFn<F, false, false, static_cast<int>(N0), static_cast<int>(N1),
                        static_cast<int>(Ns)...>(std::move(f), 0);
}
/// The gradient with respect to argument `n`, chosen at run time. All arguments must have one
/// type (otherwise the call does not compile; use grad<N>); an out-of-range n throws
/// IndexError when the gradient is called.
template <class F>
auto grad(F f, int n) {
  return detail::GradFn<F, false, false, -1>(std::move(f), n);
}
/// f returns std::pair{loss, aux}: the result is std::pair{gradient, aux}.
template <size_t N = 0, size_t... Ns, class F>
auto grad(F f, HasAux) {
  return detail::GradFn<F, false, true, static_cast<int>(N), static_cast<int>(Ns)...>(
      std::move(f), 0);
}

/// `std::pair{f(args...), grad(f)(args...)}`, computing f once. Same argument choice as grad.
template <size_t N = 0, class F>
auto value_and_grad(F f) {
  static_assert(N < 1024, "tracejit: value_and_grad<N>: unreasonable argument index");
  return detail::GradFn<F, true, false, static_cast<int>(N)>(std::move(f), static_cast<int>(N));
}
template <size_t N0, size_t N1, size_t... Ns, class F>
auto value_and_grad(F f) {
  return detail::GradFn<F, true, false, static_cast<int>(N0), static_cast<int>(N1),
                        static_cast<int>(Ns)...>(std::move(f), 0);
}
template <class F>
auto value_and_grad(F f, int n) {
  return detail::GradFn<F, true, false, -1>(std::move(f), n);
}
/// f returns std::pair{loss, aux}: the result is std::pair{std::pair{loss, aux}, gradient}.
template <size_t N = 0, size_t... Ns, class F>
auto value_and_grad(F f, HasAux) {
  return detail::GradFn<F, true, true, static_cast<int>(N), static_cast<int>(Ns)...>(
      std::move(f), 0);
}

/// Evaluates f at `primals` and returns `std::pair{outputs, vjp_fn}`. `vjp_fn(cotangent)`,
/// with a cotangent of the outputs' structure, shapes and dtypes, returns a std::tuple with
/// one cotangent per primal (zeros for integer leaves). The forward values vjp_fn needs are
/// kept from this call, so vjp_fn may be called many times; called inside a trace, they are
/// tracers, and vjp_fn must be called before that trace ends.
template <class F, class... Args>
auto vjp(F&& f, const Args&... primals) {
  using Fn = std::remove_reference_t<F>;
  using Out = detail::arrayified_t<detail::result_t<Fn, Args...>>;
  detail::FlatArgs flat = detail::flatten_args(primals...);
  detail::TracedFn traced = detail::trace_fn<Args...>(
      f, detail::default_function_name(typeid(Fn).name()), flat, detail::TraceInputs::kWithValues);
  auto tape = std::make_shared<const detail::VjpTape>(traced.traced, flat.leaves,
                                                      std::vector<bool>(flat.leaves.size(), true));
  Out out = tree_unflatten<Out>(traced.out_def, tape->outputs());
  flat.leaves.clear();
  return std::pair<Out, detail::VjpFn<Args...>>(
      std::move(out), detail::VjpFn<Args...>(std::move(tape), traced.out_def, std::move(flat)));
}

}  // namespace tracejit

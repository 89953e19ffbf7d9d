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

/// What grad and value_and_grad compute once f is traced: the output's value and the gradient
/// leaves of argument `argnum`. Throws unless the output is a single scalar float leaf.
struct GradLeaves {
  Array value;
  std::vector<Array> grad;
};
GradLeaves grad_leaves(std::string_view op, const TracedFn& traced, const FlatArgs& flat,
                       size_t argnum);

/// Checks a vjp cotangent against the outputs (structure `out_def`, values `outputs`) and
/// returns its leaves; throws TreeError, ShapeError or TypeError naming the mismatch.
std::vector<Array> check_cotangent(const TreeDef& out_def, const std::vector<Array>& outputs,
                                   const Flattened& cotangent);

/// The callable grad and value_and_grad return. kArg is the differentiated argument's index,
/// or -1 when it is given at run time (`arg_`).
template <class F, int kArg, bool kWithValue>
class GradFn {
 public:
  GradFn(F f, int arg) : f_(std::make_shared<F>(std::move(f))), arg_(arg) {}

  template <class... Args>
  auto operator()(const Args&... args) const {
    static_assert(sizeof...(Args) > 0, "tracejit: grad needs a function of at least one argument");
    using Tuple = std::tuple<std::remove_cvref_t<Args>...>;
    using First = std::tuple_element_t<0, Tuple>;
    if constexpr (kArg < 0)
      static_assert((std::is_same_v<std::remove_cvref_t<Args>, First> && ...),
                    "tracejit: grad(f, n) with a run-time argument index needs all arguments to "
                    "have one type (the gradient's type); use tj::grad<N>(f) instead");
    else
      static_assert(kArg < static_cast<int>(sizeof...(Args)),
                    "tracejit: grad<N>(f): N must be below the number of arguments");
    constexpr size_t kIndex = kArg < 0 ? 0 : std::min<size_t>(kArg, sizeof...(Args) - 1);
    using Grad = arrayified_t<std::tuple_element_t<kIndex, Tuple>>;
    constexpr std::string_view op = kWithValue ? "value_and_grad" : "grad";

    FlatArgs flat = flatten_args(args...);
    const size_t argnum = kArg < 0 ? check_argnum(op, arg_, sizeof...(Args)) : kIndex;
    check_grad_argument(op, flat, argnum);
    TracedFn traced = trace_fn<Args...>(*f_, default_function_name(typeid(F).name()), flat);
    GradLeaves r = grad_leaves(op, traced, flat, argnum);
    Grad grad = tree_unflatten<Grad>(flat.defs[argnum], r.grad);
    if constexpr (kWithValue) {
      using Value = arrayified_t<result_t<F, Args...>>;
      Value value = tree_unflatten<Value>(traced.out_def, std::span<const Array>(&r.value, 1));
      return std::pair<Value, Grad>(std::move(value), std::move(grad));
    } else {
      return grad;
    }
  }

 private:
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

/// The gradient of `f` with respect to argument N (0 by default), with that argument's type
/// (arithmetic leaves become Arrays). f must return a single scalar float; the argument's
/// leaves must be float arrays. `tj::grad<1>(loss)(params, x, y)` works for any argument types.
template <size_t N = 0, class F>
auto grad(F f) {
  static_assert(N < 1024, "tracejit: grad<N>: unreasonable argument index");
  return detail::GradFn<F, static_cast<int>(N), false>(std::move(f), static_cast<int>(N));
}
/// The gradient with respect to argument `n`, chosen at run time. All arguments must have one
/// type (otherwise the call does not compile; use grad<N>); an out-of-range n throws
/// IndexError when the gradient is called.
template <class F>
auto grad(F f, int n) {
  return detail::GradFn<F, -1, false>(std::move(f), n);
}

/// `std::pair{f(args...), grad(f)(args...)}`, computing f once. Same argument choice as grad.
template <size_t N = 0, class F>
auto value_and_grad(F f) {
  static_assert(N < 1024, "tracejit: value_and_grad<N>: unreasonable argument index");
  return detail::GradFn<F, static_cast<int>(N), true>(std::move(f), static_cast<int>(N));
}
template <class F>
auto value_and_grad(F f, int n) {
  return detail::GradFn<F, -1, true>(std::move(f), n);
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
  detail::TracedFn traced =
      detail::trace_fn<Args...>(f, detail::default_function_name(typeid(Fn).name()), flat);
  auto tape = std::make_shared<const detail::VjpTape>(traced.traced, flat.leaves,
                                                      std::vector<bool>(flat.leaves.size(), true));
  Out out = tree_unflatten<Out>(traced.out_def, tape->outputs());
  flat.leaves.clear();
  return std::pair<Out, detail::VjpFn<Args...>>(
      std::move(out), detail::VjpFn<Args...>(std::move(tape), traced.out_def, std::move(flat)));
}

}  // namespace tracejit

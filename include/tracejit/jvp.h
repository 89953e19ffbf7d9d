#pragma once
// Forward-mode automatic differentiation: tj::jvp (API.md, "More transformations").
//
// jvp traces the function on abstract inputs into IR, then replays the IR on the primals
// through bind, carrying each float value's tangent beside it and applying each primitive's
// JVP rule. As with grad, replaying through bind makes it compose: outside a trace it computes
// values, inside jit, grad or another jvp it records the computation into that trace.
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include "tracejit/detail/trace_fn.h"

namespace tracejit {

namespace detail {

/// Throws TreeError, ShapeError or TypeError, naming the argument and leaf path, unless the
/// tangents have the primals' structure, shapes and dtypes.
void check_tangents(const FlatArgs& primals, const FlatArgs& tangents);

/// The outputs of the traced function at `primals` and their tangents (zeros where none).
struct JvpLeaves {
  std::vector<Array> outs, tangents;
};
JvpLeaves jvp_leaves(const TracedFn& traced, const FlatArgs& primals, const FlatArgs& tangents);

template <class... Args>
FlatArgs flatten_tuple(const std::tuple<Args...>& args) {
  return std::apply([](const auto&... a) { return flatten_args(a...); }, args);
}

}  // namespace detail

/// `std::pair{f(primals...), tangents of the outputs}`: the Jacobian of f at the primals applied
/// to `tangents`, which have the primals' structure, shapes and dtypes (the tangent of an
/// integer or bool leaf is ignored; the outputs' integer and bool tangents are zeros). Both
/// results have f's output structure.
template <class F, class... Primals, class... Tangents>
auto jvp(F&& f, const std::tuple<Primals...>& primals, const std::tuple<Tangents...>& tangents) {
  static_assert(sizeof...(Primals) == sizeof...(Tangents),
                "tracejit: jvp needs one tangent per primal (std::tuple{primals...}, "
                "std::tuple{tangents...})");
  using Fn = std::remove_reference_t<F>;
  using Out = detail::arrayified_t<detail::result_t<Fn, Primals...>>;
  detail::FlatArgs flat = detail::flatten_tuple(primals);
  detail::FlatArgs tflat = detail::flatten_tuple(tangents);
  detail::check_tangents(flat, tflat);
  detail::TracedFn traced = detail::trace_fn<Primals...>(
      f, detail::default_function_name(typeid(Fn).name()), flat, detail::TraceInputs::kWithValues);
  detail::JvpLeaves r = detail::jvp_leaves(traced, flat, tflat);
  return std::pair<Out, Out>(tree_unflatten<Out>(traced.out_def, r.outs),
                             tree_unflatten<Out>(traced.out_def, r.tangents));
}

}  // namespace tracejit

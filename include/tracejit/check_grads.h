#pragma once
// tj::check_grads: JAX's numerical gradient check (jax.test_util.check_grads), for users and
// for tracejit's own tests.
#include <functional>
#include <span>
#include <tuple>
#include <vector>

#include "tracejit/ad.h"
#include "tracejit/jvp.h"

namespace tracejit {

namespace detail {

/// A function of the flat leaves of its arguments to the flat leaves of its result.
using FlatFn = std::function<std::vector<Array>(const std::vector<Array>&)>;

/// The check itself, over flat leaves (check_grads.cpp).
void check_grads_flat(const FlatFn& f, const std::vector<Array>& leaves, int order);

}  // namespace detail

/// Checks f's derivatives at `args` (a std::tuple of its arguments) against central finite
/// differences computed in f64, as JAX's check_grads with modes ("fwd", "rev"): the JVP along
/// a pseudo-random direction of the float leaves, and the VJP of a pseudo-random cotangent
/// through the inner product <vjp(u), v> = <u, J v>. With order 2 (or more) the same checks
/// run on the derivative functions. f is evaluated at f64 copies of the float leaves (so it
/// must accept f64 arguments). Throws tj::Error with the worst mismatch; tolerances are
/// relative and absolute 2e-3 for f32 results, 1e-5 for f64.
template <class F, class... Args>
void check_grads(F&& f, const std::tuple<Args...>& args, int order = 1) {
  detail::FlatArgs flat = detail::flatten_tuple(args);
  detail::FlatFn flat_f = [&f, layout = flat](const std::vector<Array>& leaves) {
    auto rebuilt = detail::unflatten_args<Args...>(layout, leaves);
    return tree_leaves(std::apply(f, rebuilt));
  };
  detail::check_grads_flat(flat_f, flat.leaves, order);
}

}  // namespace tracejit

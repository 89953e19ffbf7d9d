#pragma once
// Jacobians and Hessians (API.md, "More transformations"), built from the transforms as JAX
// builds them: jacfwd pushes the columns of an identity through jvp under one vmap, jacrev
// pulls its rows back through one vjp under one vmap, and hessian is jacfwd of jacrev.
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tracejit/ad.h"
#include "tracejit/jvp.h"
#include "tracejit/vmap.h"

namespace tracejit {
namespace detail {

/// The basis of a tree's tangent space: leaf i gets the identity's columns of its elements,
/// [total, leaf shape...], where `total` counts every element of the tree.
std::vector<Array> basis_leaves(std::span<const Array> leaves);
/// Jacobian blocks indexed [output leaf][input leaf]: d out_k / d in_i, as
/// [out_k shape..., in_i shape...].
using JacobianBlocks = std::vector<std::vector<Array>>;
/// The blocks from jvp's columns: `stacked[k]` is output leaf k pushed forward along each input
/// element, [input total, out_k shape...].
JacobianBlocks jacobian_blocks(std::span<const Array> stacked, std::span<const Array> in_leaves);
/// The blocks from vjp's rows: `rows[i]` is input leaf i's cotangent for each output element
/// of the output basis, [output total, in_i shape...].
JacobianBlocks unflatten_rows(std::span<const Array> rows, std::span<const Array> out_leaves,
                              std::span<const Array> in_leaves);

/// tj::TypeError naming `op`, `what` ("argument 0", "the output") and the leaf unless every leaf
/// of `tree` is a float: a Jacobian w.r.t. or of integers is not defined (JAX raises too).
void check_float_leaves(std::string_view op, const Flattened& tree, std::string_view what);

/// The Jacobian in the caller's types: an Array output keeps the argument's type X (an Array
/// when X is); a pytree output R over an Array argument is R; over a pytree argument, C++ has
/// no "R whose leaves are X", so it is a map from each output leaf's keystr to an X.
template <class R, class X>
auto assemble_jacobian(const TreeDef& out_def, const TreeDef& in_def, const JacobianBlocks& blocks) {
  if constexpr (std::is_same_v<R, Array>) {
    if constexpr (std::is_same_v<X, Array>) return blocks[0][0];
    else return tree_unflatten<X>(in_def, blocks[0]);
  } else if constexpr (std::is_same_v<X, Array>) {
    std::vector<Array> per_out;
    for (const std::vector<Array>& b : blocks) per_out.push_back(b[0]);
    return tree_unflatten<R>(out_def, per_out);
  } else {
    std::map<std::string, X> out;
    const std::vector<KeyPath> paths = leaf_key_paths(out_def);
    for (size_t k = 0; k < blocks.size(); ++k)
      if (!out.emplace(keystr(paths[k]), tree_unflatten<X>(in_def, blocks[k])).second)
        throw TreeError("[jacobian] two output leaves have the key path '" + keystr(paths[k]) +
                        "', so the Jacobian's map cannot hold both; rename a map key of the output");
    return out;
  }
}

/// `f(args...)` with argument N replaced by `x`.
template <size_t N, class F, class Tuple, class X>
decltype(auto) call_with(F& f, const Tuple& args, const X& x) {
  return [&]<size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
    auto pick = [&]<size_t J>() -> decltype(auto) {
      if constexpr (J == N) return (x);
      else return (std::get<J>(args));
    };
    return f(pick.template operator()<I>()...);
  }(std::make_index_sequence<std::tuple_size_v<Tuple>>());
}

template <class F, size_t N, bool kForward>
class JacobianFn {
 public:
  explicit JacobianFn(F f) : f_(std::make_shared<F>(std::move(f))) {}

  template <class... Args>
  auto operator()(const Args&... args) const {
    static_assert(N < sizeof...(Args), "tracejit: jacfwd/jacrev<N>: N must be below the number of arguments");
    using X = arrayified_t<std::tuple_element_t<N, std::tuple<Args...>>>;
    const std::tuple<const Args&...> all(args...);
    const X x = X(std::get<N>(all));
    F& f = *f_;
    auto at = [&](const X& xx) { return call_with<N>(f, all, xx); };
    using R = arrayified_t<decltype(call_with<N>(f, all, x))>;
    const Flattened in = tree_flatten(x);
    check_float_leaves(kForward ? "jacfwd" : "jacrev", in, "argument " + std::to_string(N));
    if constexpr (kForward) {
      // One tangent per input element, all pushed through jvp at once.
      const X basis = tree_unflatten<X>(in.def, basis_leaves(in.leaves));
      const R cols = vmap([&](const X& t) { return jvp(at, std::tuple{x}, std::tuple{t}).second; })(basis);
      const Flattened c = tree_flatten(cols);
      return assemble_jacobian<R, X>(c.def, in.def, jacobian_blocks(c.leaves, in.leaves));
    } else {
      // One cotangent per output element across all output leaves, pulled back through one
      // vjp at once.
      auto [out, pull] = vjp(at, x);
      const Flattened o = tree_flatten(out);
      check_float_leaves("jacrev", o, "the output");
      const R basis = tree_unflatten<R>(o.def, basis_leaves(o.leaves));
      const X rows = vmap([&](const R& ct) { return std::get<0>(pull(ct)); })(basis);
      return assemble_jacobian<R, X>(o.def, in.def, unflatten_rows(tree_leaves(rows), o.leaves, in.leaves));
    }
  }

 private:
  std::shared_ptr<F> f_;
};

}  // namespace detail

/// The Jacobian of `f` with respect to argument N, by forward mode (JAX's jacfwd). For an Array
/// output: an Array of shape out.shape + in.shape for an Array argument; for a pytree
/// argument, the argument's type with each leaf of shape out.shape + leaf.shape. For a pytree
/// output R: over an Array argument, an R whose leaf k has shape out_k.shape + in.shape (as
/// JAX); over a pytree argument X, a `std::map<std::string, X>` keyed by tj::keystr of each
/// output leaf's path, its leaves of shape out_k.shape + in_leaf.shape: the nearest C++
/// spelling of JAX's R-of-X (JAX's `J.weight.bias` is `J.at(".weight").bias`).
template <size_t N = 0, class F>
auto jacfwd(F f) {
  return detail::JacobianFn<F, N, true>(std::move(f));
}
/// The same Jacobian by reverse mode (cheaper when the output is smaller than the input).
template <size_t N = 0, class F>
auto jacrev(F f) {
  return detail::JacobianFn<F, N, false>(std::move(f));
}
/// The Hessian of a scalar `f` with respect to argument N: jacfwd(jacrev(f)). Over a pytree
/// argument X it is a `std::map<std::string, X>`: `hessian(loss)(params, x, y).at(".weight").bias`
/// is d2 loss / (d weight d bias), JAX's `H.weight.bias`.
template <size_t N = 0, class F>
auto hessian(F f) {
  return jacfwd<N>(jacrev<N>(std::move(f)));
}

}  // namespace tracejit

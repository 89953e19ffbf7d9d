#pragma once
// Jacobians and Hessians (API.md, "More transformations"), built from the transforms as JAX
// builds them: jacfwd pushes the columns of an identity through jvp under one vmap, jacrev
// pulls its rows back through one vjp under one vmap, and hessian is jacfwd of jacrev.
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tracejit/ad.h"
#include "tracejit/jvp.h"
#include "tracejit/vmap.h"

namespace tracejit {
namespace detail {

/// The n x n identity of `dtype`, [n, n].
Array identity(int64_t n, DType dtype);
/// The basis of a tree's tangent space: leaf i gets the identity's columns of its elements,
/// [total, leaf shape...], where `total` counts every element of the tree.
std::vector<Array> basis_leaves(std::span<const Array> leaves);
/// Jacobian blocks from `stacked` ([total, out shape...], one row per input element): leaf i's
/// rows, as [out shape..., leaf shape...].
std::vector<Array> jacobian_blocks(const Array& stacked, std::span<const Array> leaves);
/// Rows pulled back per output element ([out size, leaf shape...]) as [out shape..., leaf shape...].
Array unflatten_rows(const Array& rows, const Shape& out_shape, const Shape& leaf_shape);

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
    auto at = [&](const X& xx) { return Array(call_with<N>(f, all, xx)); };
    using R = std::remove_cvref_t<decltype(call_with<N>(f, all, x))>;
    static_assert(std::is_same_v<arrayified_t<R>, Array>,
                  "tracejit: jacfwd and jacrev take a function returning one Array");
    Flattened flat = tree_flatten(x);
    std::vector<Array> blocks;
    if constexpr (kForward) {
      // One tangent per input element, all pushed through jvp at once.
      const X basis = tree_unflatten<X>(flat.def, basis_leaves(flat.leaves));
      const Array cols = vmap([&](const X& t) { return jvp(at, std::tuple{x}, std::tuple{t}).second; })(basis);
      blocks = jacobian_blocks(cols, flat.leaves);
    } else {
      // One cotangent per output element, all pulled back through one vjp at once.
      auto [out, pull] = vjp(at, x);
      const Shape out_shape = out.shape();
      const Array eye = reshape(identity(out.size(), out.dtype()), [&] {
        Shape s{out.size()};
        s.insert(s.end(), out_shape.begin(), out_shape.end());
        return s;
      }());
      const X rows = vmap([&](const Array& ct) { return std::get<0>(pull(ct)); })(eye);
      const Flattened r = tree_flatten(rows);
      for (size_t i = 0; i < r.leaves.size(); ++i)
        blocks.push_back(unflatten_rows(r.leaves[i], out_shape, flat.leaves[i].shape()));
    }
    if constexpr (std::is_same_v<X, Array>) return blocks[0];
    else return tree_unflatten<X>(flat.def, blocks);
  }

 private:
  std::shared_ptr<F> f_;
};

}  // namespace detail

/// The Jacobian of `f` (returning one Array) with respect to argument N, by forward mode: an
/// Array of shape out.shape + in.shape for an Array argument; for a pytree argument, the
/// argument's type with each leaf of shape out.shape + leaf.shape.
template <size_t N = 0, class F>
auto jacfwd(F f) {
  return detail::JacobianFn<F, N, true>(std::move(f));
}
/// The same Jacobian by reverse mode (cheaper when the output is smaller than the input).
template <size_t N = 0, class F>
auto jacrev(F f) {
  return detail::JacobianFn<F, N, false>(std::move(f));
}
/// The Hessian of a scalar `f` with respect to argument N: jacfwd(jacrev(f)).
template <size_t N = 0, class F>
auto hessian(F f) {
  return jacfwd<N>(jacrev<N>(std::move(f)));
}

}  // namespace tracejit

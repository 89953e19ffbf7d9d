#pragma once
// Custom reverse-mode rules: tj::custom_vjp(f, fwd, bwd) (API.md, "More transformations").
//
// A call traces f, fwd and bwd once over the arguments' abstract values and records ONE
// custom_vjp equation carrying all three as regions. Evaluating it (eagerly, or compiled under
// jit, where the pipeline inlines f like a nested call) runs f; grad and vjp run fwd forward,
// keep its residuals, and run bwd backward. jvp of it throws (as JAX's custom_vjp).
#include <memory>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include "tracejit/control_flow.h"
#include "tracejit/detail/trace_fn.h"

namespace tracejit {
namespace detail {

/// The abstract values of `t`'s outputs from `from` on.
std::vector<AbstractLeaf> output_leaves(const Traced& t, size_t from);
/// TypeError naming the leaf unless fwd's first result has f's structure, shapes and dtypes.
void check_fwd_output(const std::string& name, const TreeDef& f_def, const Traced& f,
                      const TreeDef& fwd_def, const Traced& fwd);
/// TypeError naming the argument and leaf unless bwd's cotangents (`cts`, one per argument)
/// have the arguments' structures, shapes and dtypes.
void check_bwd_output(const std::string& name, const FlatArgs& args, const std::vector<Flattened>& cts);
/// Records (or, outside a trace, runs) the custom_vjp equation.
std::vector<Array> bind_custom_vjp(std::string name, Traced f, Traced fwd, Traced bwd,
                                   std::span<const Array> args);

template <class F, class Fwd, class Bwd>
class CustomVjpFn {
 public:
  CustomVjpFn(F f, Fwd fwd, Bwd bwd)
      : fns_(std::make_shared<Fns>(Fns{std::move(f), std::move(fwd), std::move(bwd)})) {}

  template <class... Args>
  auto operator()(const Args&... args) const {
    using Out = arrayified_t<result_t<F, Args...>>;
    const std::string name = default_function_name(typeid(F).name());
    FlatArgs flat = flatten_args(args...);
    TracedFn f = trace_fn<Args...>(fns_->f, name, flat);
    // fwd returns std::pair{output, residuals}: its two parts' structures are kept aside.
    TreeDef fwd_out_def, res_def;
    auto fwd = [&](const auto&... a) {
      auto r = fns_->fwd(a...);
      fwd_out_def = tree_flatten(r.first).def;
      res_def = tree_flatten(r.second).def;
      return r;
    };
    TracedFn traced_fwd = trace_fn<Args...>(fwd, name + "_fwd", flat);
    check_fwd_output(name, f.out_def, f.traced, fwd_out_def, traced_fwd.traced);
    using Res = arrayified_t<typename result_t<Fwd, Args...>::second_type>;

    TraceScope scope(name + "_bwd");
    const std::vector<AbstractLeaf> out_leaves = output_leaves(f.traced, 0);
    std::vector<Array> res_in = region_inputs(scope, output_leaves(traced_fwd.traced, out_leaves.size()));
    std::vector<Array> ct_in = region_inputs(scope, out_leaves);
    auto cts = fns_->bwd(tree_unflatten<Res>(res_def, res_in), tree_unflatten<Out>(f.out_def, ct_in));
    static_assert(std::tuple_size_v<decltype(cts)> == sizeof...(Args),
                  "tracejit: custom_vjp's bwd must return a std::tuple with one cotangent per argument");
    std::vector<Flattened> ct_trees;
    std::apply([&](const auto&... c) { (ct_trees.push_back(tree_flatten(c)), ...); }, cts);
    check_bwd_output(name, flat, ct_trees);
    std::vector<Array> ct_leaves;
    for (const Flattened& c : ct_trees) ct_leaves.insert(ct_leaves.end(), c.leaves.begin(), c.leaves.end());
    Traced bwd = scope.finish(ct_leaves);

    std::vector<Array> outs = bind_custom_vjp(name, std::move(f.traced), std::move(traced_fwd.traced),
                                              std::move(bwd), flat.leaves);
    return tree_unflatten<Out>(f.out_def, outs);
  }

 private:
  struct Fns {
    F f;
    Fwd fwd;
    Bwd bwd;
  };
  std::shared_ptr<Fns> fns_;
};

}  // namespace detail

/// `f` with a reverse-mode rule of the user's: `fwd(args...)` returns `std::pair{f(args...),
/// residuals}` (residuals any pytree), `bwd(residuals, cotangent)` a std::tuple with one
/// cotangent per argument, each with its argument's structure, shapes and dtypes. grad and vjp
/// use bwd; eager calls and jit run f; jvp of it throws tj::Error.
template <class F, class Fwd, class Bwd>
auto custom_vjp(F f, Fwd fwd, Bwd bwd) {
  return detail::CustomVjpFn<F, Fwd, Bwd>(std::move(f), std::move(fwd), std::move(bwd));
}

}  // namespace tracejit

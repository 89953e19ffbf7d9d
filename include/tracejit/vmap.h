#pragma once
// Vectorizing map: tj::vmap (API.md, "More transformations").
//
// vmap traces the function once on one lane's abstract arguments (the mapped axis removed),
// then replays the IR on the real arguments through bind with each primitive's batching rule:
// every mapped value carries the batch axis first and the rules compute all lanes in one
// equation (a batched matmul, a reduction over shifted axes, a loop over batched carries). As
// with grad and jvp, the replay composes: inside jit, grad or jvp it records into that trace.
#include <memory>
#include <optional>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "tracejit/detail/trace_fn.h"

namespace tracejit {

/// Options of tj::vmap. Designated initializers follow this field order.
struct VmapOptions {
  /// One entry per argument: the axis of each of its leaves that is mapped, or std::nullopt
  /// for an argument passed whole to every lane. Empty: axis 0 of every argument.
  std::vector<std::optional<int>> in_axes;
  /// Where the batch axis goes in every output leaf (negative counts from the end).
  int out_axes = 0;
};

namespace detail {

/// What vmap decided about the arguments: each leaf's mapped axis (-1: not mapped), the batch
/// size, and one lane's abstract arguments to trace over.
struct VmapPlan {
  std::vector<int64_t> axes;
  int64_t size = 0;
  FlatArgs lane;
};
/// Checks in_axes against the arguments (ShapeError naming the leaf for an axis out of range
/// or two mapped sizes that differ, Error for a wrong count or nothing mapped).
VmapPlan vmap_plan(const FlatArgs& flat, const VmapOptions& options);
/// The outputs of the traced function on every lane, with the batch axis at `out_axes`.
std::vector<Array> vmap_leaves(const TracedFn& traced, const FlatArgs& flat, const VmapPlan& plan,
                               int out_axes);

template <class F>
class VmapFn {
 public:
  VmapFn(F f, VmapOptions options)
      : f_(std::make_shared<F>(std::move(f))), options_(std::move(options)) {}

  template <class... Args>
  auto operator()(const Args&... args) const {
    static_assert(sizeof...(Args) > 0, "tracejit: vmap needs a function of at least one argument");
    using Out = arrayified_t<result_t<F, Args...>>;
    FlatArgs flat = flatten_args(args...);
    VmapPlan plan = vmap_plan(flat, options_);
    TracedFn traced = trace_fn<Args...>(*f_, default_function_name(typeid(F).name()), plan.lane);
    return tree_unflatten<Out>(traced.out_def, vmap_leaves(traced, flat, plan, options_.out_axes));
  }

 private:
  std::shared_ptr<F> f_;
  VmapOptions options_;
};

}  // namespace detail

/// `f` mapped over an axis of its arguments: the result's leaves are f's on each lane,
/// stacked along `out_axes`. `tj::vmap(f, {.in_axes = {0, std::nullopt}})(xs, w)` maps over
/// the rows of xs with one w for every row.
template <class F>
auto vmap(F f, VmapOptions options = {}) {
  return detail::VmapFn<F>(std::move(f), std::move(options));
}

}  // namespace tracejit

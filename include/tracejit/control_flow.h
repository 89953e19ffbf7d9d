#pragma once
// Structured control flow: tj::cond, tj::while_loop, tj::fori_loop and tj::scan (API.md,
// "Control flow"). Each traces its callables once, over abstract values shaped like the
// operands, into closed sub-programs, and records ONE equation that carries them: eagerly it
// runs at once, under jit it compiles to a native loop or branch, under grad it has a VJP rule.
// What a body captures from the enclosing trace becomes an explicit operand of the equation.
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <algorithm>

#include "tracejit/detail/trace_fn.h"
#include "tracejit/ops.h"

namespace tracejit {

/// Options of tj::while_loop. Designated initializers follow this field order.
struct WhileOptions {
  /// When non-negative, the loop may run at most this many steps (more throw tj::Error when it
  /// runs), and reverse-mode AD through it works: it keeps the carry of every step, up to this
  /// bound. Without it, grad through the loop throws tj::Error.
  int64_t max_iterations = -1;
};

/// Options of tj::scan. Designated initializers follow this field order.
struct ScanOptions {
  /// The number of steps; -1: the leading size of the xs leaves (required when xs has none).
  int64_t length = -1;
  /// Walk xs from the last slice to the first, and write ys in that order (as lax.scan).
  bool reverse = false;
  /// JAX's unroll hint, accepted for ports (it must be at least 1). Results never depend on it;
  /// tracejit compiles every scan as a rolled loop today, whatever its value.
  int unroll = 1;
};

namespace detail {

/// A leaf's abstract value: what a body is traced over.
struct AbstractLeaf {
  DType dtype;
  Shape shape;
  bool weak;
};
std::vector<AbstractLeaf> abstract_leaves(std::span<const Array> leaves, std::string_view op);
/// The leaves of `xs` with their leading axis dropped (scan's per-step slices).
std::vector<AbstractLeaf> slice_leaves(std::span<const Array> xs);
/// New inputs of the open trace `scope`, one per leaf.
std::vector<Array> region_inputs(TraceScope& scope, const std::vector<AbstractLeaf>& leaves);

/// Checks a body's carry outputs (structure `out_def`, leaves `outs`, inside the open trace)
/// against the carry (`carry_def`, `carry`). Weakly typed outputs are made to match a strong
/// carry; returns false, after updating `carry`, when a weakly typed init leaf must take the
/// body's dtype (JAX's promotion of weak loop inputs): the body is then traced again. Throws
/// TypeError naming the leaf path and both types for any other difference.
bool fit_carry(std::string_view op, const TreeDef& carry_def, std::vector<AbstractLeaf>& carry,
               const TreeDef& out_def, std::span<Array> outs);
/// Checks that a while_loop cond_fn gave one bool scalar (TypeError naming it otherwise).
void check_predicate_output(const TreeDef& def, std::span<const Array> outs);
/// scan's length: ScanOptions::length, checked against the leading sizes of the xs leaves.
int64_t scan_length(const TreeDef& xs_def, std::span<const Array> xs, int64_t length);
/// The branch index (i32[]) of a cond predicate: a bool or integer scalar.
Array branch_index(const Array& pred);
/// The common result types of cond's branches (`defs`, `outs`), where weak leaves promote to
/// the other branch's dtype; throws TypeError naming the leaf and both types otherwise.
std::vector<AbstractLeaf> join_branches(const std::vector<TreeDef>& defs,
                                        const std::vector<std::vector<AbstractLeaf>>& outs);
/// Converts `outs` (inside the open trace) to `types` where they differ only as JAX's weak
/// promotion allows.
void fit_outputs(std::span<Array> outs, const std::vector<AbstractLeaf>& types);
/// Equal dtypes, shapes and weak bits, leaf by leaf.
bool same_types(const std::vector<AbstractLeaf>& a, const std::vector<AbstractLeaf>& b);
/// A fori_loop bound given as an Array: an integer scalar, converted to i32.
Array fori_bound(const Array& bound, std::string_view which);

/// Record (or, outside a trace, run) one equation of each kind. Traced regions are closed here.
std::vector<Array> bind_cond(const Array& index, std::vector<Traced> branches,
                             std::span<const Array> ops);
std::vector<Array> bind_while(Traced cond, Traced body, std::span<const Array> init,
                              const std::vector<AbstractLeaf>& carry, int64_t max_iterations,
                              bool trajectory = false);
std::vector<Array> bind_scan(Traced body, std::span<const Array> init,
                             const std::vector<AbstractLeaf>& carry, std::span<const Array> xs,
                             int64_t length, bool reverse, int unroll);

template <class T>
inline constexpr bool is_index_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

}  // namespace detail

/// `true_fn(operands...)` when `pred` holds, else `false_fn(operands...)`. `pred` is a bool or
/// integer scalar Array (non-zero is true) or a C++ bool. Both branches are traced; they must
/// return one tree structure with the same shapes and dtypes.
template <class Pred, class TrueFn, class FalseFn, class... Ops>
auto cond(const Pred& pred, TrueFn&& true_fn, FalseFn&& false_fn, const Ops&... operands) {
  using R = detail::arrayified_t<
      std::invoke_result_t<TrueFn&, const detail::arrayified_t<Ops>&...>>;
  detail::FlatArgs flat = detail::flatten_args(operands...);
  std::vector<detail::AbstractLeaf> in = detail::abstract_leaves(flat.leaves, "cond");
  Array index = detail::branch_index(Array(pred));
  // Traces one branch; with `types`, weak outputs are converted to them first.
  auto trace = [&](auto& fn, const char* name, const std::vector<detail::AbstractLeaf>* types,
                   TreeDef* def, std::vector<detail::AbstractLeaf>* out_types) {
    detail::TraceScope scope(name);
    std::vector<Array> inputs = detail::region_inputs(scope, in);
    auto args = detail::unflatten_args<detail::arrayified_t<Ops>...>(flat, inputs);
    Flattened out = tree_flatten(std::apply(fn, args));
    if (types) detail::fit_outputs(out.leaves, *types);
    *def = out.def;
    *out_types = detail::abstract_leaves(out.leaves, "cond");
    return scope.finish(out.leaves);
  };
  std::vector<TreeDef> defs(2);
  std::vector<std::vector<detail::AbstractLeaf>> outs(2);
  std::vector<detail::Traced> branches;
  branches.push_back(trace(false_fn, "cond false_fn", nullptr, &defs[0], &outs[0]));
  branches.push_back(trace(true_fn, "cond true_fn", nullptr, &defs[1], &outs[1]));
  // A branch whose weak leaves must take the other branch's dtype is traced again.
  std::vector<detail::AbstractLeaf> joined = detail::join_branches(defs, outs);
  if (!detail::same_types(outs[0], joined))
    branches[0] = trace(false_fn, "cond false_fn", &joined, &defs[0], &outs[0]);
  if (!detail::same_types(outs[1], joined))
    branches[1] = trace(true_fn, "cond true_fn", &joined, &defs[1], &outs[1]);
  std::vector<Array> results = detail::bind_cond(index, std::move(branches), flat.leaves);
  return tree_unflatten<R>(defs[1], results);
}

/// Runs `body_fn` on the carry while `cond_fn(carry)` (a bool scalar) holds, starting from
/// `init`; returns the final carry, with init's structure and types.
template <class CondFn, class BodyFn, class Init>
detail::arrayified_t<Init> while_loop(CondFn&& cond_fn, BodyFn&& body_fn, const Init& init,
                                      WhileOptions options = {}) {
  using C = detail::arrayified_t<Init>;
  Flattened flat = tree_flatten(init);
  std::vector<detail::AbstractLeaf> carry = detail::abstract_leaves(flat.leaves, "while_loop");
  while (true) {
    detail::Traced body;
    {
      detail::TraceScope scope("while_loop body_fn");
      C c = tree_unflatten<C>(flat.def, detail::region_inputs(scope, carry));
      Flattened out = tree_flatten(static_cast<C>(body_fn(std::as_const(c))));
      if (!detail::fit_carry("while_loop", flat.def, carry, out.def, out.leaves)) continue;
      body = scope.finish(out.leaves);
    }
    detail::TraceScope scope("while_loop cond_fn");
    C c = tree_unflatten<C>(flat.def, detail::region_inputs(scope, carry));
    Flattened pred = tree_flatten(cond_fn(std::as_const(c)));
    detail::check_predicate_output(pred.def, pred.leaves);
    detail::Traced cond = scope.finish(pred.leaves);
    return tree_unflatten<C>(flat.def, detail::bind_while(std::move(cond), std::move(body),
                                                         flat.leaves, carry,
                                                         options.max_iterations));
  }
}

/// JAX's lax.scan: `f(carry, x)` returns `std::pair{carry, y}` for each slice `x` of `xs` along
/// its leading axis; returns `std::pair{final carry, ys}` with the y's stacked on a new leading
/// axis. With no xs, pass `std::tuple<>{}` and ScanOptions::length.
template <class F, class Init, class Xs>
auto scan(F&& f, const Init& init, const Xs& xs, ScanOptions options = {}) {
  using C = detail::arrayified_t<Init>;
  using X = detail::arrayified_t<Xs>;
  using Out = std::remove_cvref_t<std::invoke_result_t<F&, const C&, const X&>>;
  using Y = detail::arrayified_t<typename Out::second_type>;
  Flattened init_flat = tree_flatten(init);
  Flattened xs_flat = tree_flatten(xs);
  const int64_t length = detail::scan_length(xs_flat.def, xs_flat.leaves, options.length);
  std::vector<detail::AbstractLeaf> carry = detail::abstract_leaves(init_flat.leaves, "scan");
  std::vector<detail::AbstractLeaf> slices = detail::slice_leaves(xs_flat.leaves);
  while (true) {
    detail::TraceScope scope("scan f");
    C c = tree_unflatten<C>(init_flat.def, detail::region_inputs(scope, carry));
    X x = tree_unflatten<X>(xs_flat.def, detail::region_inputs(scope, slices));
    Out out = f(std::as_const(c), std::as_const(x));
    Flattened carry_out = tree_flatten(static_cast<C>(out.first));
    if (!detail::fit_carry("scan", init_flat.def, carry, carry_out.def, carry_out.leaves)) continue;
    Flattened ys = tree_flatten(out.second);
    std::vector<Array> leaves = carry_out.leaves;
    leaves.insert(leaves.end(), ys.leaves.begin(), ys.leaves.end());
    detail::Traced body = scope.finish(leaves);
    std::vector<Array> results = detail::bind_scan(std::move(body), init_flat.leaves, carry,
                                                   xs_flat.leaves, length, options.reverse,
                                                   options.unroll);
    const auto split = results.begin() + static_cast<ptrdiff_t>(carry.size());
    std::vector<Array> ys_leaves(split, results.end());
    results.erase(split, results.end());
    return std::pair<C, Y>(tree_unflatten<C>(init_flat.def, results),
                           tree_unflatten<Y>(ys.def, ys_leaves));
  }
}

/// `body_fn(i, carry)` for i = lower, ..., upper - 1, starting from `init`. With C++ integer
/// bounds the trip count is static and the loop is a scan (reverse-differentiable); with an i32
/// Array bound it is a while_loop.
template <class Lower, class Upper, class BodyFn, class Init>
detail::arrayified_t<Init> fori_loop(const Lower& lower, const Upper& upper, BodyFn&& body_fn,
                                     const Init& init) {
  using C = detail::arrayified_t<Init>;
  if constexpr (detail::is_index_v<Lower> && detail::is_index_v<Upper>) {
    const int64_t trips = std::max<int64_t>(0, static_cast<int64_t>(upper) - static_cast<int64_t>(lower));
    auto step = [&](const std::pair<Array, C>& c, const std::tuple<>&) {
      return std::pair<std::pair<Array, C>, std::tuple<>>(
          {c.first + 1, static_cast<C>(body_fn(c.first, c.second))}, {});
    };
    std::pair<Array, C> start{full({}, static_cast<int32_t>(lower), DType::i32), C(init)};
    return scan(step, start, std::tuple<>{}, ScanOptions{.length = trips}).first.second;
  } else {
    Array lo = detail::fori_bound(Array(lower), "lower");
    Array hi = detail::fori_bound(Array(upper), "upper");
    using Carry = std::tuple<Array, Array, C>;
    Carry out = while_loop(
        [](const Carry& c) { return std::get<0>(c) < std::get<1>(c); },
        [&](const Carry& c) {
          return Carry{std::get<0>(c) + 1, std::get<1>(c),
                       static_cast<C>(body_fn(std::get<0>(c), std::get<2>(c)))};
        },
        Carry{lo, hi, C(init)});
    return std::get<2>(out);
  }
}

}  // namespace tracejit

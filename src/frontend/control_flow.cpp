// The non-template half of tj::cond, tj::while_loop, tj::fori_loop and tj::scan: the checks
// that name leaf paths and both types, JAX's promotion of weakly typed loop inputs, and the
// closing of traced bodies into regions (captured values become leading inputs and operands).
#include "tracejit/control_flow.h"

#include "base/errors.h"
#include "base/array_impl.h"
#include "base/promotion.h"
#include "trace/trace_state.h"
#include "tracejit/ops.h"

namespace tracejit::detail {
namespace {

using ir::Prim;

// A weakly typed value of dtype `from` may take dtype `to` (jnp.result_type of the two is `to`).
bool weak_promotes(DType from, DType to) { return weak_promotes_to(from, to); }

std::string leaf_str(const AbstractLeaf& l) { return type_str(l.dtype, l.shape); }

std::string at_path(const std::string& path) { return path.empty() ? "" : cat(" ", path); }

Array convert_to(const Array& a, const AbstractLeaf& t) {
  return bind1(Prim::kConvert, {a}, ir::Params{.dtype = t.dtype, .weak_type = t.weak});
}

AbstractLeaf leaf_of(const Array& a) {
  const ir::Type& t = a.impl()->type;
  return {t.dtype, t.shape, t.weak};
}

// Inserts unused inputs of `types` at position `at` of fn's inputs.
void insert_unused_inputs(ir::Function& fn, size_t at, const std::vector<Array>& values) {
  std::vector<ir::VarId> extra;
  for (const Array& v : values) extra.push_back(fn.new_var(v.impl()->type));
  fn.inputs.insert(fn.inputs.begin() + static_cast<ptrdiff_t>(at), extra.begin(), extra.end());
}

// Init leaves converted to the carry types the body was traced over.
std::vector<Array> fitted_init(std::span<const Array> init, const std::vector<AbstractLeaf>& carry) {
  std::vector<Array> out(init.begin(), init.end());
  fit_outputs(out, carry);
  return out;
}

}  // namespace

std::vector<AbstractLeaf> abstract_leaves(std::span<const Array> leaves, std::string_view op) {
  std::vector<AbstractLeaf> out;
  out.reserve(leaves.size());
  for (const Array& a : leaves) {
    impl_of(a, op);
    out.push_back(leaf_of(a));
  }
  return out;
}

std::vector<AbstractLeaf> slice_leaves(std::span<const Array> xs) {
  std::vector<AbstractLeaf> out = abstract_leaves(xs, "scan");
  for (AbstractLeaf& l : out) {
    l.shape.erase(l.shape.begin());
    l.weak = false;
  }
  return out;
}

std::vector<Array> region_inputs(TraceScope& scope, const std::vector<AbstractLeaf>& leaves) {
  std::vector<Array> out;
  out.reserve(leaves.size());
  for (const AbstractLeaf& l : leaves) out.push_back(scope.new_input(l.dtype, l.shape, l.weak));
  return out;
}

bool same_types(const std::vector<AbstractLeaf>& a, const std::vector<AbstractLeaf>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].dtype != b[i].dtype || a[i].shape != b[i].shape || a[i].weak != b[i].weak) return false;
  return true;
}

void fit_outputs(std::span<Array> outs, const std::vector<AbstractLeaf>& types) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const ir::Type& t = impl_of(outs[i], "control flow").type;
    if (t.dtype != types[i].dtype || t.weak != types[i].weak) outs[i] = convert_to(outs[i], types[i]);
  }
}

bool fit_carry(std::string_view op, const TreeDef& carry_def, std::vector<AbstractLeaf>& carry,
               const TreeDef& out_def, std::span<Array> outs) {
  const std::string fn = op == "scan" ? "f" : "body_fn";
  if (out_def != carry_def)
    raise<TypeError>(op, fn, " returns a carry of structure ", out_def.str(), " but init has ",
                     carry_def.str(), "; return the carry with init's structure");
  const std::vector<std::string> paths = leaf_paths(carry_def);
  bool fits = true;
  for (size_t i = 0; i < carry.size(); ++i) {
    AbstractLeaf o = leaf_of(outs[i]);
    AbstractLeaf& c = carry[i];
    if (o.shape == c.shape && o.dtype == c.dtype) {
      if (o.weak && !c.weak) outs[i] = convert_to(outs[i], c);
      if (!o.weak && c.weak) c.weak = false, fits = false;
      continue;
    }
    if (o.shape == c.shape && c.weak && weak_promotes(c.dtype, o.dtype)) {
      c = o;  // a weak init (a C++ scalar) takes the body's dtype, as JAX promotes it
      fits = false;
      continue;
    }
    if (o.shape == c.shape && o.weak && weak_promotes(o.dtype, c.dtype)) {
      outs[i] = convert_to(outs[i], c);
      continue;
    }
    raise<TypeError>(op, "the carry", at_path(paths[i]), " is ", leaf_str(c), " in init but ", fn,
                     " returns ", leaf_str(o), "; the carry must keep its shape and dtype (convert "
                     "with tj::astype, or start from an init of the type the body returns)");
  }
  return fits;
}

void check_predicate_output(const TreeDef& def, std::span<const Array> outs) {
  if (outs.size() == 1 && def.nodes().size() == 1) {
    const ir::Type& t = impl_of(outs[0], "while_loop").type;
    if (t.dtype == DType::bool_ && t.shape.empty()) return;
    raise<TypeError>("while_loop", "cond_fn must return a bool scalar, got ", ir::type_str(t),
                     "; compare the carry, e.g. i < n", t.shape.empty() ? "" : ", and reduce it");
  }
  raise<TypeError>("while_loop", "cond_fn must return one bool scalar, got ", def.str(),
                   "; return a single comparison");
}

int64_t scan_length(const TreeDef& xs_def, std::span<const Array> xs, int64_t length) {
  if (length < -1)
    raise<ShapeError>("scan", "length ", length, " is negative; pass the number of steps (or -1 "
                      "to take the leading size of xs)");
  if (xs.empty()) {
    if (length < 0)
      raise<Error>("scan", "xs has no leaves, so the number of steps is unknown; set "
                   "ScanOptions{.length = n}");
    return length;
  }
  const std::vector<std::string> paths = leaf_paths(xs_def);
  int64_t n = -1;
  size_t first = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const ir::Type& t = impl_of(xs[i], "scan").type;
    if (t.shape.empty())
      raise<ShapeError>("scan", "the xs leaf", at_path(paths[i]), " is a scalar ", ir::type_str(t),
                        "; every xs leaf needs a leading axis to scan over");
    if (n < 0) {
      n = t.shape[0];
      first = i;
    } else if (t.shape[0] != n) {
      raise<ShapeError>("scan", "xs leaves have different leading sizes:", at_path(paths[first]),
                        " is ", type_str(xs[first].dtype(), xs[first].shape()), " but",
                        at_path(paths[i]), " is ", ir::type_str(t),
                        "; every xs leaf is sliced along axis 0 and needs the same length");
    }
  }
  if (length >= 0 && length != n)
    raise<ShapeError>("scan", "ScanOptions::length is ", length, " but the xs leaves have leading "
                      "size ", n, "; drop the length or make them agree");
  return n;
}

Array branch_index(const Array& pred) {
  const ir::Type& t = impl_of(pred, "cond").type;
  if (!t.shape.empty())
    raise<ShapeError>("cond", "the predicate must be a scalar, got ", ir::type_str(t),
                      "; reduce it first (for instance tj::max(x > 0) for 'any') or use tj::where "
                      "for an elementwise choice");
  if (is_float(t.dtype))
    raise<TypeError>("cond", "the predicate must be bool or an integer, got ", ir::type_str(t),
                     "; compare it, e.g. x > 0");
  Array b = t.dtype == DType::bool_ ? pred : pred != 0;
  return bind1(Prim::kConvert, {b}, ir::Params{.dtype = DType::i32});
}

std::vector<AbstractLeaf> join_branches(const std::vector<TreeDef>& defs,
                                        const std::vector<std::vector<AbstractLeaf>>& outs) {
  if (defs[0] != defs[1])
    raise<TypeError>("cond", "true_fn returns ", defs[1].str(), " but false_fn returns ",
                     defs[0].str(), "; both branches must return one structure");
  const std::vector<std::string> paths = leaf_paths(defs[0]);
  std::vector<AbstractLeaf> joined;
  for (size_t i = 0; i < outs[0].size(); ++i) {
    const AbstractLeaf &f = outs[0][i], &t = outs[1][i];
    if (f.shape == t.shape && f.dtype == t.dtype) {
      joined.push_back({f.dtype, f.shape, f.weak && t.weak});
    } else if (f.shape == t.shape && f.weak && weak_promotes(f.dtype, t.dtype)) {
      joined.push_back(t);
    } else if (f.shape == t.shape && t.weak && weak_promotes(t.dtype, f.dtype)) {
      joined.push_back(f);
    } else {
      raise<TypeError>("cond", "the branches return different types for the output",
                       at_path(paths[i]), ": true_fn gives ", leaf_str(t), ", false_fn gives ",
                       leaf_str(f), "; both branches must return the same shapes and dtypes "
                       "(convert with tj::astype)");
    }
  }
  return joined;
}

Array fori_bound(const Array& bound, std::string_view which) {
  const ir::Type& t = impl_of(bound, "fori_loop").type;
  if (!t.shape.empty() || !is_integer(t.dtype))
    raise<TypeError>("fori_loop", "the ", which, " bound must be an integer scalar, got ",
                     ir::type_str(t), "; pass a C++ int or an i32[] Array");
  return bind1(Prim::kConvert, {bound}, ir::Params{.dtype = DType::i32});
}

std::vector<Array> bind_cond(const Array& index, std::vector<Traced> branches,
                             std::span<const Array> ops) {
  std::vector<std::shared_ptr<ir::Function>> fns;
  std::vector<std::vector<Array>> consts;
  for (Traced& b : branches) {
    auto [fn, c] = close_region(std::move(b));
    fns.push_back(std::move(fn));
    consts.push_back(std::move(c));
  }
  // Every branch takes every branch's consts (ignoring the others'), then the operands.
  std::vector<Array> operands{index};
  for (size_t b = 0; b < fns.size(); ++b) {
    std::vector<Array> before, after;
    for (size_t o = 0; o < fns.size(); ++o) {
      if (o == b) continue;
      std::vector<Array>& dst = o < b ? before : after;
      dst.insert(dst.end(), consts[o].begin(), consts[o].end());
    }
    insert_unused_inputs(*fns[b], consts[b].size(), after);
    insert_unused_inputs(*fns[b], 0, before);
    operands.insert(operands.end(), consts[b].begin(), consts[b].end());
  }
  operands.insert(operands.end(), ops.begin(), ops.end());
  ir::Params params;
  for (auto& fn : fns) params.regions.push_back(std::move(fn));
  return bind(Prim::kCond, operands, params);
}

std::vector<Array> bind_while(Traced cond, Traced body, std::span<const Array> init,
                              const std::vector<AbstractLeaf>& carry, int64_t max_iterations,
                              bool trajectory) {
  auto [cond_fn, cconsts] = close_region(std::move(cond));
  auto [body_fn, bconsts] = close_region(std::move(body));
  std::vector<Array> operands = cconsts;
  operands.insert(operands.end(), bconsts.begin(), bconsts.end());
  std::vector<Array> start = fitted_init(init, carry);
  operands.insert(operands.end(), start.begin(), start.end());
  ir::Params params{.length = max_iterations < 0 ? -1 : max_iterations, .trajectory = trajectory};
  params.regions = {std::move(cond_fn), std::move(body_fn)};
  params.groups = {static_cast<int64_t>(cconsts.size()), static_cast<int64_t>(bconsts.size())};
  return bind(Prim::kWhile, operands, params);
}

std::vector<Array> bind_scan(Traced body, std::span<const Array> init,
                             const std::vector<AbstractLeaf>& carry, std::span<const Array> xs,
                             int64_t length, bool reverse, int unroll) {
  if (unroll < 1)
    raise<Error>("scan", "ScanOptions::unroll is ", unroll, "; it must be at least 1");
  auto [fn, consts] = close_region(std::move(body));
  std::vector<Array> operands = consts;
  std::vector<Array> start = fitted_init(init, carry);
  operands.insert(operands.end(), start.begin(), start.end());
  operands.insert(operands.end(), xs.begin(), xs.end());
  ir::Params params{.length = length, .reverse = reverse};
  params.regions = {std::move(fn)};
  params.groups = {static_cast<int64_t>(consts.size()), static_cast<int64_t>(carry.size())};
  return bind(Prim::kScan, operands, params);
}

}  // namespace tracejit::detail

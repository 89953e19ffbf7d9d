// The reverse sweep over an ir::Function, and the checks behind grad, value_and_grad and vjp.
//
// The forward pass replays the traced equations (trace/replay.h) through bind, or through the
// primitive's forward rule where it has one (loops that also keep their carries), and marks each variable active when it is a float that depends on a
// differentiated input through primitives with a rule. The backward pass walks the equations in
// reverse, calling the rules of active equations whose result received a cotangent, asking
// only for the cotangents of active operands, and accumulating them with +. So cotangents of
// constants, captured values and integer values are never computed, and zeros are
// materialized only for differentiated inputs that nothing reached.
#include "ad/vjp.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "ir/region_utils.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "trace/replay.h"
#include "trace/trace_state.h"
#include "tracejit/ad.h"
#include "tracejit/ops.h"

namespace tracejit::detail {

struct VjpTape::Impl {
  std::shared_ptr<const ir::Function> fn;
  std::vector<Array> env;    // every variable's primal value, by VarId
  std::vector<bool> active;  // by VarId: may receive a cotangent
  std::vector<bool> wrt;     // by input position
  std::vector<Array> outputs;
  std::vector<std::vector<Array>> residuals;  // by equation: what its forward rule returned
};

VjpTape::VjpTape(const Traced& traced, std::span<const Array> primals, std::vector<bool> wrt,
                 bool replay_effects) {
  auto impl = std::make_shared<Impl>();
  // Nested jit calls are inlined: the sweep then sees (and keeps residuals of) their equations.
  impl->fn = ir::inline_calls(traced.fn, /*custom_vjp=*/false);
  if (!replay_effects) impl->fn = ir::strip_effects(impl->fn);
  const ir::Function& fn = *impl->fn;
  TJ_CHECK(primals.size() == fn.inputs.size() && wrt.size() == fn.inputs.size(),
           "VjpTape: ", primals.size(), " primals for ", fn.inputs.size(), " inputs");
  impl->active.assign(static_cast<size_t>(fn.num_vars()), false);
  impl->residuals.resize(fn.eqns.size());
  for (size_t i = 0; i < primals.size(); ++i)
    impl->active[static_cast<size_t>(fn.inputs[i])] = wrt[i] && is_float(fn.type(fn.inputs[i]).dtype);

  absl::InlinedVector<bool, 4> need;
  auto step = [&](const ir::Eqn& e, std::span<const Array> args) {
    need.clear();
    for (ir::VarId v : e.in) need.push_back(impl->active[static_cast<size_t>(v)]);
    const bool any_active = std::find(need.begin(), need.end(), true) != need.end();
    const bool differentiable = any_active && ad::vjp_rule(e.prim) != nullptr;
    TJ_CHECK(e.prim != ir::Prim::kCall, "vjp: calls are inlined before the sweep");
    std::vector<Array> outs;
    if (ad::ForwardRule forward = differentiable ? ad::forward_rule(e.prim) : nullptr)
      outs = forward(e.params, args, need, impl->residuals[static_cast<size_t>(&e - fn.eqns.data())]);
    else
      outs = bind(e.prim, args, e.params);
    for (size_t k = 0; k < e.out.size(); ++k)
      impl->active[static_cast<size_t>(e.out[k])] = differentiable && is_float(fn.type(e.out[k]).dtype);
    return outs;
  };
  impl->outputs = replay(fn, primals, traced.captured, impl->env, step);
  // Keep only what the rules can read (operands and results of active equations) and the
  // inputs (for zeros), so that a vjp_fn holds its residuals rather than every intermediate.
  std::vector<bool> keep(static_cast<size_t>(fn.num_vars()), false);
  for (ir::VarId v : fn.inputs) keep[static_cast<size_t>(v)] = true;
  for (const ir::Eqn& e : fn.eqns) {
    if (std::none_of(e.out.begin(), e.out.end(),
                     [&](ir::VarId v) { return impl->active[static_cast<size_t>(v)]; }))
      continue;
    for (ir::VarId v : e.in) keep[static_cast<size_t>(v)] = true;
    for (ir::VarId v : e.out) keep[static_cast<size_t>(v)] = true;
  }
  for (size_t v = 0; v < keep.size(); ++v)
    if (!keep[v]) impl->env[v] = Array();
  impl->wrt = std::move(wrt);
  impl_ = std::move(impl);
}

const std::vector<Array>& VjpTape::outputs() const { return impl_->outputs; }

std::vector<Array> VjpTape::backward(std::span<const Array> out_cts) const {
  const Impl& t = *impl_;
  const ir::Function& fn = *t.fn;
  TJ_CHECK(out_cts.size() == fn.outputs.size(), "VjpTape::backward: cotangent count");
  std::vector<Array> ct(static_cast<size_t>(fn.num_vars()));
  auto accumulate = [&](ir::VarId v, const Array& c) {
    Array& slot = ct[static_cast<size_t>(v)];
    slot = slot.valid() ? slot + c : c;
  };
  for (size_t i = 0; i < out_cts.size(); ++i)
    if (out_cts[i].valid() && t.active[static_cast<size_t>(fn.outputs[i])])
      accumulate(fn.outputs[i], out_cts[i]);

  std::vector<Array> in, outs, cts;
  absl::InlinedVector<bool, 3> need;
  for (size_t i = fn.eqns.size(); i-- > 0;) {
    const ir::Eqn& e = fn.eqns[i];
    // Effects (debug_print) have no result and ran in the forward pass: nothing to do here. An
    // equation none of whose results received a cotangent is skipped whole.
    outs.clear();
    cts.clear();
    bool any = false;
    for (ir::VarId v : e.out) {
      outs.push_back(t.env[static_cast<size_t>(v)]);
      cts.push_back(std::move(ct[static_cast<size_t>(v)]));
      any = any || cts.back().valid();
    }
    if (!any) continue;
    in.clear();
    need.clear();
    for (ir::VarId v : e.in) {
      in.push_back(t.env[static_cast<size_t>(v)]);
      need.push_back(t.active[static_cast<size_t>(v)]);
    }
    ad::RuleArgs args{e.params, in, outs, cts, need, t.residuals[i], outs[0], cts[0]};
    ad::Cotangents in_cts = ad::vjp_rule(e.prim)(args);
    TJ_CHECK(in_cts.size() == e.in.size(), "vjp rule of ", ir::prim_name(e.prim), " gave ",
             in_cts.size(), " cotangents for ", e.in.size(), " operands");
    for (size_t k = 0; k < in_cts.size(); ++k) {
      if (!need[k] || !in_cts[k].valid()) continue;
      const ir::Type& want = fn.type(e.in[k]);
      TJ_CHECK(in_cts[k].dtype() == want.dtype && in_cts[k].shape() == want.shape, "vjp rule of ",
               ir::prim_name(e.prim), " gave a cotangent ",
               type_str(in_cts[k].dtype(), in_cts[k].shape()), " for operand ", k, " of type ",
               ir::type_str(want));
      accumulate(e.in[k], in_cts[k]);
    }
  }

  std::vector<Array> result(fn.inputs.size());
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    if (!t.wrt[i]) continue;
    const Array& c = ct[static_cast<size_t>(fn.inputs[i])];
    result[i] = c.valid() ? c : zeros_like(t.env[static_cast<size_t>(fn.inputs[i])]);
  }
  return result;
}

size_t check_argnum(std::string_view op, int n, size_t num_args) {
  if (n < 0 || static_cast<size_t>(n) >= num_args)
    raise<IndexError>(op, "argument index ", n, " is out of range for a function called with ",
                      num_args, num_args == 1 ? " argument" : " arguments",
                      "; pass an index from 0 to ", static_cast<int64_t>(num_args) - 1);
  return static_cast<size_t>(n);
}

void check_grad_argument(std::string_view op, const FlatArgs& flat, size_t argnum) {
  const std::vector<std::string> paths = leaf_paths(flat.defs[argnum]);
  for (size_t i = flat.offsets[argnum]; i < flat.offsets[argnum + 1]; ++i) {
    const Array& leaf = flat.leaves[i];
    impl_of(leaf, op);
    if (is_float(leaf.dtype())) continue;
    const std::string& path = paths[i - flat.offsets[argnum]];
    raise<TypeError>(op, "argument ", argnum, path.empty() ? "" : " leaf ", path, " is ",
                     dtype_name(leaf.dtype()),
                     "; differentiate w.r.t. float arguments only (convert with tj::astype, or "
                     "pass integer values through another argument)");
  }
}

GradLeaves grad_leaves(std::string_view op, const TracedFn& traced, const FlatArgs& flat,
                       std::span<const size_t> argnums, bool has_aux) {
  const ir::Function& fn = *traced.traced.fn;
  const std::vector<TreeNode>& nodes = traced.out_def.nodes();
  GradLeaves r;
  if (has_aux) {
    // std::pair{loss, aux}: a two-element tuple node, the loss leaf, then aux's nodes.
    if (nodes.size() < 2 || nodes[0].kind != NodeKind::kTuple || nodes[0].arity != 2 ||
        nodes[1].kind != NodeKind::kLeaf)
      raise<TreeError>(op, "with tj::has_aux, f must return std::pair{loss, aux} with a single "
                       "array loss, got ", traced.out_def.str());
    r.aux_def = TreeDef(std::vector<TreeNode>(nodes.begin() + 2, nodes.end()));
  } else if (fn.outputs.size() != 1 || nodes.size() != 1) {
    raise<ShapeError>(op, "needs a scalar float output, got a pytree with ", fn.outputs.size(),
                      " leaves, ", traced.out_def.str(),
                      "; use tj::vjp for functions with several outputs, or tj::has_aux to "
                      "return auxiliary data beside the loss");
  }
  const ir::Type& out = fn.type(fn.outputs[0]);
  if (!is_float(out.dtype))
    raise<TypeError>(op, "needs a scalar float output, got ", ir::type_str(out),
                     "; integer and bool outputs have no gradient (convert with tj::astype)");
  if (!out.shape.empty())
    raise<ShapeError>(op, "needs a scalar float output, got ", ir::type_str(out),
                      "; use tj::vjp for non-scalar outputs");
  std::vector<bool> wrt(flat.leaves.size(), false);
  for (size_t n : argnums)
    for (size_t i = flat.offsets[n]; i < flat.offsets[n + 1]; ++i) wrt[i] = true;
  VjpTape tape(traced.traced, flat.leaves, std::move(wrt));
  r.value = tape.outputs()[0];
  r.aux.assign(tape.outputs().begin() + 1, tape.outputs().end());
  std::vector<Array> seed(tape.outputs().size());
  seed[0] = ones({}, out.dtype);
  std::vector<Array> in_cts = tape.backward(seed);
  for (size_t n : argnums)
    r.grads.emplace_back(in_cts.begin() + static_cast<ptrdiff_t>(flat.offsets[n]),
                         in_cts.begin() + static_cast<ptrdiff_t>(flat.offsets[n + 1]));
  return r;
}

std::vector<Array> check_cotangent(const TreeDef& out_def, const std::vector<Array>& outputs,
                                   const Flattened& cotangent) {
  if (cotangent.def != out_def)
    raise<TreeError>("vjp", "cotangent structure ", cotangent.def.str(),
                     " does not match the output structure ", out_def.str(),
                     "; pass a cotangent with the outputs' structure (one leaf per output)");
  // A vjp_fn made inside a trace holds that trace's tracers: refuse it here, naming vjp, rather
  // than in whichever primitive of the backward pass first meets one.
  for (const Array& out : outputs)
    if (out.is_tracer() && !out.impl()->trace->active()) raise_leak(*out.impl(), "vjp");
  const std::vector<std::string> paths = leaf_paths(out_def);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Array& ct = cotangent.leaves[i];
    impl_of(ct, "vjp");
    const std::string at = paths[i].empty() ? "" : cat(" at ", paths[i]);
    const std::string what =
        cat("cotangent ", type_str(ct.dtype(), ct.shape()), " does not match output ",
            type_str(outputs[i].dtype(), outputs[i].shape()), at);
    if (ct.shape() != outputs[i].shape())
      raise<ShapeError>("vjp", what, "; pass a cotangent with the output's shape");
    if (ct.dtype() != outputs[i].dtype())
      raise<TypeError>("vjp", what, "; pass a cotangent with the output's dtype");
  }
  return cotangent.leaves;
}

}  // namespace tracejit::detail

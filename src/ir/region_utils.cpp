#include "ir/region_utils.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"

namespace tracejit::ir {
namespace {

// Equations that inline_calls replaces: calls, and custom_vjp's primal when `custom_vjp`.
bool inlined(const Eqn& e, bool custom_vjp) {
  return e.prim == Prim::kCall || (custom_vjp && e.prim == Prim::kCustomVjp);
}
bool has_call(const Function& fn, bool custom_vjp) {
  return std::any_of(fn.eqns.begin(), fn.eqns.end(), [&](const Eqn& e) { return inlined(e, custom_vjp); });
}
// The operands of the inlined program: a call's all, custom_vjp's f consts and arguments.
std::vector<VarId> inlined_args(const Eqn& e) {
  if (e.prim == Prim::kCall) return {e.in.begin(), e.in.end()};
  const size_t nf = static_cast<size_t>(e.params.groups[0]);
  const size_t skip = static_cast<size_t>(e.params.groups[1] + e.params.groups[2]);
  std::vector<VarId> args(e.in.begin(), e.in.begin() + static_cast<ptrdiff_t>(nf));
  args.insert(args.end(), e.in.begin() + static_cast<ptrdiff_t>(nf + skip), e.in.end());
  return args;
}

// Appends `f`'s equations, applied to `args` (variables of `dst`), to `out`; returns the
// variables of `dst` that hold f's outputs.
std::vector<VarId> emit(Function& dst, const Function& f, std::span<const VarId> args,
                        std::vector<Eqn>& out, bool custom_vjp) {
  std::vector<VarId> map(static_cast<size_t>(f.num_vars()), -1);
  for (size_t i = 0; i < f.inputs.size(); ++i) map[static_cast<size_t>(f.inputs[i])] = args[i];
  for (size_t i = 0; i < f.const_vars.size(); ++i) {
    VarId v = dst.new_var(f.type(f.const_vars[i]));
    dst.const_vars.push_back(v);
    dst.const_values.push_back(f.const_values[i]);
    map[static_cast<size_t>(f.const_vars[i])] = v;
  }
  for (const Eqn& e : f.eqns) {
    Eqn copy = e;
    for (VarId& v : copy.in) v = map[static_cast<size_t>(v)];
    if (inlined(e, custom_vjp)) {
      std::vector<VarId> outs = emit(dst, *e.params.regions[0], inlined_args(copy), out, custom_vjp);
      for (size_t k = 0; k < e.out.size(); ++k) map[static_cast<size_t>(e.out[k])] = outs[k];
      continue;
    }
    for (VarId& v : copy.out) {
      VarId fresh = dst.new_var(f.type(v));
      map[static_cast<size_t>(v)] = fresh;
      v = fresh;
    }
    out.push_back(std::move(copy));
  }
  std::vector<VarId> outs;
  for (VarId v : f.outputs) outs.push_back(map[static_cast<size_t>(v)]);
  return outs;
}

}  // namespace

bool inline_calls(Function& fn, bool custom_vjp) {
  if (!has_call(fn, custom_vjp)) return false;
  absl::flat_hash_map<VarId, VarId> subst;
  auto resolve = [&](VarId v) {
    auto it = subst.find(v);
    return it == subst.end() ? v : it->second;
  };
  std::vector<Eqn> eqns;
  std::vector<Eqn> old = std::move(fn.eqns);
  for (Eqn& e : old) {
    for (VarId& v : e.in) v = resolve(v);
    if (!inlined(e, custom_vjp)) {
      eqns.push_back(std::move(e));
      continue;
    }
    std::vector<VarId> outs = emit(fn, *e.params.regions[0], inlined_args(e), eqns, custom_vjp);
    for (size_t k = 0; k < e.out.size(); ++k) subst[e.out[k]] = outs[k];
  }
  fn.eqns = std::move(eqns);
  for (VarId& v : fn.outputs) v = resolve(v);
  return true;
}

std::shared_ptr<const Function> inline_calls(std::shared_ptr<const Function> fn, bool custom_vjp) {
  if (!has_call(*fn, custom_vjp)) return fn;
  auto copy = std::make_shared<Function>(*fn);
  inline_calls(*copy, custom_vjp);
  return copy;
}

std::shared_ptr<const Function> strip_effects(std::shared_ptr<const Function> fn) {
  if (!has_effect(*fn)) return fn;
  auto copy = std::make_shared<Function>(*fn);
  std::vector<Eqn> eqns;
  for (Eqn& e : copy->eqns) {
    if (has_effect(e.prim) && e.out.empty()) continue;  // an effect with results stays
    for (auto& r : e.params.regions) r = strip_effects(r);
    eqns.push_back(std::move(e));
  }
  copy->eqns = std::move(eqns);
  return copy;
}

}  // namespace tracejit::ir

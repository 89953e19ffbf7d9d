// Dead loop carries: a scan or while carry whose result nobody reads, and which no live part of
// the body (nor a while's cond) reads either, is removed from the loop (its init, its body input
// and output, its result), as are ys nobody reads and consts and xs the body no longer reads. dce cannot do this: to it a
// scan is one equation whose results are all or nothing. Reverse-mode AD produces such carries
// (the primal's ys in a backward sweep), and users write them (a counter nobody returns).
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "passes/pipeline.h"

namespace tracejit::passes {
namespace {

// Which variables of `body` the outputs marked in `live_out` (and its effects) need.
std::vector<bool> needed_vars(const ir::Function& body, const std::vector<bool>& live_out) {
  std::vector<bool> need(static_cast<size_t>(body.num_vars()), false);
  for (size_t k = 0; k < body.outputs.size(); ++k)
    if (live_out[k]) need[static_cast<size_t>(body.outputs[k])] = true;
  for (size_t i = body.eqns.size(); i-- > 0;) {
    const ir::Eqn& e = body.eqns[i];
    bool used = ir::has_effect(e);
    for (ir::VarId v : e.out) used = used || need[static_cast<size_t>(v)];
    if (!used) continue;
    for (ir::VarId v : e.in) need[static_cast<size_t>(v)] = true;
  }
  return need;
}

// A copy of `f` with the inputs marked in `keep` and the outputs marked in `keep_out`.
std::shared_ptr<ir::Function> restricted(const ir::Function& f, const std::vector<bool>& keep,
                                         const std::vector<bool>& keep_out) {
  auto out = std::make_shared<ir::Function>(f);
  out->inputs.clear();
  out->outputs.clear();
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) out->inputs.push_back(f.inputs[i]);
  for (size_t k = 0; k < keep_out.size(); ++k)
    if (keep_out[k]) out->outputs.push_back(f.outputs[k]);
  dce(*out);
  return out;
}

// Shrinks one scan equation; true when something was removed.
bool shrink_scan(ir::Eqn& e, const absl::flat_hash_set<ir::VarId>& used) {
  const ir::Function& body = *e.params.regions[0];
  const size_t nk = static_cast<size_t>(e.params.groups[0]), nc = static_cast<size_t>(e.params.groups[1]);
  const size_t nx = e.in.size() - nk - nc, ny = e.out.size() - nc;
  std::vector<bool> live(nc + ny);
  for (size_t k = 0; k < nc + ny; ++k) live[k] = used.contains(e.out[k]);
  std::vector<bool> need;
  for (bool grew = true; grew;) {  // a carry the live body reads stays
    grew = false;
    need = needed_vars(body, live);
    for (size_t k = 0; k < nc; ++k)
      if (!live[k] && need[static_cast<size_t>(body.inputs[nk + k])]) live[k] = grew = true;
  }
  std::vector<bool> keep_in(nk + nc + nx);
  for (size_t i = 0; i < keep_in.size(); ++i)
    keep_in[i] = i >= nk && i < nk + nc ? live[i - nk] : need[static_cast<size_t>(body.inputs[i])];
  if (std::all_of(live.begin(), live.end(), [](bool b) { return b; }) &&
      std::all_of(keep_in.begin(), keep_in.end(), [](bool b) { return b; }))
    return false;
  ir::Eqn out = e;
  out.in.clear();
  out.out.clear();
  for (size_t i = 0; i < keep_in.size(); ++i)
    if (keep_in[i]) out.in.push_back(e.in[i]);
  for (size_t k = 0; k < nc + ny; ++k)
    if (live[k]) out.out.push_back(e.out[k]);
  out.params.groups = {static_cast<int64_t>(std::count(keep_in.begin(), keep_in.begin() + static_cast<ptrdiff_t>(nk), true)),
                       static_cast<int64_t>(std::count(live.begin(), live.begin() + static_cast<ptrdiff_t>(nc), true))};
  out.params.regions = {restricted(body, keep_in, live)};
  e = std::move(out);
  return true;
}

// Shrinks one while equation (operands: cond consts, body consts, carries; results: carries) as
// shrink_scan does: a carry stays when it is returned, read by the cond, or read by the part of
// the body that computes a carry that stays.
bool shrink_while(ir::Eqn& e, const absl::flat_hash_set<ir::VarId>& used) {
  if (e.params.trajectory) return false;  // its results stack every carry
  const ir::Function& cond = *e.params.regions[0];
  const ir::Function& body = *e.params.regions[1];
  const size_t nc = static_cast<size_t>(e.params.groups[0]), nb = static_cast<size_t>(e.params.groups[1]);
  const size_t n = e.out.size();
  const std::vector<bool> cond_need = needed_vars(cond, {true});
  std::vector<bool> live(n);
  for (size_t k = 0; k < n; ++k)
    live[k] = used.contains(e.out[k]) || cond_need[static_cast<size_t>(cond.inputs[nc + k])];
  std::vector<bool> need;
  for (bool grew = true; grew;) {
    grew = false;
    need = needed_vars(body, live);
    for (size_t k = 0; k < n; ++k)
      if (!live[k] && need[static_cast<size_t>(body.inputs[nb + k])]) live[k] = grew = true;
  }
  // With no carry left the loop computes nothing anyone reads: dce removes it whole.
  if (std::none_of(live.begin(), live.end(), [](bool b) { return b; })) return false;
  std::vector<bool> keep_cond(nc + n), keep_body(nb + n);
  for (size_t i = 0; i < nc; ++i) keep_cond[i] = cond_need[static_cast<size_t>(cond.inputs[i])];
  for (size_t i = 0; i < nb; ++i) keep_body[i] = need[static_cast<size_t>(body.inputs[i])];
  for (size_t k = 0; k < n; ++k) keep_cond[nc + k] = keep_body[nb + k] = live[k];
  auto all = [](const std::vector<bool>& v) { return std::all_of(v.begin(), v.end(), [](bool b) { return b; }); };
  if (all(keep_cond) && all(keep_body)) return false;
  ir::Eqn out = e;
  out.in.clear();
  out.out.clear();
  for (size_t i = 0; i < nc; ++i)
    if (keep_cond[i]) out.in.push_back(e.in[i]);
  for (size_t i = 0; i < nb; ++i)
    if (keep_body[i]) out.in.push_back(e.in[nc + i]);
  for (size_t k = 0; k < n; ++k)
    if (live[k]) out.in.push_back(e.in[nc + nb + k]), out.out.push_back(e.out[k]);
  out.params.groups = {static_cast<int64_t>(std::count(keep_cond.begin(), keep_cond.begin() + static_cast<ptrdiff_t>(nc), true)),
                       static_cast<int64_t>(std::count(keep_body.begin(), keep_body.begin() + static_cast<ptrdiff_t>(nb), true))};
  out.params.regions = {restricted(cond, keep_cond, {true}), restricted(body, keep_body, live)};
  e = std::move(out);
  return true;
}

}  // namespace

bool dce_loops(ir::Function& fn) {
  absl::flat_hash_set<ir::VarId> used(fn.outputs.begin(), fn.outputs.end());
  for (const ir::Eqn& e : fn.eqns) used.insert(e.in.begin(), e.in.end());
  bool changed = false;
  for (ir::Eqn& e : fn.eqns)
    if (!ir::has_effect(e)) {
      if (e.prim == ir::Prim::kScan) changed = shrink_scan(e, used) || changed;
      if (e.prim == ir::Prim::kWhile) changed = shrink_while(e, used) || changed;
    }
  return changed;
}

}  // namespace tracejit::passes

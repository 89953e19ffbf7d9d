// Dead loop carries: a scan carry whose result nobody reads, and which no live part of the body
// reads either, is removed from the loop (its init, its body input and output, its result), as
// are ys nobody reads and consts and xs the body no longer reads. dce cannot do this: to it a
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
  auto shrunk = std::make_shared<ir::Function>(body);
  ir::Eqn out = e;
  shrunk->inputs.clear();
  shrunk->outputs.clear();
  out.in.clear();
  out.out.clear();
  for (size_t i = 0; i < keep_in.size(); ++i)
    if (keep_in[i]) shrunk->inputs.push_back(body.inputs[i]), out.in.push_back(e.in[i]);
  for (size_t k = 0; k < nc + ny; ++k)
    if (live[k]) shrunk->outputs.push_back(body.outputs[k]), out.out.push_back(e.out[k]);
  dce(*shrunk);
  out.params.groups = {static_cast<int64_t>(std::count(keep_in.begin(), keep_in.begin() + static_cast<ptrdiff_t>(nk), true)),
                       static_cast<int64_t>(std::count(live.begin(), live.begin() + static_cast<ptrdiff_t>(nc), true))};
  out.params.regions = {std::move(shrunk)};
  e = std::move(out);
  return true;
}

}  // namespace

bool dce_loops(ir::Function& fn) {
  absl::flat_hash_set<ir::VarId> used(fn.outputs.begin(), fn.outputs.end());
  for (const ir::Eqn& e : fn.eqns) used.insert(e.in.begin(), e.in.end());
  bool changed = false;
  for (ir::Eqn& e : fn.eqns)
    if (e.prim == ir::Prim::kScan && !ir::has_effect(e)) changed = shrink_scan(e, used) || changed;
  return changed;
}

}  // namespace tracejit::passes

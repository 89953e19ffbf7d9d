// Dead-code elimination: keep the equations the outputs need, and the constants they read.
// Primitives are pure except effects (debug_print), which are always live.
#include "passes/pipeline.h"

namespace tracejit::passes {

bool dce(ir::Function& fn) {
  std::vector<bool> live(static_cast<size_t>(fn.num_vars()), false);
  for (ir::VarId v : fn.outputs) live[static_cast<size_t>(v)] = true;
  std::vector<bool> keep(fn.eqns.size(), false);
  for (size_t i = fn.eqns.size(); i-- > 0;) {
    const ir::Eqn& e = fn.eqns[i];
    bool needed = ir::has_effect(e);
    for (ir::VarId v : e.out) needed = needed || live[static_cast<size_t>(v)];
    if (!needed) continue;
    keep[i] = true;
    for (ir::VarId v : e.in) live[static_cast<size_t>(v)] = true;
  }
  // Compacted in place: a fresh vector of 100,000 equations cost more in page faults than the
  // walk itself.
  size_t kept = 0;
  for (size_t i = 0; i < fn.eqns.size(); ++i) {
    if (!keep[i]) continue;
    if (kept != i) fn.eqns[kept] = std::move(fn.eqns[i]);
    ++kept;
  }
  bool changed = kept != fn.eqns.size();
  fn.eqns.erase(fn.eqns.begin() + static_cast<std::ptrdiff_t>(kept), fn.eqns.end());
  std::vector<ir::VarId> const_vars;
  std::vector<std::shared_ptr<base::Buffer>> const_values;
  for (size_t i = 0; i < fn.const_vars.size(); ++i) {
    if (!live[static_cast<size_t>(fn.const_vars[i])]) {
      changed = true;
      continue;
    }
    const_vars.push_back(fn.const_vars[i]);
    const_values.push_back(fn.const_values[i]);
  }
  fn.const_vars = std::move(const_vars);
  fn.const_values = std::move(const_values);
  return changed;
}

}  // namespace tracejit::passes

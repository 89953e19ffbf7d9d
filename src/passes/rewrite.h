#pragma once
// A variable substitution shared by the passes that replace one value by another: equations are
// visited in order, operands renamed through the map, and the function's outputs at the end.
#include "absl/container/flat_hash_map.h"
#include "ir/ir.h"

namespace tracejit::passes {

class Substitution {
 public:
  void replace(ir::VarId from, ir::VarId to) { map_[from] = resolve(to); }
  ir::VarId resolve(ir::VarId v) const {
    auto it = map_.find(v);
    return it == map_.end() ? v : it->second;
  }
  void apply(ir::Eqn& e) const {
    for (ir::VarId& v : e.in) v = resolve(v);
  }
  void apply_outputs(ir::Function& fn) const {
    for (ir::VarId& v : fn.outputs) v = resolve(v);
  }
  bool empty() const { return map_.empty(); }

 private:
  absl::flat_hash_map<ir::VarId, ir::VarId> map_;
};

}  // namespace tracejit::passes

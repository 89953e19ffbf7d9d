// Common-subexpression elimination over the whole function: equal constants (same type and
// bytes) become one, then equations with the same primitive, operands and parameters. The tracer
// already hash-conses as it records; this pass catches what AD and simplification expose.
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "ir/eqn_index.h"
#include "passes/pipeline.h"
#include "passes/rewrite.h"

namespace tracejit::passes {
namespace {

// Constants larger than this are merged only when they share a buffer, not by comparing bytes.
constexpr int64_t kMaxComparedConstBytes = 4096;

struct ConstKey {
  ir::Type type;
  std::string bytes;
  const void* buffer = nullptr;
  bool operator==(const ConstKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ConstKey& k) {
    return H::combine(std::move(h), k.type, k.bytes, k.buffer);
  }
};

ConstKey const_key(const ir::Type& type, const base::Buffer& value) {
  int64_t n = type.size() * dtype_size(type.dtype);
  if (n > kMaxComparedConstBytes) return {type, {}, value.data()};
  return {type, std::string(static_cast<const char*>(value.data()), static_cast<size_t>(n)), nullptr};
}

}  // namespace

bool cse(ir::Function& fn) {
  Substitution subst;
  absl::flat_hash_map<ConstKey, ir::VarId> consts;
  for (size_t i = 0; i < fn.const_vars.size(); ++i) {
    ir::VarId v = fn.const_vars[i];
    auto [it, fresh] = consts.try_emplace(const_key(fn.type(v), *fn.const_values[i]), v);
    if (!fresh) subst.replace(v, it->second);
  }
  std::vector<ir::Eqn> eqns;
  eqns.reserve(fn.eqns.size());
  ir::EqnIndex seen(&eqns);
  for (ir::Eqn& e : fn.eqns) {
    subst.apply(e);
    const bool effect = ir::has_effect(e);  // two equal prints both print
    if (int i = effect ? -1 : seen.find(e.prim, e.in, e.params); i >= 0) {
      const ir::Eqn& first = eqns[static_cast<size_t>(i)];
      for (size_t k = 0; k < e.out.size(); ++k) subst.replace(e.out[k], first.out[k]);
      continue;
    }
    eqns.push_back(std::move(e));
    if (!effect) seen.insert(static_cast<int>(eqns.size() - 1));
  }
  bool changed = eqns.size() != fn.eqns.size() || !subst.empty();
  fn.eqns = std::move(eqns);
  subst.apply_outputs(fn);
  return changed;  // merged constants are now dead; dce drops them
}

}  // namespace tracejit::passes

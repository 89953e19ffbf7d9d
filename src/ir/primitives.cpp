#include <array>

#include "ir/ir.h"

namespace tracejit::ir {
namespace {

constexpr std::array<PrimInfo, kNumPrims> kPrimInfo = {{
#define TJ_PRIM(id, name, arity, kind, params) {name, arity, PrimKind::kind, ParamLayout::params},
#include "ir/primitives.def"
#undef TJ_PRIM
}};

constexpr std::array<Prim, kNumPrims> kAllPrims = {{
#define TJ_PRIM(id, name, arity, kind, params) Prim::id,
#include "ir/primitives.def"
#undef TJ_PRIM
}};

}  // namespace

const PrimInfo& prim_info(Prim p) { return kPrimInfo[static_cast<size_t>(p)]; }

std::span<const Prim> all_prims() { return kAllPrims; }

bool is_elementwise(Prim p) {
  switch (prim_info(p).kind) {
    case PrimKind::Unary: case PrimKind::Binary: case PrimKind::Compare: case PrimKind::Select:
      return true;
    case PrimKind::Reduce: case PrimKind::Layout: case PrimKind::Source: case PrimKind::Contract:
    case PrimKind::Effect: case PrimKind::Region:
      return false;
  }
  return false;
}

bool has_effect(Prim p) { return prim_info(p).kind == PrimKind::Effect; }

bool has_effect(const Eqn& e) { return has_effect(e.prim, e.params); }

bool has_effect(Prim p, const Params& params) {
  if (has_effect(p)) return true;
  for (const auto& r : params.regions) {
    int8_t known = r->effect_memo.known.load(std::memory_order_relaxed);
    if (known < 0) {
      known = has_effect(*r) ? 1 : 0;
      r->effect_memo.known.store(known, std::memory_order_relaxed);
    }
    if (known) return true;
  }
  return false;
}

bool has_effect(const Function& fn) {
  for (const Eqn& e : fn.eqns)
    if (has_effect(e)) return true;
  return false;
}


}  // namespace tracejit::ir

#pragma once
// JAX's dtype promotion over tracejit's dtypes: one table (promotion.cpp) that every op taking
// several arrays, and the loop-carry and branch joins of control flow, read through the two
// functions below.
#include <atomic>
#include <span>
#include <string_view>

#include "base/type.h"

namespace tracejit::detail {

/// The mode tj::set_dtype_promotion set, which tj::dtype_promotion returns; read inline on
/// every jitted call (a signature holds it).
extern std::atomic<DTypePromotion> g_promotion;
inline DTypePromotion promotion_now() { return g_promotion.load(std::memory_order_relaxed); }

/// A dtype with JAX's weak-type bit: what promotion takes and gives.
struct WeakDType {
  DType dtype;
  bool weak;
  bool operator==(const WeakDType&) const = default;
};

/// jnp.result_type of two values in standard mode: the join of their types on JAX's lattice.
/// A weak int (i32 or u32) stands for Python's int, a weak float for Python's float; two weak
/// values join their dtypes and stay weak (as JAX does).
WeakDType promote_pair(WeakDType a, WeakDType b);

/// The dtype (and weak bit) that the operands of `op` are converted to. In strict mode two
/// strongly typed operands of different dtypes throw TypeError naming `op`, both types and
/// tj::astype; weak values (C++ scalars) promote as in standard mode.
WeakDType result_type(std::string_view op, std::span<const base::Type* const> operands);

/// True when a weak value of dtype `from` joined with a strong `to` gives `to`: a weakly typed
/// loop init or branch output may take that dtype (API.md, "Control flow").
bool weak_promotes_to(DType from, DType to);

}  // namespace tracejit::detail

// The promotion table. Rows and columns are the lattice nodes of JAX's type promotion
// semantics restricted to tracejit's dtypes: b1 u4 i4 f4 f8 and the weak i* and f* (Python's
// int and float). Entries are JAX's published binary promotion table for those nodes, with
// JAX's canonicalisation without x64 for integers: u4 with i4 gives i8 there, i4 here.
#include "base/promotion.h"

#include <atomic>

#include "base/errors.h"

namespace tracejit {

std::atomic<DTypePromotion> detail::g_promotion{DTypePromotion::standard};

namespace {

enum Node : uint8_t { b1, u4, i4, f4, f8, iw, fw, kNodes };

// kJoin[a][b]: the join of nodes a and b.
constexpr Node kJoin[kNodes][kNodes] = {
    //        b1  u4  i4  f4  f8  i*  f*
    /* b1 */ {b1, u4, i4, f4, f8, iw, fw},
    /* u4 */ {u4, u4, i4, f4, f8, u4, fw},
    /* i4 */ {i4, i4, i4, f4, f8, i4, fw},
    /* f4 */ {f4, f4, f4, f4, f8, f4, f4},
    /* f8 */ {f8, f8, f8, f8, f8, f8, f8},
    /* i* */ {iw, u4, i4, f4, f8, iw, fw},
    /* f* */ {fw, fw, fw, f4, f8, fw, fw},
};

Node node_of(DType d, bool weak) {
  switch (d) {
    case DType::bool_: return b1;  // JAX has no weak bool: Python's bool is strongly typed
    case DType::u32: return weak ? iw : u4;
    case DType::i32: return weak ? iw : i4;
    case DType::f32: return weak ? fw : f4;
    case DType::f64: return weak ? fw : f8;
  }
  detail::fail_internal(__FILE__, __LINE__, "promotion: unknown dtype");
}

// A node back as a dtype: the weak nodes are the default int and float, weakly typed.
detail::WeakDType dtype_of_node(Node n) {
  constexpr DType kDtype[kNodes] = {DType::bool_, DType::u32, DType::i32, DType::f32,
                                    DType::f64,   DType::i32, DType::f32};
  return {kDtype[n], n == iw || n == fw};
}

}  // namespace

void set_dtype_promotion(DTypePromotion mode) { detail::g_promotion.store(mode, std::memory_order_relaxed); }
DTypePromotion dtype_promotion() { return detail::promotion_now(); }

DType promote_types(DType a, DType b) { return detail::promote_pair({a, false}, {b, false}).dtype; }

namespace detail {

WeakDType promote_pair(WeakDType a, WeakDType b) {
  // Two weak values: the join of their strong types, kept weak (JAX's all-weak case, which
  // keeps f64 + f64 scalars f64 instead of collapsing them to the default float).
  if (a.weak && b.weak) return {dtype_of_node(kJoin[node_of(a.dtype, false)][node_of(b.dtype, false)]).dtype, true};
  return dtype_of_node(kJoin[node_of(a.dtype, a.weak)][node_of(b.dtype, b.weak)]);
}

WeakDType result_type(std::string_view op, std::span<const base::Type* const> operands) {
  TJ_CHECK(!operands.empty(), "result_type of no operands");
  const bool strict = dtype_promotion() == DTypePromotion::strict;
  const base::Type* strong = nullptr;
  WeakDType out{operands[0]->dtype, operands[0]->weak};
  for (const base::Type* t : operands) {
    if (strict && !t->weak) {
      if (strong != nullptr && strong->dtype != t->dtype)
        raise<TypeError>(op, "operands have different dtypes: ", base::type_str(*strong), ", ",
                         base::type_str(*t), " (strict dtype promotion); convert one with tj::astype(x, tj::DType::",
                         dtype_name(promote_types(strong->dtype, t->dtype)), ")");
      strong = t;
    }
    out = promote_pair(out, {t->dtype, t->weak});
  }
  return out;
}

bool weak_promotes_to(DType from, DType to) {
  return promote_pair({from, true}, {to, false}) == WeakDType{to, false};
}

}  // namespace detail
}  // namespace tracejit

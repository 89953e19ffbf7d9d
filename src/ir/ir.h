#pragma once
// The typed SSA IR. A Function is a list of equations over numbered variables; every variable
// has a Type; equations are in dependency order. Grammar of the printed form (printer.cpp):
//
//   function := "{ lambda " consts " ; " binders ". let" eqn* " in (" vars ") }"
//   eqn      := binders " = " prim-name params? operand*
//   binder   := var ":" type            type := dtype "[" dims "]"
//   operand  := var | literal ":" type  (scalar constants print inline, as JAX's literals)
//   params   := "[" (key "=" value)* "]"; a region prints as key "=" function on lines of its own,
//               indented under its equation, with its own variable names (regions are closed)
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "base/buffer.h"
#include "base/type.h"
#include "tracejit/dtype.h"

namespace tracejit::ir {

enum class Prim : uint8_t {
#define TJ_PRIM(id, name, arity, kind, params) id,
#include "ir/primitives.def"
#undef TJ_PRIM
};
inline constexpr int kNumPrims = 0
#define TJ_PRIM(id, name, arity, kind, params) +1
#include "ir/primitives.def"
#undef TJ_PRIM
    ;

enum class PrimKind : uint8_t {
  Unary, Binary, Compare, Select, Reduce, Layout, Source, Contract, Effect, Region
};
/// Which Params fields a primitive reads, and so what the printer shows.
enum class ParamLayout : uint8_t {
  None, Dtype, Axes, Broadcast, NewShape, Perm, Slice, Axis, Iota, Text, Call, Cond, While, Scan
};

struct PrimInfo {
  std::string_view name;
  int arity;  // -1: variadic
  PrimKind kind;
  ParamLayout params;
};
const PrimInfo& prim_info(Prim p);
inline std::string_view prim_name(Prim p) { return prim_info(p).name; }
/// Elementwise: one output element depends on the same-index element of each operand.
bool is_elementwise(Prim p);
/// Runs on the host for a side effect (debug_print: no results; all_sum: one): passes keep it,
/// never merge it with an equal equation, and keep effects in program order; the tracer
/// records every bind of it.
bool has_effect(Prim p);
/// Carries sub-programs (Params::regions).
inline bool has_regions(Prim p) { return prim_info(p).kind == PrimKind::Region; }
/// Every primitive, in table order (for tests and tools that walk the table).
std::span<const Prim> all_prims();

/// The type of an IR value (base/type.h): dtype, shape and JAX's weak-type bit.
using Type = base::Type;
using base::type_str;

struct Function;

/// Primitive parameters. One struct for all primitives keeps equations uniform; the
/// primitive's ParamLayout says which fields are meaningful, the rest stay default.
struct Params {
  Shape shape;                  // broadcast_in_dim, reshape, iota: the result shape
  std::vector<int64_t> axes;    // reduce axes, transpose permutation, broadcast dimensions,
                                // slice start indices
  std::vector<int64_t> limits;  // slice limit indices
  int64_t axis = 0;             // concatenate, iota: the dimension
  DType dtype = DType::f32;     // convert and bitcast target, iota element type
  std::string text;             // debug_print: the format string
  bool weak_type = false;       // convert: the result's weak type (a weak operand stays weak)
  // Higher-order primitives (see primitives.def): the sub-programs, compared and hashed by
  // identity, and the operand groups, trip count and direction.
  std::vector<std::shared_ptr<const Function>> regions;
  std::vector<int64_t> groups;
  int64_t length = 0;           // scan: steps; while: max_iterations (-1: unbounded)
  bool reverse = false;         // scan
  bool trajectory = false;      // while: also return the step count and the stacked carries
  bool operator==(const Params&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Params& p) {
    return H::combine(std::move(h), p.shape, p.axes, p.limits, p.axis, p.dtype, p.text,
                      p.weak_type, p.regions, p.groups, p.length, p.reverse, p.trajectory);
  }
};

using VarId = int32_t;

struct Eqn {
  Prim prim;
  absl::InlinedVector<VarId, 3> in;
  absl::InlinedVector<VarId, 1> out;
  Params params;
};

struct Function {
  std::string name;
  std::vector<Type> types;        // indexed by VarId
  std::vector<VarId> inputs;      // positional arguments
  std::vector<VarId> captures;    // values of an enclosing trace, supplied when replayed
  std::vector<VarId> const_vars;  // concrete values the trace captured...
  // ...and their elements (of the variable's type), parallel to const_vars; never written.
  std::vector<std::shared_ptr<base::Buffer>> const_values;
  std::vector<Eqn> eqns;          // in dependency order
  std::vector<VarId> outputs;

  /// has_effect(const Eqn&)'s answer for this function as a region, kept once asked (regions are
  /// shared as `const` and not changed after): asking at every level of jit nested in jit made
  /// tracing quadratic in the depth. A copy starts without it.
  struct EffectMemo {
    mutable std::atomic<int8_t> known{-1};  // -1 not asked yet, else 0 or 1
    EffectMemo() = default;
    EffectMemo(const EffectMemo&) {}
    EffectMemo& operator=(const EffectMemo&) {
      known.store(-1, std::memory_order_relaxed);
      return *this;
    }
  };
  EffectMemo effect_memo;

  VarId new_var(const Type& t) {
    types.push_back(t);
    return static_cast<VarId>(types.size() - 1);
  }
  const Type& type(VarId v) const { return types[static_cast<size_t>(v)]; }
  int num_vars() const { return static_cast<int>(types.size()); }
};

/// The output types of `prim` applied to operands of types `in`; throws ShapeError/TypeError
/// (naming the primitive) when the operands or parameters do not fit. Used when binding and by
/// the verifier.
std::vector<Type> infer_types(Prim prim, std::span<const Type> in, const Params& params);

/// True when `e` runs an effect: an effect primitive, or a region that contains one.
bool has_effect(const Eqn& e);
bool has_effect(Prim prim, const Params& params);
/// True when `fn` (or a region inside it) contains an effect.
bool has_effect(const Function& fn);

/// The printed form (grammar above).
std::string to_string(const Function& fn);
/// The printed name of the n-th variable in order of appearance: a, b, ..., z, ba, bb, ...
std::string var_name(int n);
/// Every variable of `fn` as to_string spells it (indexed by VarId): a scalar constant as its
/// literal, the others named in order of appearance (constants, captures, inputs, results).
std::vector<std::string> var_names(const Function& fn);
/// One equation as to_string prints it, "f:f32[3] = mul d e", variables spelled by `names`.
std::string eqn_str(const Function& fn, const Eqn& e, std::span<const std::string> names);
/// A scalar constant as an inline literal, e.g. "2.0:f32[]".
std::string literal_str(const Type& type, const base::Buffer& value);
/// The key a region prints under: "body", "cond", "true_branch", ...
std::string region_name(Prim prim, size_t index, size_t count);
/// "axes=(0, 1)" for the equation's parameters; empty when it has none.
std::string params_str(Prim prim, const Params& params);

/// Checks SSA form (each variable defined once before use), re-derives every equation's types
/// with infer_types and compares them with the recorded ones. Throws InternalError naming the
/// equation on the first violation; `stage` names the pass that produced `fn`. With `regions`
/// false the regions' own equations are taken as verified (a trace's regions were, when their
/// traces finished): checking them again at every enclosing level made nested jit cubic.
void verify(const Function& fn, std::string_view stage, bool regions = true);

}  // namespace tracejit::ir

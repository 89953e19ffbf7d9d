#pragma once
// The jit cache's key: what selects a compiled executable for a call, and how two keys differ
// (the per-leaf differences a retrace explanation shows).
#include <string>
#include <vector>

#include "ir/ir.h"
#include "tracejit/detail/trace_fn.h"

namespace tracejit::detail {

/// What selects a compiled executable: the arguments' structure and leaf types, and the global
/// settings that tracing reads (the threefry scheme decides which IR random draws record, the
/// dtype promotion mode which conversions ops insert, or whether they throw).
struct Signature {
  std::vector<TreeDef> defs;
  std::vector<ir::Type> leaves;
  bool threefry_partitionable = true;
  DTypePromotion promotion = DTypePromotion::standard;
  bool operator==(const Signature&) const = default;
};

/// A call's signature read in place from its FlatArgs: a cache hit builds no Signature, which
/// would copy every TreeDef and allocate two vectors per call.
struct SignatureView {
  const FlatArgs* args;
  bool threefry_partitionable;
  DTypePromotion promotion;
};

/// Hashes and compares both forms alike, so the cache can be searched with a view.
struct SignatureHash {
  using is_transparent = void;
  size_t operator()(const Signature& s) const;
  size_t operator()(const SignatureView& v) const;
};

struct SignatureEq {
  using is_transparent = void;
  bool operator()(const Signature& a, const Signature& b) const { return a == b; }
  bool operator()(const Signature& s, const SignatureView& v) const { return (*this)(v, s); }
  bool operator()(const SignatureView& v, const Signature& s) const;
};

/// The signature of a call, as a view over `args` (valid while `args` is) or as a copy.
SignatureView view_of(const FlatArgs& args);
Signature signature_of(const FlatArgs& args);

/// Each difference between two signatures, with its path in the argument tree, as
/// "arg 0 .weight: f32[] -> f64[]"; empty when they are equal.
std::vector<std::string> signature_diff(const Signature& old_sig, const Signature& new_sig);

}  // namespace tracejit::detail

#pragma once
// Evaluates a traced IR function eagerly, equation by equation, and carries with every element
// a bound on how far another evaluation may legitimately be from it. The bound of each
// primitive's result follows from its operands' bounds (a forward error analysis over the
// actual values) and from what the primitive itself may contribute; the rules, one per
// primitive, are the stated tolerances of the checks.
#include <span>
#include <vector>

#include "ir/ir.h"
#include "tracejit/array.h"

namespace difftest {

enum class ErrorModel {
  /// Compiled code against eager evaluation. A primitive contributes only where its compiled
  /// form may differ: f32 exp/log/log1p/tanh (polynomials), pow (LLVM's rewrites), float
  /// reduce_sum (reassociated); otherwise only the rounding of results of inexact operands.
  kCompiledVsEager,
  /// Eager evaluation against exact arithmetic, for values that depend on a `varying` input
  /// (the rounding noise of finite differences; values that do not vary round the same way at
  /// every step and cancel).
  kRoundingOfVarying,
};

/// A value and, per element in row-major order, a bound on its error; +inf means unknown
/// (an integer or bool whose value may differ, or a float beyond analysis).
struct Bounded {
  tracejit::Array value;
  std::vector<double> err;
};

/// Interprets `fn` (no captures) on `inputs`. `varying` (one flag per input) is read by
/// kRoundingOfVarying. Returns the outputs.
std::vector<Bounded> eval_with_bounds(const tracejit::ir::Function& fn,
                                      std::span<const tracejit::Array> inputs, ErrorModel model,
                                      const std::vector<bool>& varying = {});

/// The first element where `got` differs from `want` by more than its bound (NaN equals NaN;
/// with a zero bound, -0.0 differs from +0.0; an infinite bound accepts anything), described;
/// empty when none. Counts compared and
/// unknown elements into the optional counters.
std::string first_difference(const tracejit::Array& got, const Bounded& want,
                             int64_t* compared = nullptr, int64_t* unknown = nullptr);

/// The first element where two arrays differ bit for bit (NaN equals NaN), or empty.
std::string first_bit_difference(const tracejit::Array& got, const tracejit::Array& want);

}  // namespace difftest

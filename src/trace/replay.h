#pragma once
// Transforms are IR replays, not per-value tracers. A transformation (evaluation, AD, and the
// ones to come) traces the user's function once into an ir::Function, then walks its equations
// in order and hands each to a rule that calls bind() again: outside a trace that computes
// values, inside one it records equations. This file holds that walk, written once; a
// transformation supplies only what it does per equation.
#include <span>
#include <vector>

#include "absl/functional/function_ref.h"
#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::detail {

/// What a replay does with one equation: its values for the equation's results, given the
/// values of its operands.
using ReplayStep = absl::FunctionRef<std::vector<Array>(const ir::Eqn&, std::span<const Array>)>;

/// Replays `fn` on `inputs` (one per input) and `captured` (one per capture): `env` is resized
/// to fn.num_vars() and receives every variable's value; returns the outputs' values.
std::vector<Array> replay(const ir::Function& fn, std::span<const Array> inputs,
                          std::span<const Array> captured, std::vector<Array>& env, ReplayStep step);

/// The plain step: bind the equation's primitive as recorded.
std::vector<Array> bind_step(const ir::Eqn& e, std::span<const Array> args);

}  // namespace tracejit::detail

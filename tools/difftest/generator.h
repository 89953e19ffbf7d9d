#pragma once
// Random well-typed programs over tracejit's public operations.
#include "program.h"
#include "rng.h"

namespace difftest {

struct GenOptions {
  int max_ops = 12;    // operations per program: uniform in [1, max_ops], plus domain wrappers
  bool loops = true;  // tj::cond, while_loop, fori_loop and scan nodes, their bodies nested
};

/// Draws a program from `rng`: its inputs (dtypes, shapes with 0-d, size-0 and broadcasting,
/// ranges, values, places in the argument pytrees), its operations and its outputs. Every
/// operation is checked with infer() before it is added, so values stay inside the domains.
Program generate(Rng& rng, const GenOptions& options, uint64_t id);

/// Finite differences step the differentiated inputs by at most this much (times a direction
/// of max-norm 1); their values are drawn at least kInputMargin inside their ranges.
inline constexpr double kFdStep = 1e-4;
inline constexpr double kInputMargin = 1e-3;

}  // namespace difftest

#pragma once
// The checks run on every generated program (issue 6):
//   jit     jit(f) and jit(jit(f)) equal eager f: integers and bools exactly, floats within the
//           bounds of error_bound.h (kCompiledVsEager); the traced IR, replayed, equals eager f
//           bit for bit; a second call (a cache hit) repeats the first.
//   passes  the optimized IR passes the verifier and has no more equations than the live part
//           of the traced IR (for f and for grad(f)).
//   fd      vjp of the program's f64 instance equals central finite differences along random
//           directions (smooth programs only).
//   hvp     grad(grad(f)) (a Hessian-vector product) of the f64 instance equals central
//           differences of grad(f) (smooth programs only).
//   grad    grad(f) and value_and_grad(jit(f)) agree bit for bit (both eager); jit(grad(f))
//           equals grad(f) within kCompiledVsEager bounds.
// Any exception tracejit throws on a generated (valid) program is a mismatch too.
#include <cstdint>
#include <optional>
#include <string>

#include "program.h"

namespace difftest {

struct CheckOptions {
  bool jit = true;   // jit and passes
  bool grad = true;  // fd and grad
  /// When set, only the check of this name runs (used while shrinking).
  std::string only;
};

struct Mismatch {
  std::string check;  // jit, passes, fd, hvp, grad, types, exception
  std::string detail;
};

/// Counters over a run.
struct CheckStats {
  int64_t compiles = 0;
  int64_t compared = 0;  // elements compared against a bound
  int64_t unknown = 0;   // elements whose bound was unknown (skipped)
  int64_t fd_directions = 0;
  int64_t fd_unsettled = 0;  // directions skipped: differences unresolved (programs with loops)
  int64_t grad_programs = 0;
};

/// Runs the checks on `p`; the first disagreement, if any.
std::optional<Mismatch> check_program(const Program& p, const CheckOptions& options,
                                      CheckStats& stats);

}  // namespace difftest

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
//   jvp     jvp of the f64 instance along a random direction equals central differences along
//           it (smooth programs only).
//   vmap    vmap(f) and jit(vmap(f)) over three lanes of fresh inputs, mapped on random axes
//           (in_axes and out_axes), equal eager f on each lane within kCompiledVsEager bounds.
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
  std::string check;  // jit, passes, vmap, fd, hvp, jvp, grad, types, exception
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
  int64_t jvp_directions = 0;  // jvp checked against central differences
  int64_t vmap_programs = 0;   // vmap(f) and jit(vmap(f)) checked against a loop over lanes
};

/// Runs the checks on `p`; the first disagreement, if any.
std::optional<Mismatch> check_program(const Program& p, const CheckOptions& options,
                                      CheckStats& stats);

}  // namespace difftest

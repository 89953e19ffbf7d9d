#pragma once
// The IR pass pipeline, run by jit before the backend. Each pass is a file with one entry point
// that returns whether it changed anything; the pipeline is the list in pipeline.cpp, with the
// verifier after every pass.
#include <functional>
#include <string>
#include <vector>

#include "ir/ir.h"

namespace tracejit::passes {

/// Removes equations whose results are never used.
bool dce(ir::Function& fn);
/// Removes scan and while carries and scan ys that nothing reads (and the consts and xs only
/// they read).
bool dce_loops(ir::Function& fn);
/// Merges equations with the same primitive, operands and parameters, and identical constants.
bool cse(ir::Function& fn);
/// Constant folding and algebraic simplification (x*1, x+0, neg(neg x), broadcasts and
/// reshapes to the same shape, convert to the same dtype, stop_gradient, ...).
bool simplify(ir::Function& fn);

/// Runs the pipeline to a fixed point; `trace` (optional) receives the IR text after each pass.
ir::Function optimize(const ir::Function& fn,
                      const std::function<void(std::string_view pass, const ir::Function&)>& trace = {});

}  // namespace tracejit::passes

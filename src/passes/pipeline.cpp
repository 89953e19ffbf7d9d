// The pass pipeline: calls inlined and regions optimized, then simplify, inline, cse, dce,
// repeated until nothing changes, the verifier after each pass.
#include "passes/pipeline.h"

#include "ir/region_utils.h"

namespace tracejit::passes {
namespace {

// Each round can only shrink the function, so this bound is never the reason a pass stops;
// it only guards against a pass that keeps reporting a change.
constexpr int kMaxRounds = 8;

struct Pass {
  std::string_view name;
  bool (*run)(ir::Function&);
};
// Calls that simplify made (a cond with a constant index calls its branch) are inlined.
bool inline_new_calls(ir::Function& fn) { return ir::inline_calls(fn, /*custom_vjp=*/true); }

constexpr Pass kPipeline[] = {{"simplify", simplify},
                              {"inline", inline_new_calls},
                              {"cse", cse},
                              {"dce", dce},
                              {"dce_loops", dce_loops}};

}  // namespace

ir::Function optimize(const ir::Function& input,
                      const std::function<void(std::string_view, const ir::Function&)>& trace) {
  ir::Function fn = input;
  // Nested jit calls (and custom_vjp primals: no AD follows) are inlined first, so that fusion
  // sees across their boundaries; the
  // regions of loops and branches are optimized on their own, as functions.
  if (ir::inline_calls(fn, /*custom_vjp=*/true)) {
    ir::verify(fn, "inline");
    if (trace) trace("inline", fn);
  }
  for (ir::Eqn& e : fn.eqns)
    for (auto& r : e.params.regions) r = std::make_shared<const ir::Function>(optimize(*r, trace));
  for (int round = 0; round < kMaxRounds; ++round) {
    bool changed = false;
    for (const Pass& pass : kPipeline) {
      bool c = pass.run(fn);
      ir::verify(fn, pass.name);
      if (c && trace) trace(pass.name, fn);
      changed = changed || c;
    }
    if (!changed) break;
  }
  return fn;
}

}  // namespace tracejit::passes

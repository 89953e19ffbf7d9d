// The pass pipeline: simplify, cse, dce, repeated until nothing changes, the verifier after
// each pass.
#include "passes/pipeline.h"

namespace tracejit::passes {
namespace {

// Each round can only shrink the function, so this bound is never the reason a pass stops;
// it only guards against a pass that keeps reporting a change.
constexpr int kMaxRounds = 8;

struct Pass {
  std::string_view name;
  bool (*run)(ir::Function&);
};
constexpr Pass kPipeline[] = {{"simplify", simplify}, {"cse", cse}, {"dce", dce}};

}  // namespace

ir::Function optimize(const ir::Function& input,
                      const std::function<void(std::string_view, const ir::Function&)>& trace) {
  ir::Function fn = input;
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

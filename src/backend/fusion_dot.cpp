// The fused plan as a picture (fusion.h, fused_dot): the traced program's drawer, with the
// equations grouped by the kernel that evaluates them, in execution order.
#include "absl/strings/str_cat.h"
#include "backend/fusion.h"
#include "ir/dot.h"

namespace tracejit::backend {
namespace {

class PlanDrawer final : public ir::FunctionDrawer {
 public:
  PlanDrawer(ir::DotGraph& graph, const ir::Function& fn, const FusionPlan& plan)
      : FunctionDrawer(graph, fn), plan_(plan) {}

 private:
  void body() override {
    size_t h = 0;
    auto host_steps_after = [&](int k) {
      for (; h < plan_.host_steps.size() && plan_.host_steps[h].after == k; ++h)
        equation(plan_.host_steps[h].eqn, "shape=note");
    };
    host_steps_after(-1);
    for (size_t k = 0; k < plan_.kernels.size(); ++k) {
      const Kernel& kernel = plan_.kernels[k];
      if (kernel.kind == KernelKind::kHost) {  // an effect with a result, between kernels
        equation(kernel.eqn, "shape=note");
        host_steps_after(static_cast<int>(k));
        continue;
      }
      graph_.open_cluster(kernel_title(fn_, plan_, k),
                          kernel.kind == KernelKind::kRegion
                              ? "style=rounded;"
                              : "style=filled; fillcolor=\"#eef3fb\";");
      if (kernel.kind == KernelKind::kRegion) equation(kernel.eqn);
      for (int i : kernel.eqns)
        equation(i);  // an equation recomputed by a later kernel: drawn here
      graph_.close_cluster();
      host_steps_after(static_cast<int>(k));
    }
  }

  void region(int eqn, size_t r) override {
    for (const Kernel& kernel : plan_.kernels)
      if (kernel.kind == KernelKind::kRegion && kernel.eqn == eqn)
        return PlanDrawer(graph_, *fn_.eqns[static_cast<size_t>(eqn)].params.regions[r],
                          *kernel.regions[r])
            .draw();
  }

  // Values that live in a buffer between kernels are drawn bold; inline ones thin.
  std::string edge_attrs(ir::VarId v) const override {
    return plan_.slot[static_cast<size_t>(v)] >= 0 ? "penwidth=2" : "";
  }

  const FusionPlan& plan_;
};

}  // namespace

std::string fused_dot(const ir::Function& fn, const FusionPlan& plan) {
  ir::DotGraph graph;
  PlanDrawer(graph, fn, plan).draw();
  return graph.str(fn.name.empty() ? "fused" : fn.name);
}

}  // namespace tracejit::backend

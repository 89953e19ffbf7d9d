// The checks and the bind behind tj::custom_vjp.
#include "tracejit/custom_vjp.h"

#include "base/array_impl.h"
#include "base/errors.h"
#include "ir/ir.h"
#include "trace/trace_state.h"

namespace tracejit::detail {
std::vector<AbstractLeaf> output_leaves(const Traced& t, size_t from) {
  std::vector<AbstractLeaf> out;
  for (size_t i = from; i < t.fn->outputs.size(); ++i) {
    const ir::Type& type = t.fn->type(t.fn->outputs[i]);
    out.push_back(AbstractLeaf{type.dtype, type.shape, type.weak});
  }
  return out;
}

void check_fwd_output(const std::string& name, const TreeDef& f_def, const Traced& f,
                      const TreeDef& fwd_def, const Traced& fwd) {
  if (fwd_def != f_def)
    raise<TypeError>("custom_vjp", "the fwd of '", name, "' returns an output of structure ",
                     fwd_def.str(), " but the function returns ", f_def.str(),
                     "; fwd returns std::pair{f(args...), residuals}");
  const std::vector<std::string> paths = leaf_paths(f_def);
  for (size_t i = 0; i < f.fn->outputs.size(); ++i) {
    const ir::Type& want = f.fn->type(f.fn->outputs[i]);
    const ir::Type& got = fwd.fn->type(fwd.fn->outputs[i]);
    if (want.dtype != got.dtype || want.shape != got.shape)
      raise<TypeError>("custom_vjp", "the fwd of '", name, "' returns ",
                       type_str(got.dtype, got.shape), " for output", paths[i].empty() ? "" : " leaf ",
                       paths[i], " where the function returns ", type_str(want.dtype, want.shape));
  }
}

void check_bwd_output(const std::string& name, const FlatArgs& args, const std::vector<Flattened>& cts) {
  for (size_t a = 0; a < args.defs.size(); ++a) {
    if (cts[a].def != args.defs[a])
      raise<TypeError>("custom_vjp", "the bwd of '", name, "' returns a cotangent of structure ",
                       cts[a].def.str(), " for argument ", a, ", which has structure ",
                       args.defs[a].str(), "; return one cotangent per argument, shaped like it");
    const std::vector<std::string> paths = leaf_paths(args.defs[a]);
    for (size_t i = 0; i < cts[a].leaves.size(); ++i) {
      const Array& ct = cts[a].leaves[i];
      const Array& primal = args.leaves[args.offsets[a] + i];
      impl_of(ct, "custom_vjp");
      if (ct.dtype() != primal.dtype() || ct.shape() != primal.shape())
        raise<TypeError>("custom_vjp", "the bwd of '", name, "' returns ",
                         type_str(ct.dtype(), ct.shape()), " as the cotangent of argument ", a,
                         paths[i].empty() ? "" : " leaf ", paths[i], ", which is ",
                         type_str(primal.dtype(), primal.shape()),
                         "; a cotangent has its argument's shape and dtype (convert with tj::astype)");
    }
  }
}

std::vector<Array> bind_custom_vjp(std::string name, Traced f, Traced fwd, Traced bwd,
                                   std::span<const Array> args) {
  ir::Params params{.text = std::move(name)};
  std::vector<Array> operands;
  for (Traced* t : {&f, &fwd, &bwd}) {
    auto [fn, consts] = close_region(std::move(*t));
    params.regions.push_back(std::move(fn));
    params.groups.push_back(static_cast<int64_t>(consts.size()));
    operands.insert(operands.end(), consts.begin(), consts.end());
  }
  operands.insert(operands.end(), args.begin(), args.end());
  return bind(ir::Prim::kCustomVjp, operands, params);
}

}  // namespace tracejit::detail

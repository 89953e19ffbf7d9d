// The forward-mode replay over an ir::Function, and the checks behind tj::jvp.
//
// jvp traces the function once, then replays its equations through bind carrying a tangent
// beside each float value: an equation none of whose operands has a tangent is bound as it is;
// otherwise its JVP rule gives the results' tangents from the primals and the operand tangents.
// The replay goes through bind, so inside jit (or an outer jvp or grad) the primal and tangent
// computations are recorded together into that trace.
#include "ad/jvp.h"

#include <algorithm>

#include "base/array_impl.h"
#include "base/errors.h"
#include "trace/replay.h"
#include "trace/trace_state.h"
#include "tracejit/jvp.h"
#include "tracejit/ops.h"

namespace tracejit {
namespace ad {

Array tangent_or_zeros(const Array& tangent, const Array& like) {
  return tangent.valid() ? tangent : zeros(like.shape(), like.dtype());
}

std::pair<std::vector<Array>, std::vector<Array>> jvp_replay(const ir::Function& fn,
                                                             std::span<const Array> primals,
                                                             std::span<const Array> captured,
                                                             std::span<const Array> tangents) {
  TJ_CHECK(tangents.size() == fn.inputs.size(), "jvp_replay: ", tangents.size(),
           " tangents for ", fn.inputs.size(), " inputs");
  std::vector<Array> tan(static_cast<size_t>(fn.num_vars()));
  for (size_t i = 0; i < tangents.size(); ++i)
    if (is_float(fn.type(fn.inputs[i]).dtype)) tan[static_cast<size_t>(fn.inputs[i])] = tangents[i];
  std::vector<Array> tin;
  auto step = [&](const ir::Eqn& e, std::span<const Array> args) {
    tin.clear();
    for (ir::VarId v : e.in) tin.push_back(tan[static_cast<size_t>(v)]);
    if (std::none_of(tin.begin(), tin.end(), [](const Array& t) { return t.valid(); }))
      return detail::bind(e.prim, args, e.params);
    std::vector<Array> outs;
    if (!ir::has_regions(e.prim)) outs = detail::bind(e.prim, args, e.params);
    std::vector<Array> touts = jvp_rule(e.prim)(JvpArgs{e.prim, e.params, args, tin}, outs);
    TJ_CHECK(touts.size() == e.out.size() && outs.size() == e.out.size(), "jvp rule of ",
             ir::prim_name(e.prim), " gave ", touts.size(), " tangents for ", e.out.size(),
             " results");
    for (size_t k = 0; k < e.out.size(); ++k) {
      const ir::Type& want = fn.type(e.out[k]);
      if (!touts[k].valid() || !is_float(want.dtype)) continue;
      TJ_CHECK(touts[k].dtype() == want.dtype && touts[k].shape() == want.shape, "jvp rule of ",
               ir::prim_name(e.prim), " gave a tangent ",
               type_str(touts[k].dtype(), touts[k].shape()), " for result ", k, " of type ",
               ir::type_str(want));
      tan[static_cast<size_t>(e.out[k])] = std::move(touts[k]);
    }
    return outs;
  };
  std::vector<Array> env;
  std::vector<Array> outs = detail::replay(fn, primals, captured, env, step);
  std::vector<Array> touts;
  touts.reserve(fn.outputs.size());
  for (ir::VarId v : fn.outputs) touts.push_back(tan[static_cast<size_t>(v)]);
  return {std::move(outs), std::move(touts)};
}

}  // namespace ad

namespace detail {

void check_tangents(const FlatArgs& primals, const FlatArgs& tangents) {
  for (size_t a = 0; a < primals.defs.size(); ++a) {
    if (tangents.defs[a] != primals.defs[a])
      raise<TreeError>("jvp", "the tangent of argument ", a, " has structure ",
                       tangents.defs[a].str(), " but the primal has ", primals.defs[a].str(),
                       "; pass tangents with the primals' structure");
    const std::vector<std::string> paths = leaf_paths(primals.defs[a]);
    for (size_t i = primals.offsets[a]; i < primals.offsets[a + 1]; ++i) {
      const Array& p = primals.leaves[i];
      const Array& t = tangents.leaves[i];
      impl_of(p, "jvp");
      impl_of(t, "jvp");
      const std::string& path = paths[i - primals.offsets[a]];
      const std::string what = cat("the tangent ", type_str(t.dtype(), t.shape()), " of argument ",
                                   a, path.empty() ? "" : " leaf ", path, " does not match its primal ",
                                   type_str(p.dtype(), p.shape()));
      if (t.shape() != p.shape())
        raise<ShapeError>("jvp", what, "; a tangent has its primal's shape");
      if (t.dtype() != p.dtype())
        raise<TypeError>("jvp", what, "; a tangent has its primal's dtype (convert with tj::astype)");
    }
  }
}

JvpLeaves jvp_leaves(const TracedFn& traced, const FlatArgs& primals, const FlatArgs& tangents) {
  auto [outs, touts] = ad::jvp_replay(*traced.traced.fn, primals.leaves, traced.traced.captured,
                                      tangents.leaves);
  for (size_t k = 0; k < outs.size(); ++k) touts[k] = ad::tangent_or_zeros(touts[k], outs[k]);
  return {std::move(outs), std::move(touts)};
}

}  // namespace detail
}  // namespace tracejit

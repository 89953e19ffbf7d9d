// The checks behind tj::vmap, and its replay of the traced lane function over the batch.
#include "tracejit/vmap.h"

#include "base/array_impl.h"
#include "base/errors.h"
#include "batch/batch.h"

namespace tracejit::detail {
namespace {

std::string leaf_name(size_t arg, const std::string& path) {
  return cat("argument ", arg, path.empty() ? "" : " leaf ", path);
}

}  // namespace

VmapPlan vmap_plan(const FlatArgs& flat, const VmapOptions& options) {
  const size_t nargs = flat.defs.size();
  if (!options.in_axes.empty() && options.in_axes.size() != nargs)
    raise<Error>("vmap", "in_axes has ", options.in_axes.size(), " entries for ", nargs,
                 " arguments; give one per argument (std::nullopt for an unmapped one), or none "
                 "to map axis 0 of every argument");
  VmapPlan plan;
  plan.lane = flat;
  std::string first;  // the leaf that set the batch size
  for (size_t a = 0; a < nargs; ++a) {
    const std::optional<int> axis = options.in_axes.empty() ? std::optional<int>(0) : options.in_axes[a];
    const std::vector<std::string> paths = leaf_paths(flat.defs[a]);
    for (size_t i = flat.offsets[a]; i < flat.offsets[a + 1]; ++i) {
      const Array& leaf = flat.leaves[i];
      const ArrayImpl& impl = impl_of(leaf, "vmap");
      if (!axis) {
        plan.axes.push_back(-1);
        continue;
      }
      const std::string name = leaf_name(a, paths[i - flat.offsets[a]]);
      const int64_t rank = leaf.ndim();
      const int64_t ax = *axis < 0 ? *axis + rank : *axis;
      if (ax < 0 || ax >= rank)
        raise<ShapeError>("vmap", "in_axes ", *axis, " is out of range for ", name, " of type ",
                          type_str(leaf.dtype(), leaf.shape()), "; a rank-", rank,
                          " leaf has axes ", -rank, " to ", rank - 1,
                          rank == 0 ? " (pass std::nullopt for a scalar argument)" : "");
      const int64_t n = leaf.shape()[static_cast<size_t>(ax)];
      if (first.empty()) {
        plan.size = n;
        first = cat(name, " (", type_str(leaf.dtype(), leaf.shape()), ", axis ", ax, ")");
      } else if (n != plan.size) {
        raise<ShapeError>("vmap", "mapped axis sizes differ: ", first, " has size ", plan.size,
                          " but ", name, " (", type_str(leaf.dtype(), leaf.shape()), ", axis ", ax,
                          ") has size ", n, "; every mapped leaf needs the same size");
      }
      plan.axes.push_back(ax);
      // One lane's value: the type without the mapped axis (never read, only traced over).
      base::Type lane = impl.type;
      lane.shape.erase(lane.shape.begin() + ax);
      plan.lane.leaves[i] = make_placeholder(lane);
    }
  }
  if (first.empty())
    raise<Error>("vmap", "no argument is mapped: in_axes must map at least one array leaf "
                 "(vmap needs a batch size)");
  return plan;
}

std::vector<Array> vmap_leaves(const TracedFn& traced, const FlatArgs& flat, const VmapPlan& plan,
                               int out_axes) {
  std::vector<Array> inputs;
  batch::Flags batched;
  for (size_t i = 0; i < flat.leaves.size(); ++i) {
    const bool mapped = plan.axes[i] >= 0;
    inputs.push_back(mapped ? batch::move_axis(flat.leaves[i], plan.axes[i], 0) : flat.leaves[i]);
    batched.push_back(mapped);
  }
  auto [outs, flags] =
      batch::batch_replay(*traced.traced.fn, inputs, batched, traced.traced.captured, plan.size);
  for (size_t k = 0; k < outs.size(); ++k) {
    Array out = flags[k] ? outs[k] : batch::broadcast_lanes(outs[k], plan.size);
    const int64_t rank = out.ndim();
    const int64_t ax = out_axes < 0 ? out_axes + rank : out_axes;
    if (ax < 0 || ax >= rank)
      raise<ShapeError>("vmap", "out_axes ", out_axes, " is out of range for output ", k,
                        " of type ", type_str(out.dtype(), out.shape()), " (batch axis included); "
                        "it has axes ", -rank, " to ", rank - 1);
    outs[k] = batch::move_axis(out, 0, ax);
  }
  return outs;
}

}  // namespace tracejit::detail

// The batching replay over an ir::Function: each value is either the same for every lane (and
// kept as the unbatched program computes it) or batched, with the batch axis first. An
// equation with no batched operand is bound as it is; otherwise its batching rule binds the
// equation that computes every lane at once. Replaying through bind makes vmap compose: inside
// jit, grad or jvp the batched program is recorded into that trace.
#include <algorithm>

#include "base/errors.h"
#include "batch/batch.h"
#include "trace/replay.h"
#include "trace/trace_state.h"

namespace tracejit::batch {

std::pair<std::vector<Array>, Flags> batch_replay(const ir::Function& fn,
                                                              std::span<const Array> inputs,
                                                              const Flags& batched,
                                                              std::span<const Array> captured,
                                                              int64_t size) {
  TJ_CHECK(batched.size() == fn.inputs.size(), "batch_replay: ", batched.size(), " flags for ",
           fn.inputs.size(), " inputs");
  std::vector<bool> flag(static_cast<size_t>(fn.num_vars()), false);
  for (size_t i = 0; i < batched.size(); ++i) flag[static_cast<size_t>(fn.inputs[i])] = batched[i];
  Flags in_flags;
  auto step = [&](const ir::Eqn& e, std::span<const Array> args) {
    in_flags.clear();
    for (ir::VarId v : e.in) in_flags.push_back(flag[static_cast<size_t>(v)]);
    if (std::none_of(in_flags.begin(), in_flags.end(), [](bool b) { return b; }))
      return detail::bind(e.prim, args, e.params);
    Flags out_flags;
    std::vector<Array> outs =
        batch_rule(e.prim)(BatchArgs{e.prim, e.params, args, in_flags, size}, out_flags);
    TJ_CHECK(outs.size() == e.out.size() && out_flags.size() == e.out.size(), "batching rule of ",
             ir::prim_name(e.prim), " gave ", outs.size(), " results for ", e.out.size());
    for (size_t k = 0; k < e.out.size(); ++k) {
      const ir::Type& want = fn.type(e.out[k]);
      Shape shape = want.shape;
      if (out_flags[k]) shape.insert(shape.begin(), size);
      TJ_CHECK(outs[k].dtype() == want.dtype && outs[k].shape() == shape, "batching rule of ",
               ir::prim_name(e.prim), " gave ", type_str(outs[k].dtype(), outs[k].shape()),
               " for result ", k, " of type ", ir::type_str(want),
               out_flags[k] ? " (batched)" : "");
      flag[static_cast<size_t>(e.out[k])] = out_flags[k];
    }
    return outs;
  };
  std::vector<Array> env;
  std::vector<Array> outs = detail::replay(fn, inputs, captured, env, step);
  Flags out_flags;
  for (ir::VarId v : fn.outputs) out_flags.push_back(flag[static_cast<size_t>(v)]);
  return {std::move(outs), std::move(out_flags)};
}

Flags depends_on_batched(const ir::Function& fn, const Flags& batched) {
  std::vector<bool> flag(static_cast<size_t>(fn.num_vars()), false);
  for (size_t i = 0; i < batched.size(); ++i) flag[static_cast<size_t>(fn.inputs[i])] = batched[i];
  for (const ir::Eqn& e : fn.eqns) {
    const bool any = std::any_of(e.in.begin(), e.in.end(),
                                 [&](ir::VarId v) { return flag[static_cast<size_t>(v)]; });
    for (ir::VarId v : e.out) flag[static_cast<size_t>(v)] = any;
  }
  Flags out;
  for (ir::VarId v : fn.outputs) out.push_back(flag[static_cast<size_t>(v)]);
  return out;
}

}  // namespace tracejit::batch

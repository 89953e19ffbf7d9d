#include "trace/replay.h"

#include "base/array_impl.h"
#include "base/errors.h"
#include "trace/trace_state.h"

namespace tracejit::detail {

std::vector<Array> replay(const ir::Function& fn, std::span<const Array> inputs,
                          std::span<const Array> captured, std::vector<Array>& env, ReplayStep step) {
  TJ_CHECK(inputs.size() == fn.inputs.size(), "replay: ", inputs.size(), " inputs for ",
           fn.inputs.size(), " parameters");
  TJ_CHECK(captured.size() == fn.captures.size(), "replay: captures");
  env.assign(static_cast<size_t>(fn.num_vars()), Array());
  auto set = [&](ir::VarId v, const Array& a) { env[static_cast<size_t>(v)] = a; };
  for (size_t i = 0; i < inputs.size(); ++i) set(fn.inputs[i], inputs[i]);
  for (size_t i = 0; i < captured.size(); ++i) set(fn.captures[i], captured[i]);
  for (size_t i = 0; i < fn.const_vars.size(); ++i)
    set(fn.const_vars[i], array_over(fn.type(fn.const_vars[i]), fn.const_values[i]));
  std::vector<Array> args;
  for (const ir::Eqn& e : fn.eqns) {
    args.clear();
    for (ir::VarId v : e.in) args.push_back(env[static_cast<size_t>(v)]);
    std::vector<Array> outs = step(e, args);
    TJ_CHECK(outs.size() == e.out.size(), "replay: ", ir::prim_name(e.prim), " gave ", outs.size(),
             " results for ", e.out.size());
    for (size_t k = 0; k < e.out.size(); ++k) set(e.out[k], std::move(outs[k]));
  }
  std::vector<Array> result;
  result.reserve(fn.outputs.size());
  for (ir::VarId v : fn.outputs) result.push_back(env[static_cast<size_t>(v)]);
  return result;
}

std::vector<Array> bind_step(const ir::Eqn& e, std::span<const Array> args) {
  return bind(e.prim, args, e.params);
}

std::vector<Array> eval_ir(const ir::Function& fn, std::span<const Array> inputs,
                           std::span<const Array> captured) {
  std::vector<Array> env;
  return replay(fn, inputs, captured, env, bind_step);
}

}  // namespace tracejit::detail

// Eager evaluation of the higher-order primitives: their regions replayed through bind on
// concrete values, one step at a time. The reference semantics for the compiled loops.
#include <algorithm>
#include <cstring>

#include "base/errors.h"
#include "base/array_impl.h"
#include "trace/eager.h"
#include "trace/trace_state.h"

namespace tracejit::detail {
namespace {

int64_t bytes_of(const ir::Type& t) { return t.size() * dtype_size(t.dtype); }

// Row `i` of `stacked` (leading axis dropped) as a fresh concrete array.
Array row(const Array& stacked, int64_t i, const ir::Type& row_type) {
  Array r = make_concrete(row_type);
  const int64_t n = bytes_of(row_type);
  if (n > 0)
    std::memcpy(r.impl()->elements,
                static_cast<const char*>(stacked.impl()->elements) + i * n,
                static_cast<size_t>(n));
  return r;
}

void set_row(Array& stacked, int64_t i, const Array& value) {
  const int64_t n = bytes_of(value.impl()->type);
  if (n > 0)
    std::memcpy(static_cast<char*>(stacked.impl()->elements) + i * n,
                value.impl()->elements, static_cast<size_t>(n));
}

Array zeroed(const ir::Type& t) {
  Array a = make_concrete(t);
  if (bytes_of(t) > 0) std::memset(a.impl()->elements, 0, static_cast<size_t>(bytes_of(t)));
  return a;
}

std::vector<Array> concat(std::span<const Array> a, std::span<const Array> b) {
  std::vector<Array> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// Region outputs keep their region's weak bits; the equation's result types are the contract.
std::vector<Array> retype(std::vector<Array> values, std::span<const ir::Type> types) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].impl()->type == types[i]) continue;
    values[i] = retyped(*values[i].impl(), types[i]);
  }
  return values;
}

std::vector<Array> eval_while(std::span<const Array> in, const ir::Params& p,
                              std::span<const ir::Type> out_types) {
  const size_t nc = static_cast<size_t>(p.groups[0]), nb = static_cast<size_t>(p.groups[1]);
  std::span<const Array> cconsts = in.subspan(0, nc), bconsts = in.subspan(nc, nb);
  std::vector<Array> carry(in.begin() + static_cast<ptrdiff_t>(nc + nb), in.end());
  std::vector<Array> traj;
  if (p.trajectory)
    for (size_t i = 0; i < carry.size(); ++i) traj.push_back(zeroed(out_types[carry.size() + 1 + i]));
  int64_t steps = 0;
  while (eval_ir(*p.regions[0], concat(cconsts, carry), {})[0].item<bool>()) {
    if (p.length >= 0 && steps == p.length)
      raise<Error>("while_loop", "the loop needs more than max_iterations = ", p.length,
                   " steps; raise WhileOptions::max_iterations (it bounds the trajectory that "
                   "reverse-mode AD keeps)");
    for (size_t i = 0; i < traj.size(); ++i) set_row(traj[i], steps, carry[i]);
    carry = eval_ir(*p.regions[1], concat(bconsts, carry), {});
    ++steps;
  }
  if (p.trajectory) {
    carry.push_back(Array(static_cast<int32_t>(steps)));
    carry.insert(carry.end(), traj.begin(), traj.end());
  }
  return retype(std::move(carry), out_types);
}

std::vector<Array> eval_scan(std::span<const Array> in, const ir::Params& p,
                             std::span<const ir::Type> out_types) {
  const ir::Function& body = *p.regions[0];
  const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
  std::vector<Array> args(in.begin(), in.begin() + static_cast<ptrdiff_t>(nk + nc));
  std::span<const Array> xs = in.subspan(nk + nc);
  std::vector<Array> ys;
  for (size_t i = nc; i < out_types.size(); ++i) ys.push_back(make_concrete(out_types[i]));
  for (int64_t step = 0; step < p.length; ++step) {
    const int64_t i = p.reverse ? p.length - 1 - step : step;
    args.resize(nk + nc);
    for (size_t k = 0; k < xs.size(); ++k)
      args.push_back(row(xs[k], i, body.type(body.inputs[nk + nc + k])));
    std::vector<Array> outs = eval_ir(body, args, {});
    for (size_t k = 0; k < nc; ++k) args[nk + k] = outs[k];
    for (size_t k = 0; k < ys.size(); ++k) set_row(ys[k], i, outs[nc + k]);
  }
  std::vector<Array> result(args.begin() + static_cast<ptrdiff_t>(nk),
                            args.begin() + static_cast<ptrdiff_t>(nk + nc));
  result.insert(result.end(), ys.begin(), ys.end());
  return retype(std::move(result), out_types);
}

}  // namespace

std::vector<Array> eval_region(ir::Prim prim, std::span<const Array> in, const ir::Params& params,
                               std::span<const ir::Type> out_types) {
  if (prim == ir::Prim::kCall) return retype(eval_ir(*params.regions[0], in, {}), out_types);
  if (prim == ir::Prim::kCond) {
    const int64_t n = static_cast<int64_t>(params.regions.size());
    const int64_t index = std::clamp<int64_t>(in[0].item<int32_t>(), 0, n - 1);
    return retype(eval_ir(*params.regions[static_cast<size_t>(index)], in.subspan(1), {}),
                  out_types);
  }
  if (prim == ir::Prim::kWhile) return eval_while(in, params, out_types);
  if (prim == ir::Prim::kScan) return eval_scan(in, params, out_types);
  if (prim == ir::Prim::kCustomVjp) {
    // The primal program on its consts and the arguments.
    const size_t nf = static_cast<size_t>(params.groups[0]);
    const size_t args = static_cast<size_t>(params.groups[0] + params.groups[1] + params.groups[2]);
    std::vector<Array> f_in(in.begin(), in.begin() + static_cast<ptrdiff_t>(nf));
    f_in.insert(f_in.end(), in.begin() + static_cast<ptrdiff_t>(args), in.end());
    return retype(eval_ir(*params.regions[0], f_in, {}), out_types);
  }
  fail_internal(__FILE__, __LINE__, "not a region primitive");
}

}  // namespace tracejit::detail

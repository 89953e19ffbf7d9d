// VJP rules of the higher-order primitives, written with the public control-flow functions so
// that they are traced, compiled and differentiated again like user code (grad(grad(scan))).
//
// Loops keep their carries, not every intermediate: the forward rule of scan also returns the
// carry entering each step, stacked (a while_loop with max_iterations keeps its trajectory and
// step count the same way), and the reverse sweep is a reverse scan whose body replays one step
// of the primal body from its stored carry and pulls the cotangent back through it. Memory is
// steps x carry; each step's forward runs twice. cond's rule is a cond over the branches'
// VJPs, each replaying its branch from the operands.
#include "ad/vjp.h"
#include "base/errors.h"
#include "ir/region_utils.h"
#include "trace/trace_state.h"
#include "tracejit/ad.h"
#include "tracejit/control_flow.h"
#include "tracejit/ops.h"

namespace tracejit::ad {
namespace {

using detail::Traced;
using detail::VjpTape;
using ir::Prim;

std::vector<Array> slice_of(std::span<const Array> xs, size_t from, size_t n) {
  return std::vector<Array>(xs.begin() + static_cast<ptrdiff_t>(from),
                            xs.begin() + static_cast<ptrdiff_t>(from + n));
}

bool float_leaf(const Array& a) { return is_float(a.dtype()); }

// The cotangent of a result, zeros where none arrived.
Array ct_or_zeros(const RuleArgs& r, size_t k) {
  return r.cts[k].valid() ? r.cts[k] : zeros(r.outs[k].shape(), r.outs[k].dtype());
}

// The traced form of a region for a VjpTape: closed, so nothing is captured.
Traced region(const ir::Params& p, size_t index) {
  return Traced{ir::strip_effects(p.regions[index]), {}};
}

}  // namespace

std::vector<Array> scan_forward(const ir::Params& p, std::span<const Array> in,
                                std::span<const bool>, std::vector<Array>& residuals) {
  const ir::Function& body = *p.regions[0];
  const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
  // The same body, also returning the carry it was given: stacked, the carry of every step.
  auto keeping = std::make_shared<ir::Function>(body);
  for (size_t k = 0; k < nc; ++k) keeping->outputs.push_back(body.inputs[nk + k]);
  ir::Params q = p;
  q.regions = {std::move(keeping)};
  std::vector<Array> outs = detail::bind(Prim::kScan, in, q);
  const size_t results = nc + (body.outputs.size() - nc);
  residuals.assign(outs.begin() + static_cast<ptrdiff_t>(results), outs.end());
  outs.resize(results);
  return outs;
}

Cotangents scan_rule(const RuleArgs& r) {
  const ir::Params& p = r.params;
  const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
  const size_t nx = r.in.size() - nk - nc, ny = r.outs.size() - nc;
  // Which body inputs get cotangents: needed float consts and xs, and every float carry (a
  // carry's cotangent flows through all steps whatever its init).
  std::vector<bool> wrt(nk + nc + nx);
  for (size_t i = 0; i < wrt.size(); ++i)
    wrt[i] = float_leaf(r.in[i]) && (r.need[i] || (i >= nk && i < nk + nc));
  std::vector<Array> init, xs = r.residuals.empty() ? std::vector<Array>() : slice_of(r.residuals, 0, nc);
  for (size_t i = 0; i < nk; ++i)
    if (wrt[i]) init.push_back(zeros(r.in[i].shape(), r.in[i].dtype()));
  for (size_t k = 0; k < nc; ++k)
    if (wrt[nk + k]) init.push_back(ct_or_zeros(r, k));
  for (size_t k = 0; k < nx; ++k) xs.push_back(r.in[nk + nc + k]);
  std::vector<bool> float_y(ny);
  for (size_t j = 0; j < ny; ++j)
    if ((float_y[j] = float_leaf(r.outs[nc + j]))) xs.push_back(ct_or_zeros(r, nc + j));
  const std::vector<Array> consts = slice_of(r.in, 0, nk);
  const Traced body = region(p, 0);

  auto step = [&](const std::vector<Array>& carry, const std::vector<Array>& x) {
    std::vector<Array> primals = consts;
    primals.insert(primals.end(), x.begin(), x.begin() + static_cast<ptrdiff_t>(nc + nx));
    VjpTape tape(body, primals, wrt, /*replay_effects=*/false);
    std::vector<Array> out_cts(nc + ny);
    size_t c = 0, yi = nc + nx;
    for (size_t i = 0; i < nk; ++i) c += wrt[i];
    for (size_t k = 0; k < nc; ++k)
      if (wrt[nk + k]) out_cts[k] = carry[c++];
    for (size_t j = 0; j < ny; ++j)
      if (float_y[j]) out_cts[nc + j] = x[yi++];
    std::vector<Array> in_cts = tape.backward(out_cts);
    std::vector<Array> next, ys;
    size_t a = 0;
    for (size_t i = 0; i < nk; ++i)
      if (wrt[i]) next.push_back(carry[a++] + in_cts[i]);
    for (size_t k = 0; k < nc; ++k)
      if (wrt[nk + k]) next.push_back(in_cts[nk + k]);
    for (size_t k = 0; k < nx; ++k)
      if (wrt[nk + nc + k]) ys.push_back(in_cts[nk + nc + k]);
    return std::pair<std::vector<Array>, std::vector<Array>>(std::move(next), std::move(ys));
  };
  auto [final_carry, xs_cts] =
      scan(step, init, xs, ScanOptions{.length = p.length, .reverse = !p.reverse});
  Cotangents out(r.in.size());
  size_t a = 0, b = 0;
  for (size_t i = 0; i < nk + nc; ++i)
    if (wrt[i]) out[i] = final_carry[a++];
  for (size_t k = 0; k < nx; ++k)
    if (wrt[nk + nc + k]) out[nk + nc + k] = xs_cts[b++];
  return out;
}

std::vector<Array> while_forward(const ir::Params& p, std::span<const Array> in,
                                 std::span<const bool>, std::vector<Array>& residuals) {
  if (p.length < 0)
    detail::raise<Error>("grad", "reverse-mode differentiation of while_loop needs a bound on its "
                         "steps, to keep the carry of each: pass tj::WhileOptions{.max_iterations "
                         "= n}, or use fori_loop with C++ int bounds or scan (static trip counts)");
  // A loop that already keeps its trajectory (the forward of a first grad, under a second)
  // returns it as results too: then they are both results and residuals.
  ir::Params q = p;
  q.trajectory = true;
  std::vector<Array> outs = detail::bind(Prim::kWhile, in, q);
  const size_t nc = in.size() - static_cast<size_t>(p.groups[0] + p.groups[1]);
  residuals.assign(outs.begin() + static_cast<ptrdiff_t>(nc), outs.end());
  if (!p.trajectory) outs.resize(nc);
  return outs;
}

Cotangents while_rule(const RuleArgs& r) {
  const ir::Params& p = r.params;
  const size_t ncond = static_cast<size_t>(p.groups[0]), nb = static_cast<size_t>(p.groups[1]);
  const size_t nc = r.in.size() - ncond - nb;
  const std::vector<Array> bconsts = slice_of(r.in, ncond, nb);
  const Array steps = r.residuals[0];
  // Body inputs (bconsts, carry) that get cotangents, as in scan_rule.
  std::vector<bool> wrt(nb + nc);
  for (size_t i = 0; i < nb + nc; ++i)
    wrt[i] = float_leaf(r.in[ncond + i]) && (r.need[ncond + i] || i >= nb);
  std::vector<Array> init, xs = slice_of(r.residuals, 1, nc);
  for (size_t i = 0; i < nb; ++i)
    if (wrt[i]) init.push_back(zeros(bconsts[i].shape(), bconsts[i].dtype()));
  for (size_t k = 0; k < nc; ++k)
    if (wrt[nb + k]) init.push_back(ct_or_zeros(r, k));
  xs.push_back(arange(p.length, DType::i32));
  // A loop that returns its trajectory: row t is the carry entering step t, so its cotangent
  // joins that carry's when the sweep passes step t.
  if (p.trajectory)
    for (size_t k = 0; k < nc; ++k)
      if (wrt[nb + k]) xs.push_back(ct_or_zeros(r, nc + 1 + k));
  const Traced body = region(p, 1);

  // One step back: taken only for steps the loop ran (i < steps); later rows of the
  // trajectory are padding.
  auto step = [&](const std::vector<Array>& carry, const std::vector<Array>& x) {
    auto back = [&](const std::vector<Array>& acc) {
      std::vector<Array> primals = bconsts;
      primals.insert(primals.end(), x.begin(), x.begin() + static_cast<ptrdiff_t>(nc));
      VjpTape tape(body, primals, wrt, /*replay_effects=*/false);
      std::vector<Array> out_cts(nc);
      size_t c = 0;
      for (size_t i = 0; i < nb; ++i) c += wrt[i];
      for (size_t k = 0; k < nc; ++k)
        if (wrt[nb + k]) out_cts[k] = acc[c++];
      std::vector<Array> in_cts = tape.backward(out_cts);
      std::vector<Array> next;
      size_t a = 0, row = nc + 1;
      for (size_t i = 0; i < nb; ++i)
        if (wrt[i]) next.push_back(acc[a++] + in_cts[i]);
      for (size_t k = 0; k < nc; ++k)
        if (wrt[nb + k]) next.push_back(p.trajectory ? in_cts[nb + k] + x[row++] : in_cts[nb + k]);
      return next;
    };
    auto skip = [](const std::vector<Array>& acc) { return acc; };
    return std::pair<std::vector<Array>, std::tuple<>>(cond(x[nc] < steps, back, skip, carry), {});
  };
  auto final_carry = scan(step, init, xs, ScanOptions{.length = p.length, .reverse = true}).first;
  Cotangents out(r.in.size());
  size_t a = 0;
  for (size_t i = 0; i < nb + nc; ++i)
    if (wrt[i]) out[ncond + i] = final_carry[a++];
  return out;
}

Cotangents cond_rule(const RuleArgs& r) {
  const ir::Params& p = r.params;
  TJ_CHECK(p.regions.size() == 2, "cond_rule: ", p.regions.size(), " branches");
  const std::vector<Array> ops = slice_of(r.in, 1, r.in.size() - 1);
  std::vector<bool> wrt(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) wrt[i] = r.need[1 + i] && float_leaf(ops[i]);
  std::vector<Array> cts;
  std::vector<bool> float_out(r.outs.size());
  for (size_t k = 0; k < r.outs.size(); ++k)
    if ((float_out[k] = float_leaf(r.outs[k]))) cts.push_back(ct_or_zeros(r, k));
  // The VJP of one branch, replayed from the operands.
  auto back = [&](size_t b) {
    return [&, b](const std::vector<Array>& primals, const std::vector<Array>& c) {
      VjpTape tape(region(p, b), primals, wrt, /*replay_effects=*/false);
      std::vector<Array> out_cts(r.outs.size());
      size_t j = 0;
      for (size_t k = 0; k < out_cts.size(); ++k)
        if (float_out[k]) out_cts[k] = c[j++];
      std::vector<Array> in_cts = tape.backward(out_cts), picked;
      for (size_t i = 0; i < ops.size(); ++i)
        if (wrt[i]) picked.push_back(in_cts[i]);
      return picked;
    };
  };
  // The index was clamped into [0, 1]: branch 1 runs for every index from 1 up.
  std::vector<Array> got = cond(r.in[0] >= 1, back(1), back(0), ops, cts);
  Cotangents out(r.in.size());
  size_t j = 0;
  for (size_t i = 0; i < ops.size(); ++i)
    if (wrt[i]) out[1 + i] = got[j++];
  return out;
}

// custom_vjp: the forward runs the user's fwd (results and residuals), the backward the
// user's bwd on the residuals and the results' cotangents. As in JAX, only the explicit
// arguments are differentiated: a differentiated value the functions close over is an error.
std::vector<Array> custom_vjp_forward(const ir::Params& p, std::span<const Array> in,
                                      std::span<const bool> need, std::vector<Array>& residuals) {
  const size_t nf = static_cast<size_t>(p.groups[0]), nfwd = static_cast<size_t>(p.groups[1]);
  const size_t nconsts = nf + nfwd + static_cast<size_t>(p.groups[2]);
  for (size_t i = 0; i < nconsts; ++i)
    if (need[i])
      detail::raise<Error>("grad", "the tj::custom_vjp function '", p.text,
                           "' closes over a value that is being differentiated; its bwd gives "
                           "cotangents only for its explicit arguments, so pass that value as an "
                           "argument");
  std::vector<Array> fwd_in = slice_of(in, nf, nfwd);
  const std::span<const Array> args = in.subspan(nconsts);
  fwd_in.insert(fwd_in.end(), args.begin(), args.end());
  std::vector<Array> outs = detail::eval_ir(*p.regions[1], fwd_in, {});
  const size_t n = p.regions[0]->outputs.size();
  residuals.assign(outs.begin() + static_cast<ptrdiff_t>(n), outs.end());
  outs.resize(n);
  return outs;
}

Cotangents custom_vjp_rule(const RuleArgs& r) {
  const ir::Params& p = r.params;
  const size_t nf = static_cast<size_t>(p.groups[0]), nfwd = static_cast<size_t>(p.groups[1]);
  const size_t nbwd = static_cast<size_t>(p.groups[2]);
  std::vector<Array> bwd_in = slice_of(r.in, nf + nfwd, nbwd);
  bwd_in.insert(bwd_in.end(), r.residuals.begin(), r.residuals.end());
  for (size_t k = 0; k < r.outs.size(); ++k) bwd_in.push_back(ct_or_zeros(r, k));
  const std::vector<Array> cts = detail::eval_ir(*p.regions[2], bwd_in, {});
  Cotangents out(r.in.size());
  for (size_t i = 0; i < cts.size(); ++i) out[nf + nfwd + nbwd + i] = cts[i];
  return out;
}

}  // namespace tracejit::ad

// Batching rules of the higher-order primitives, as JAX batches them. A call stays one call of
// the batched function. A cond on an unbatched index stays a cond whose branches are batched;
// on a batched index every branch runs on all lanes and each lane selects its own branch's
// results. A while_loop keeps its batched carries in the loop; when its predicate is batched
// it runs until every lane is done, and a finished lane keeps its carry (the body's result is
// masked). A scan runs over the xs with the batch axis second, so each step sees a batch. A
// custom_vjp becomes a custom_vjp of its batched programs.
//
// Loop carries: which are batched is the fixed point of "batched in init, or made batched by
// the body", found on the IR (depends_on_batched) before the batched body is traced, so the
// new loop's carry types are known; a carry the body leaves unbatched is given lanes.
#include <algorithm>

#include "base/errors.h"
#include "batch/batch.h"
#include "trace/trace_state.h"
#include "tracejit/control_flow.h"
#include "tracejit/custom_vjp.h"
#include "tracejit/ops.h"

namespace tracejit::batch {
namespace {

using detail::Traced;

Flags part(const Flags& f, size_t from, size_t n) {
  return Flags(f.begin() + static_cast<ptrdiff_t>(from),
               f.begin() + static_cast<ptrdiff_t>(from + n));
}
Flags join(Flags a, const Flags& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Flags unite(Flags a, const Flags& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] || b[i];
  return a;
}
std::vector<Array> join(std::span<const Array> a, std::span<const Array> b) {
  std::vector<Array> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// `v` batched as `want` says, given that it is batched as `is` says.
Array lanes_if(const Array& v, bool is, bool want, int64_t size) {
  TJ_CHECK(want || !is, "batching: a value the dependence analysis left unbatched is batched");
  return want && !is ? broadcast_lanes(v, size) : v;
}
void lanes_if(std::vector<Array>& vs, const Flags& is, const Flags& want, int64_t size) {
  for (size_t k = 0; k < vs.size(); ++k) vs[k] = lanes_if(vs[k], is[k], want[k], size);
}

// Per lane, `on` where the lane's mask (bool[size]) holds, else `off` (both batched).
Array select_lanes(const Array& mask, const Array& on, const Array& off) {
  Shape shape(static_cast<size_t>(on.ndim()), 1);
  shape[0] = mask.shape()[0];
  return where(reshape(mask, shape), on, off);
}

// A lane's value of a scalar: the batched one, or the unbatched one given lanes.
Array lane_scalar(const Array& v, bool is, int64_t size) { return lanes_if(v, is, true, size); }

}  // namespace

std::vector<Array> call_batch(const BatchArgs& a, Flags& out_batched) {
  const ir::Function& f = *a.params.regions[0];
  Traced t = detail::trace_region(f.name, a.in, [&](std::span<const Array> in) {
    auto [outs, flags] = batch_replay(f, in, a.batched, {}, a.size);
    out_batched = flags;
    return outs;
  });
  return detail::bind_call(a.params.text, std::move(t), a.in);
}

std::vector<Array> cond_batch(const BatchArgs& a, Flags& out_batched) {
  const auto& regions = a.params.regions;
  const std::span<const Array> ops = a.in.subspan(1);
  const Flags op_flags = part(a.batched, 1, ops.size());
  const size_t n = regions[0]->outputs.size();
  if (!a.batched[0]) {
    // One branch for all lanes: a cond over batched branches that agree on what is batched.
    Flags want(n, false);
    for (const auto& r : regions) want = unite(want, depends_on_batched(*r, op_flags));
    std::vector<Traced> branches;
    for (const auto& r : regions)
      branches.push_back(detail::trace_region("cond branch (vmap)", ops, [&](std::span<const Array> in) {
        auto [outs, flags] = batch_replay(*r, in, op_flags, {}, a.size);
        lanes_if(outs, flags, want, a.size);
        return outs;
      }));
    out_batched = want;
    return detail::bind_cond(a.in[0], std::move(branches), ops);
  }
  // A branch per lane: every branch on every lane, then each lane takes its own results. The
  // index is clamped into range as cond clamps it.
  const int64_t last = static_cast<int64_t>(regions.size()) - 1;
  const Array index = minimum(maximum(a.in[0], 0), static_cast<int>(last));
  std::vector<Array> results;
  for (int64_t b = last; b >= 0; --b) {
    auto [outs, flags] = batch_replay(*regions[static_cast<size_t>(b)], ops, op_flags, {}, a.size);
    lanes_if(outs, flags, Flags(n, true), a.size);
    if (b == last) {
      results = std::move(outs);
      continue;
    }
    const Array take = index == static_cast<int>(b);
    for (size_t k = 0; k < n; ++k) results[k] = select_lanes(take, outs[k], results[k]);
  }
  out_batched.assign(n, true);
  return results;
}

std::vector<Array> while_batch(const BatchArgs& a, Flags& out_batched) {
  const ir::Params& p = a.params;
  const ir::Function& cond_fn = *p.regions[0];
  const ir::Function& body_fn = *p.regions[1];
  const size_t ncond = static_cast<size_t>(p.groups[0]), nb = static_cast<size_t>(p.groups[1]);
  const size_t nc = a.in.size() - ncond - nb;
  const std::span<const Array> cconsts = a.in.subspan(0, ncond), bconsts = a.in.subspan(ncond, nb);
  const std::span<const Array> init = a.in.subspan(ncond + nb);
  const Flags cf = part(a.batched, 0, ncond), bf = part(a.batched, ncond, nb);
  const Flags init_flags = part(a.batched, ncond + nb, nc);
  Flags kf = init_flags;
  bool batched_pred = false;
  while (true) {
    batched_pred = depends_on_batched(cond_fn, join(cf, kf))[0];
    const Flags next = batched_pred ? Flags(nc, true) : unite(kf, part(depends_on_batched(body_fn, join(bf, kf)), 0, nc));
    if (next == kf) break;
    kf = next;
  }
  std::vector<Array> carry(init.begin(), init.end());
  lanes_if(carry, init_flags, kf, a.size);
  const int64_t size = a.size;

  // The predicate of the batched carry (a bool per lane when batched_pred).
  auto predicate = [&](std::span<const Array> c) {
    auto [outs, flags] = batch_replay(cond_fn, join(cconsts, c.subspan(0, nc)), join(cf, kf), {}, size);
    return batched_pred ? lane_scalar(outs[0], flags[0], size) : outs[0];
  };
  auto step = [&](std::span<const Array> c) {
    auto [outs, flags] = batch_replay(body_fn, join(bconsts, c.subspan(0, nc)), join(bf, kf), {}, size);
    lanes_if(outs, flags, kf, size);
    return outs;
  };
  // A trajectory with a batched predicate needs each lane's own step count: an extra carry.
  const bool count_lanes = batched_pred && p.trajectory;
  if (count_lanes) carry.push_back(zeros({size}, DType::i32));

  Traced cond = detail::trace_region("while_loop cond_fn (vmap)", carry, [&](std::span<const Array> c) {
    Array pred = predicate(c);
    // Some lane still running.
    if (batched_pred) pred = max(astype(pred, DType::i32)) > 0;
    return std::vector<Array>{pred};
  });
  Traced body = detail::trace_region("while_loop body_fn (vmap)", carry, [&](std::span<const Array> c) {
    std::vector<Array> next = step(c);
    if (batched_pred) {
      // A finished lane keeps its carry.
      const Array running = predicate(c);
      for (size_t k = 0; k < nc; ++k) next[k] = select_lanes(running, next[k], c[k]);
      if (count_lanes) next.push_back(c[nc] + astype(running, DType::i32));
    }
    return next;
  });
  std::vector<Array> results =
      detail::bind_while(std::move(cond), std::move(body), carry,
                         detail::abstract_leaves(carry, "while_loop"), p.length, p.trajectory);
  const size_t width = carry.size();
  std::vector<Array> outs(results.begin(), results.begin() + static_cast<ptrdiff_t>(nc));
  out_batched = kf;
  if (p.trajectory) {
    // The step count, then each carry stacked to [length, ...]: the batch axis goes first.
    outs.push_back(count_lanes ? results[nc] : results[width]);
    out_batched.push_back(count_lanes);
    for (size_t k = 0; k < nc; ++k) {
      const Array& rows = results[width + 1 + k];
      outs.push_back(kf[k] ? move_axis(rows, 1, 0) : rows);
      out_batched.push_back(kf[k]);
    }
  }
  return outs;
}

std::vector<Array> scan_batch(const BatchArgs& a, Flags& out_batched) {
  const ir::Params& p = a.params;
  const ir::Function& body_fn = *p.regions[0];
  const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
  const size_t nx = a.in.size() - nk - nc;
  const std::span<const Array> consts = a.in.subspan(0, nk), init = a.in.subspan(nk, nc);
  const Flags kcf = part(a.batched, 0, nk), init_flags = part(a.batched, nk, nc);
  const Flags xf = part(a.batched, nk + nc, nx);
  Flags cf = init_flags;
  while (true) {
    const Flags next = unite(cf, part(depends_on_batched(body_fn, join(join(kcf, cf), xf)), 0, nc));
    if (next == cf) break;
    cf = next;
  }
  std::vector<Array> carry(init.begin(), init.end());
  lanes_if(carry, init_flags, cf, a.size);
  // Batched xs [size, length, ...] are walked as [length, size, ...].
  std::vector<Array> xs;
  for (size_t k = 0; k < nx; ++k) {
    const Array& x = a.in[nk + nc + k];
    xs.push_back(xf[k] ? move_axis(x, 1, 0) : x);
  }
  Flags yf;
  auto step = [&](const std::vector<Array>& c, const std::vector<Array>& x) {
    auto [outs, flags] = batch_replay(body_fn, join(join(consts, c), x), join(join(kcf, cf), xf), {}, a.size);
    std::vector<Array> next(outs.begin(), outs.begin() + static_cast<ptrdiff_t>(nc));
    lanes_if(next, part(flags, 0, nc), cf, a.size);
    std::vector<Array> ys(outs.begin() + static_cast<ptrdiff_t>(nc), outs.end());
    yf = part(flags, nc, ys.size());
    return std::pair<std::vector<Array>, std::vector<Array>>(std::move(next), std::move(ys));
  };
  auto [final_carry, ys] = scan(step, carry, xs, ScanOptions{.length = p.length, .reverse = p.reverse});
  for (size_t k = 0; k < ys.size(); ++k)
    if (yf[k]) ys[k] = move_axis(ys[k], 1, 0);
  out_batched = join(cf, yf);
  final_carry.insert(final_carry.end(), ys.begin(), ys.end());
  return final_carry;
}

// custom_vjp stays a custom_vjp of the batched programs, so grad of the batched function still
// uses the user's bwd. Every result, residual and cotangent is batched (given lanes where the
// replay left it unbatched); the cotangent of an unbatched argument, which every lane shared, is
// the sum of the lanes'.
std::vector<Array> custom_vjp_batch(const BatchArgs& a, Flags& out_batched) {
  const ir::Params& p = a.params;
  const size_t nf = static_cast<size_t>(p.groups[0]), nfwd = static_cast<size_t>(p.groups[1]);
  const size_t nbwd = static_cast<size_t>(p.groups[2]), nconsts = nf + nfwd + nbwd;
  const std::span<const Array> args = a.in.subspan(nconsts);
  const Flags arg_flags = part(a.batched, nconsts, args.size());
  const size_t nout = p.regions[0]->outputs.size();
  const size_t nres = p.regions[1]->outputs.size() - nout;
  // Region r replayed on (its consts, values) with every output batched.
  auto batched = [&](size_t r, size_t first_const, size_t nk, std::span<const Array> values,
                     const Flags& value_flags) {
    std::vector<Array> in(a.in.begin() + static_cast<ptrdiff_t>(first_const),
                          a.in.begin() + static_cast<ptrdiff_t>(first_const + nk));
    in.insert(in.end(), values.begin(), values.end());
    auto [outs, flags] = batch_replay(*p.regions[r], in, join(part(a.batched, first_const, nk), value_flags),
                                      {}, a.size);
    lanes_if(outs, flags, Flags(outs.size(), true), a.size);
    return outs;
  };
  Traced f = detail::trace_region(p.text, args, [&](std::span<const Array> in) {
    return batched(0, 0, nf, in, arg_flags);
  });
  Traced fwd = detail::trace_region(p.text + "_fwd", args, [&](std::span<const Array> in) {
    return batched(1, nf, nfwd, in, arg_flags);
  });
  // bwd over batched residuals and cotangents of the batched results.
  std::vector<ir::Type> bwd_types;
  for (size_t k = 0; k < nres + nout; ++k) {
    const ir::Function& from = k < nres ? *p.regions[1] : *p.regions[0];
    ir::Type t = from.type(from.outputs[k < nres ? nout + k : k - nres]);
    t.shape.insert(t.shape.begin(), a.size);
    bwd_types.push_back(std::move(t));
  }
  Traced bwd = detail::trace_region(p.text + "_bwd", bwd_types, [&](std::span<const Array> in) {
    std::vector<Array> cts = batched(2, nf + nfwd, nbwd, in, Flags(in.size(), true));
    for (size_t i = 0; i < cts.size(); ++i)
      if (!arg_flags[i]) cts[i] = is_float(cts[i].dtype()) ? sum(cts[i], {0}) : cts[i][0];
    return cts;
  });
  out_batched.assign(nout, true);
  return detail::bind_custom_vjp(p.text, std::move(f), std::move(fwd), std::move(bwd), args);
}

}  // namespace tracejit::batch

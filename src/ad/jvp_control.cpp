// JVP rules of the higher-order primitives. Each binds one equation of the same kind that
// computes primals and tangents together: the tangent of a scan is a scan over (carry, carry
// tangent), of a while_loop a while_loop over both (its predicate reads the primal carry only),
// of a cond a cond whose branches return results and tangents. Every float carry gets a tangent
// (zeros where its init has none), so the new loop's carry types are known before its body is
// traced; operands without tangents (consts, xs, branch operands) add nothing.
#include "ad/jvp.h"
#include "base/array_impl.h"
#include "base/errors.h"
#include "trace/replay.h"
#include "trace/trace_state.h"
#include "tracejit/control_flow.h"
#include "tracejit/ops.h"

namespace tracejit::ad {
namespace {

using detail::Traced;

std::span<const Array> part(std::span<const Array> xs, size_t from, size_t n) {
  return xs.subspan(from, n);
}

bool float_leaf(const Array& a) { return is_float(a.dtype()); }

// The tangent-carrying positions of a group of values: valid tangents for operands that take
// them as extra inputs, float values for results that always have one.
std::vector<size_t> with_tangent(std::span<const Array> tangents) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < tangents.size(); ++i)
    if (tangents[i].valid()) idx.push_back(i);
  return idx;
}
std::vector<size_t> floats(std::span<const Array> values) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < values.size(); ++i)
    if (float_leaf(values[i])) idx.push_back(i);
  return idx;
}

// Spreads packed tangents (one per index of `idx`) over `n` positions, invalid elsewhere.
std::vector<Array> spread(std::span<const Array> packed, const std::vector<size_t>& idx, size_t n) {
  std::vector<Array> out(n);
  for (size_t j = 0; j < idx.size(); ++j) out[idx[j]] = packed[j];
  return out;
}
// Appends the tangents at `idx` to `dst`, zeros (shaped like `values`) where they are zero.
void append_tangents(std::vector<Array>& dst, std::span<const Array> tangents,
                     std::span<const Array> values, const std::vector<size_t>& idx) {
  for (size_t i : idx) dst.push_back(tangent_or_zeros(tangents[i], values[i]));
}

std::vector<Array> concat(std::span<const Array> a, std::span<const Array> b) {
  std::vector<Array> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

std::vector<Array> call_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  auto [o, t] = jvp_replay(*a.params.regions[0], a.in, {}, a.tin);
  outs = std::move(o);
  return t;
}

std::vector<Array> cond_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  const std::span<const Array> ops = a.in.subspan(1), tops = a.tin.subspan(1);
  const std::vector<size_t> tin_idx = with_tangent(tops);
  std::vector<Array> operands(ops.begin(), ops.end());
  for (size_t i : tin_idx) operands.push_back(tops[i]);
  std::vector<size_t> tout_idx;
  std::vector<Traced> branches;
  for (const auto& region : a.params.regions) {
    branches.push_back(detail::trace_region("cond branch (jvp)", operands, [&](std::span<const Array> in) {
      std::vector<Array> tangents = spread(in.subspan(ops.size()), tin_idx, ops.size());
      auto [o, t] = jvp_replay(*region, in.subspan(0, ops.size()), {}, tangents);
      tout_idx = floats(o);
      std::vector<Array> result = o;
      append_tangents(result, t, o, tout_idx);
      return result;
    }));
  }
  std::vector<Array> results = detail::bind_cond(a.in[0], std::move(branches), operands);
  const size_t n = results.size() - tout_idx.size();
  outs.assign(results.begin(), results.begin() + static_cast<ptrdiff_t>(n));
  return spread(std::span<const Array>(results).subspan(n), tout_idx, n);
}

std::vector<Array> scan_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  const ir::Params& p = a.params;
  const ir::Function& body = *p.regions[0];
  const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
  const size_t nx = a.in.size() - nk - nc;
  const std::span<const Array> consts = part(a.in, 0, nk), tconsts = part(a.tin, 0, nk);
  const std::span<const Array> init = part(a.in, nk, nc), tinit = part(a.tin, nk, nc);
  const std::span<const Array> xs = part(a.in, nk + nc, nx), txs = part(a.tin, nk + nc, nx);
  const std::vector<size_t> tc_idx = floats(init), tx_idx = with_tangent(txs);
  std::vector<Array> carry(init.begin(), init.end()), xs_all(xs.begin(), xs.end());
  append_tangents(carry, tinit, init, tc_idx);
  for (size_t i : tx_idx) xs_all.push_back(txs[i]);
  std::vector<size_t> ty_idx;

  auto step = [&](const std::vector<Array>& c, const std::vector<Array>& x) {
    std::vector<Array> primals(consts.begin(), consts.end());
    primals.insert(primals.end(), c.begin(), c.begin() + static_cast<ptrdiff_t>(nc));
    primals.insert(primals.end(), x.begin(), x.begin() + static_cast<ptrdiff_t>(nx));
    std::vector<Array> tangents(tconsts.begin(), tconsts.end());
    std::vector<Array> tc = spread(std::span<const Array>(c).subspan(nc), tc_idx, nc);
    std::vector<Array> tx = spread(std::span<const Array>(x).subspan(nx), tx_idx, nx);
    tangents.insert(tangents.end(), tc.begin(), tc.end());
    tangents.insert(tangents.end(), tx.begin(), tx.end());
    auto [o, t] = jvp_replay(body, primals, {}, tangents);
    const std::span<const Array> os(o), ts(t);
    std::vector<Array> next(o.begin(), o.begin() + static_cast<ptrdiff_t>(nc));
    append_tangents(next, ts.subspan(0, nc), os.subspan(0, nc), tc_idx);
    std::vector<Array> ys(o.begin() + static_cast<ptrdiff_t>(nc), o.end());
    ty_idx = floats(ys);
    append_tangents(ys, ts.subspan(nc), os.subspan(nc), ty_idx);
    return std::pair<std::vector<Array>, std::vector<Array>>(std::move(next), std::move(ys));
  };
  auto [final_carry, ys] =
      scan(step, carry, xs_all, ScanOptions{.length = p.length, .reverse = p.reverse});
  const size_t ny = ys.size() - ty_idx.size();
  outs.assign(final_carry.begin(), final_carry.begin() + static_cast<ptrdiff_t>(nc));
  outs.insert(outs.end(), ys.begin(), ys.begin() + static_cast<ptrdiff_t>(ny));
  std::vector<Array> touts = spread(std::span<const Array>(final_carry).subspan(nc), tc_idx, nc);
  std::vector<Array> tys = spread(std::span<const Array>(ys).subspan(ny), ty_idx, ny);
  touts.insert(touts.end(), tys.begin(), tys.end());
  return touts;
}

std::vector<Array> while_jvp(const JvpArgs& a, std::vector<Array>& outs) {
  const ir::Params& p = a.params;
  const size_t ncond = static_cast<size_t>(p.groups[0]), nb = static_cast<size_t>(p.groups[1]);
  const size_t nc = a.in.size() - ncond - nb;
  const std::span<const Array> cconsts = part(a.in, 0, ncond);
  const std::span<const Array> bconsts = part(a.in, ncond, nb), tb = part(a.tin, ncond, nb);
  const std::span<const Array> init = part(a.in, ncond + nb, nc), tinit = part(a.tin, ncond + nb, nc);
  const std::vector<size_t> tc_idx = floats(init);
  std::vector<Array> carry(init.begin(), init.end());
  append_tangents(carry, tinit, init, tc_idx);

  Traced cond = detail::trace_region("while_loop cond_fn (jvp)", carry, [&](std::span<const Array> c) {
    return detail::eval_ir(*p.regions[0], concat(cconsts, c.subspan(0, nc)), {});
  });
  Traced body = detail::trace_region("while_loop body_fn (jvp)", carry, [&](std::span<const Array> c) {
    std::vector<Array> tangents(tb.begin(), tb.end());
    std::vector<Array> tc = spread(c.subspan(nc), tc_idx, nc);
    tangents.insert(tangents.end(), tc.begin(), tc.end());
    auto [o, t] = jvp_replay(*p.regions[1], concat(bconsts, c.subspan(0, nc)), {}, tangents);
    append_tangents(o, t, std::vector<Array>(o), tc_idx);
    return o;
  });
  std::vector<Array> results =
      detail::bind_while(std::move(cond), std::move(body), carry,
                         detail::abstract_leaves(carry, "while_loop"), p.length, p.trajectory);
  // Results: the carry and its tangents; with a trajectory also the step count and both
  // stacked, in the same order.
  const std::span<const Array> rs(results);
  const size_t width = nc + tc_idx.size();
  outs.assign(results.begin(), results.begin() + static_cast<ptrdiff_t>(nc));
  std::vector<Array> touts = spread(rs.subspan(nc, tc_idx.size()), tc_idx, nc);
  if (p.trajectory) {
    outs.push_back(results[width]);
    touts.push_back(Array());
    const std::span<const Array> traj = rs.subspan(width + 1);
    outs.insert(outs.end(), traj.begin(), traj.begin() + static_cast<ptrdiff_t>(nc));
    std::vector<Array> ttraj = spread(traj.subspan(nc), tc_idx, nc);
    touts.insert(touts.end(), ttraj.begin(), ttraj.end());
  }
  return touts;
}

}  // namespace tracejit::ad

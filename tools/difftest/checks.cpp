// The four checks of issue 6 (see checks.h), each a function of the program and its inputs.
#include "checks.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "error_bound.h"
#include "evaluator.h"
#include "generator.h"
#include "ir/ir.h"
#include "passes/pipeline.h"
#include "rng.h"

namespace difftest {
namespace {

// Random directions per program for finite differences.
constexpr int kFdDirections = 2;
// The f64 backward pass rounds too: relative to the sum of |g_i v_i| and the difference
// quotient, its error stays far below this (a wrong rule is off by O(1) of them).
constexpr double kAdRelative = 1e-9;
// See directional().
constexpr double kUnsettled = 0.05;

const tj::JitOptions kJitOptions{.name = "difftest", .warn_constant_outputs = false};

std::optional<Mismatch> fail(const char* check, std::string detail) {
  return Mismatch{check, std::move(detail)};
}

// The program's outputs reduced to one f64 scalar: sum over float outputs of sum(out * ct).
struct LossFn {
  ProgramFn f;
  std::vector<Array> cts;  // per output leaf; invalid for integer and bool outputs

  Array operator()(const DiffArgs& x, const OtherArgs& y) const {
    std::vector<Array> outs = leaves(f(x, y));
    Array total = tj::zeros({}, DType::f64);
    for (size_t k = 0; k < outs.size(); ++k)
      if (cts[k].valid()) total = total + tj::astype(tj::sum(outs[k] * cts[k]), DType::f64);
    return total;
  }
};

// Random cotangents in [-1, 1] for the float outputs, the same for a program and its shrunk
// versions (seeded by its id).
std::vector<Array> cotangents(const Program& p, const std::vector<Array>& outs) {
  SeededRng rng(p.id * 0x9E3779B97F4A7C15ull + 17);
  std::vector<Array> cts;
  for (const Array& o : outs) {
    if (!tj::is_float(o.dtype())) {
      cts.emplace_back();
      continue;
    }
    std::vector<double> v(static_cast<size_t>(o.size()));
    for (double& x : v) x = rng.real(-1, 1);
    cts.push_back(tj::astype(tj::array(v, o.shape()), o.dtype()));
  }
  return cts;
}

std::optional<Mismatch> check_passes(const tj::ir::Function& traced, const char* what) {
  tj::ir::Function live = traced;
  tj::passes::dce(live);
  tj::ir::Function optimized;
  try {
    optimized = tj::passes::optimize(traced);
    tj::ir::verify(optimized, "difftest");
  } catch (const std::exception& e) {
    return fail("passes", absl::StrCat("optimizing the IR of ", what, ": ", e.what()));
  }
  if (optimized.eqns.size() > live.eqns.size())
    return fail("passes", absl::StrCat("the optimized IR of ", what, " has ", optimized.eqns.size(),
                                       " equations, the live part of the traced IR ",
                                       live.eqns.size(), ":\n", tj::ir::to_string(optimized)));
  return std::nullopt;
}

// Compares every output with its bound; names `what` in the message.
std::optional<Mismatch> compare(const char* check, const std::string& what,
                                const std::vector<Array>& got, const std::vector<Bounded>& want,
                                CheckStats& stats) {
  if (got.size() != want.size())
    return fail(check, absl::StrCat(what, " has ", got.size(), " leaves, want ", want.size()));
  for (size_t k = 0; k < got.size(); ++k)
    if (std::string d = first_difference(got[k], want[k], &stats.compared, &stats.unknown);
        !d.empty())
      return fail(check, absl::StrCat(what, ", leaf ", k, ": ", d));
  return std::nullopt;
}

std::optional<Mismatch> compare_bits(const char* check, const std::string& what,
                                     const std::vector<Array>& got,
                                     const std::vector<Array>& want) {
  if (got.size() != want.size())
    return fail(check, absl::StrCat(what, " has ", got.size(), " leaves, want ", want.size()));
  for (size_t k = 0; k < got.size(); ++k)
    if (std::string d = first_bit_difference(got[k], want[k]); !d.empty())
      return fail(check, absl::StrCat(what, ", leaf ", k, ": ", d));
  return std::nullopt;
}

std::vector<Array> values(const std::vector<Bounded>& b) {
  std::vector<Array> v;
  for (const Bounded& x : b) v.push_back(x.value);
  return v;
}

// An f64 array shaped like `a` with elements uniform in [-1, 1].
Array random_like(const Array& a, Rng& rng) {
  std::vector<double> v(static_cast<size_t>(a.size()));
  for (double& x : v) x = rng.real(-1, 1);
  return tj::array(v, a.shape());
}

// h(x) = <grad L(x), u>, whose gradient is L's Hessian times u.
struct GradDotFn {
  LossFn loss;
  std::vector<Array> u;  // one per leaf of argument 0

  Array operator()(const DiffArgs& x, const OtherArgs& y) const {
    std::vector<Array> g = tj::tree_leaves(tj::grad(loss)(x, y));
    Array total = tj::zeros({}, DType::f64);
    for (size_t k = 0; k < g.size(); ++k) total = total + tj::sum(g[k] * u[k]);
    return total;
  }
};

// The scalar L = sum_k <ct_k, out_k> of the outputs of `fn` at inputs `in`, and a bound on its
// rounding error (kRoundingOfVarying, the first `varying` inputs moving), this sum's included.
std::pair<double, double> contracted(const tj::ir::Function& fn, const std::vector<Array>& in,
                                     size_t varying, const std::vector<Array>& cts) {
  std::vector<bool> vary(in.size(), false);
  std::fill(vary.begin(), vary.begin() + static_cast<ptrdiff_t>(varying), true);
  std::vector<Bounded> out = eval_with_bounds(fn, in, ErrorModel::kRoundingOfVarying, vary);
  double value = 0, err = 0, mag = 0, terms = 0;
  for (size_t k = 0; k < out.size(); ++k) {
    if (!cts[k].valid()) continue;
    std::vector<double> o = out[k].value.to_vector<double>(), c = cts[k].to_vector<double>();
    for (size_t j = 0; j < o.size(); ++j) {
      value += c[j] * o[j];
      err += std::fabs(c[j]) * out[k].err[j];
      mag += std::fabs(c[j] * o[j]);
      terms += 1;
    }
  }
  return {value, err + 2 * terms * 0x1p-53 * mag};
}

// Compares the directional derivative <g, v> that AD gave (g: one array per leaf of x) along
// a random direction v with the central differences D(t) = (L(x + tv) - L(x - tv)) / 2t of
// L = contracted(fn, ...). Tolerance: the rounding noise of D(t/2) (L's error bound at both
// points, over t), twice |D(t) - D(t/2)| with both noises (D(t) - D(t/2) is 3 times D(t/2)'s
// truncation error for a smooth L), and the f64 backward pass's own rounding. Returns a
// description of the disagreement, or an empty string.
// With `settle` (programs with loops, whose carry maps compound their gains over the steps), a
// direction along which D(t) and D(t/2) differ by more than kUnsettled of their size is not
// resolved at these steps and is skipped (*skipped set): such quotients validate nothing.
// A random direction in [-1, 1] per element of each leaf of x.
using Direction = std::vector<std::vector<double>>;
Direction random_direction(const DiffArgs& x, Rng& rng) {
  Direction v;
  for (const Array& leaf : tj::tree_leaves(x)) {
    std::vector<double> vi(static_cast<size_t>(leaf.size()));
    for (double& e : vi) e = rng.real(-1, 1);
    v.push_back(std::move(vi));
  }
  return v;
}

// The same comparison for a directional derivative `ad` that AD gave along `v` (ad_mag: the
// sum of the magnitudes of its terms, for the backward pass's rounding).
std::string directional_along(const tj::ir::Function& fn, const DiffArgs& x, const OtherArgs& y,
                              const std::vector<Array>& cts, const Direction& v, double ad,
                              double ad_mag, bool settle, bool* skipped);

std::string directional(const tj::ir::Function& fn, const DiffArgs& x, const OtherArgs& y,
                        const std::vector<Array>& cts, const std::vector<Array>& g, Rng& rng,
                        bool settle, bool* skipped) {
  const Direction v = random_direction(x, rng);
  double ad = 0, ad_mag = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    std::vector<double> gi = g[i].to_vector<double>();
    for (size_t j = 0; j < gi.size(); ++j) {
      ad += gi[j] * v[i][j];
      ad_mag += std::fabs(gi[j] * v[i][j]);
    }
  }
  return directional_along(fn, x, y, cts, v, ad, ad_mag, settle, skipped);
}

std::string directional_along(const tj::ir::Function& fn, const DiffArgs& x, const OtherArgs& y,
                              const std::vector<Array>& cts, const Direction& v, double ad,
                              double ad_mag, bool settle, bool* skipped) {
  const std::vector<Array> xs = tj::tree_leaves(x);
  auto at = [&](double t) {
    std::vector<Array> in;
    for (size_t i = 0; i < xs.size(); ++i) {
      std::vector<double> p = xs[i].to_vector<double>();
      for (size_t j = 0; j < p.size(); ++j) p[j] += t * v[i][j];
      in.push_back(xs[i].weak_type() ? Array(p[0]) : tj::array(p, xs[i].shape()));
    }
    in.insert(in.end(), y.begin(), y.end());
    return contracted(fn, in, xs.size(), cts);
  };
  auto quotient = [&](double t) {
    auto [lp, ep] = at(t);
    auto [lm, em] = at(-t);
    return std::pair{(lp - lm) / (2 * t), (ep + em) / (2 * t)};
  };
  auto [d1, r1] = quotient(kFdStep);
  auto [d2, r2] = quotient(kFdStep / 2);
  *skipped = settle && std::fabs(d1 - d2) > kUnsettled * (std::fabs(d1) + std::fabs(d2)) + r1 + r2;
  if (*skipped) return "";
  const double tol =
      r2 + 2 * (std::fabs(d1 - d2) + r1 + r2) + kAdRelative * (ad_mag + std::fabs(d2));
  if (std::fabs(ad - d2) <= tol) return "";
  return absl::StrFormat("AD gives %.17g, central differences %.17g (step %g: %.17g) within %.3g",
                         ad, d2, kFdStep, d1, tol);
}

class Checker {
 public:
  Checker(const Program& p, CheckStats& stats)
      : p_(p),
        program_(std::make_shared<const Program>(p)),
        f_{program_, std::nullopt},
        stats_(stats) {
    std::tie(x_, y_) = make_args(p);
    for_each_node(p, [&](const Node& n) { loops_ = loops_ || (is_control(n.op) && n.op != Op::kCond); });
  }

  std::optional<Mismatch> run(const CheckOptions& o) {
    auto wanted = [&](const char* name) { return o.only.empty() || o.only == name; };
    try {
      stage_ = "eager f";
      eager_ = leaves(f_(x_, y_));  // checks every value's type against the rules
      stage_ = "make_ir(f)";
      tj::IR ir = tj::make_ir(f_)(x_, y_);
      if (o.jit && wanted("jit"))
        if (auto m = check_jit(ir.function())) return m;
      if (o.jit && wanted("passes"))
        if (auto m = check_passes(ir.function(), "f")) return m;
      if (o.jit && wanted("vmap"))
        if (auto m = check_vmap()) return m;
      cts_ = cotangents(p_, eager_);
      bool float_out = false;
      for (const Array& c : cts_) float_out = float_out || c.valid();
      if (!o.grad || !float_out || tj::tree_leaves(x_).empty()) return std::nullopt;
      ++stats_.grad_programs;
      LossFn loss{f_, cts_};
      stage_ = "make_ir(grad(f))";
      tj::IR gir = tj::make_ir(tj::grad(loss))(x_, y_);
      if (wanted("grad"))
        if (auto m = check_grad(loss, gir.function())) return m;
      if (wanted("passes"))
        if (auto m = check_passes(gir.function(), "grad(f)")) return m;
      if (p_.smooth && wanted("fd"))
        if (auto m = check_fd()) return m;
      if (p_.smooth && wanted("hvp"))
        if (auto m = check_hvp()) return m;
      if (p_.smooth && wanted("jvp"))
        if (auto m = check_jvp()) return m;
    } catch (const TypeMismatch& e) {
      return fail("types", e.what());
    } catch (const std::exception& e) {
      return fail("exception", absl::StrCat("in ", stage_, ": ", e.what()));
    }
    return std::nullopt;
  }

 private:
  std::optional<Mismatch> check_jit(const tj::ir::Function& traced) {
    stage_ = "the bounds of f";
    std::vector<Bounded> want =
        eval_with_bounds(traced, leaves(x_, y_), ErrorModel::kCompiledVsEager);
    if (auto m =
            compare_bits("jit", "the traced IR, replayed, against eager f", values(want), eager_))
      return m;
    stage_ = "jit(f)";
    auto jitted = tj::jit(f_, kJitOptions);
    std::vector<Array> first = leaves(jitted(x_, y_));
    std::vector<Array> second = leaves(jitted(x_, y_));
    tj::JitStats s = jitted.stats();
    stats_.compiles += s.compiles;
    if (auto m = compare("jit", "jit(f) against eager f", first, want, stats_)) return m;
    if (auto m = compare_bits("jit", "a second call of jit(f) against the first", second, first))
      return m;
    // Code loaded from a disk cache (a run under TRACEJIT_CACHE_DIR) stands for the compile.
    if (s.compiles + s.disk_hits != 1 || s.cache_hits != 1)
      return fail("jit", absl::StrCat("two calls of jit(f) with one signature: ", s.compiles,
                                      " compiles, ", s.disk_hits, " disk cache loads and ",
                                      s.cache_hits, " cache hits, want 1 in all and 1"));
    stage_ = "jit(jit(f))";
    auto nested = tj::jit(tj::jit(f_, kJitOptions), kJitOptions);
    std::vector<Array> third = leaves(nested(x_, y_));
    stats_.compiles += nested.stats().compiles;
    return compare("jit", "jit(jit(f)) against eager f", third, want, stats_);
  }

  std::optional<Mismatch> check_grad(const LossFn& loss, const tj::ir::Function& traced) {
    stage_ = "grad(f)";
    std::vector<Array> g = tj::tree_leaves(tj::grad(loss)(x_, y_));
    stage_ = "value_and_grad(jit(f))";
    auto [value, grad] = tj::value_and_grad(tj::jit(loss, kJitOptions))(x_, y_);
    if (auto m = compare_bits("grad", "value_and_grad(jit(f)): the value against f", {value},
                              {loss(x_, y_)}))
      return m;
    if (auto m = compare_bits("grad", "value_and_grad(jit(f)): the gradient against grad(f)",
                              tj::tree_leaves(grad), g))
      return m;
    stage_ = "the bounds of grad(f)";
    std::vector<Bounded> want =
        eval_with_bounds(traced, leaves(x_, y_), ErrorModel::kCompiledVsEager);
    if (auto m = compare_bits("grad", "the traced IR of grad(f), replayed, against grad(f)",
                              values(want), g))
      return m;
    stage_ = "jit(grad(f))";
    auto jg = tj::jit(tj::grad(loss), kJitOptions);
    std::vector<Array> got = tj::tree_leaves(jg(x_, y_));
    stats_.compiles += jg.stats().compiles;
    return compare("grad", "jit(grad(f)) against grad(f)", got, want, stats_);
  }

  // vjp of the f64 instance, pulled back from the cotangents, along random directions.
  std::optional<Mismatch> check_fd() {
    stage_ = "vjp of the f64 instance";
    ProgramFn f64fn{program_, DType::f64};
    const auto [x, y] = make_args(p_, DType::f64);
    auto [outs, vjp_fn] = tj::vjp(f64fn, x, y);
    std::vector<Array> cts = f64_cotangents();
    Outputs ct_tree = outs;
    {
      size_t k = 0;
      for (Array& a : ct_tree.first) a = cts[k].valid() ? cts[k] : tj::zeros_like(a), ++k;
      for (auto& [key, a] : ct_tree.second) a = cts[k].valid() ? cts[k] : tj::zeros_like(a), ++k;
    }
    const std::vector<Array> g = tj::tree_leaves(std::get<0>(vjp_fn(ct_tree)));
    stage_ = "finite differences";
    const tj::IR ir = tj::make_ir(f64fn)(x, y);
    SeededRng rng(p_.id * 0x2545F4914F6CDD1Dull + 3);
    for (int dir = 0; dir < kFdDirections; ++dir) {
      ++stats_.fd_directions;
      bool skipped = false;
      if (std::string d = directional(ir.function(), x, y, cts, g, rng, loops_, &skipped);
          !d.empty())
        return fail("fd", absl::StrCat("vjp along direction ", dir, ": ", d));
      stats_.fd_unsettled += skipped;
    }
    return std::nullopt;
  }

  // grad(grad(f)): the gradient of h(x) = <grad L(x), u> is the Hessian of L times u; along a
  // random direction it must match central differences of h, as check_fd does for L.
  std::optional<Mismatch> check_hvp() {
    stage_ = "grad(grad(f)) of the f64 instance";
    const auto [x, y] = make_args(p_, DType::f64);
    GradDotFn h{LossFn{ProgramFn{program_, DType::f64}, f64_cotangents()}, {}};
    SeededRng rng(p_.id * 0x2545F4914F6CDD1Dull + 5);
    for (const Array& leaf : tj::tree_leaves(x)) h.u.push_back(random_like(leaf, rng));
    const std::vector<Array> hu = tj::tree_leaves(tj::grad(h)(x, y));
    stage_ = "finite differences of grad(f)";
    const tj::IR ir = tj::make_ir(h)(x, y);
    ++stats_.fd_directions;
    bool skipped = false;
    if (std::string d = directional(ir.function(), x, y, {tj::ones({}, DType::f64)}, hu, rng,
                                    loops_, &skipped);
        !d.empty())
      return fail("hvp", absl::StrCat("grad(grad(f)) along a direction: ", d));
    stats_.fd_unsettled += skipped;
    return std::nullopt;
  }

  // jvp of the f64 instance's contracted output along a random direction of x (y's tangents
  // zero) against central differences along the same direction.
  std::optional<Mismatch> check_jvp() {
    stage_ = "jvp of the f64 instance";
    const auto [x, y] = make_args(p_, DType::f64);
    const std::vector<Array> cts = f64_cotangents();
    LossFn loss{ProgramFn{program_, DType::f64}, cts};
    SeededRng rng(p_.id * 0x2545F4914F6CDD1Dull + 7);
    const Direction v = random_direction(x, rng);
    std::vector<Array> tx;
    const std::vector<Array> xs = tj::tree_leaves(x);
    for (size_t i = 0; i < xs.size(); ++i)
      tx.push_back(xs[i].weak_type() ? Array(v[i][0]) : tj::array(v[i], xs[i].shape()));
    const DiffArgs tangent_x = tj::tree_unflatten<DiffArgs>(tj::tree_flatten(x).def, tx);
    OtherArgs tangent_y;
    for (const Array& a : y) tangent_y.push_back(tj::zeros_like(a));
    const Array t = tj::jvp(loss, std::tuple{x, y}, std::tuple{tangent_x, tangent_y}).second;
    const double ad = t.item<double>();
    stage_ = "finite differences for jvp";
    const tj::IR ir = tj::make_ir(ProgramFn{program_, DType::f64})(x, y);
    ++stats_.jvp_directions;
    bool skipped = false;
    if (std::string d = directional_along(ir.function(), x, y, cts, v, ad, std::fabs(ad), loops_, &skipped);
        !d.empty())
      return fail("jvp", absl::StrCat("jvp along a direction: ", d));
    stats_.fd_unsettled += skipped;
    return std::nullopt;
  }

  // The program's arguments with fresh values, drawn from each input's range, for the
  // arguments `fresh` names (the others, and inputs that may hold special values, keep theirs).
  std::pair<DiffArgs, OtherArgs> lane_args(Rng& rng, const bool fresh[2]) const {
    std::pair<DiffArgs, OtherArgs> args = make_args(p_);
    std::vector<Array> xl = tj::tree_leaves(args.first);
    size_t xi = 0, yi = 0;
    for (const Node& n : p_.nodes) {
      if (n.op != Op::kInput) continue;
      Array& leaf = n.slot.arg == 1 ? args.second[yi++] : xl[xi++];
      const Interval r = n.facts.range;
      if (!fresh[n.slot.arg] || n.facts.special || !std::isfinite(r.lo) || !std::isfinite(r.hi)) continue;
      std::vector<double> v(static_cast<size_t>(leaf.size()));
      for (double& e : v)
        e = tj::is_float(leaf.dtype()) ? rng.real(r.lo, r.hi)
                                       : static_cast<double>(rng.uniform(static_cast<int64_t>(r.lo),
                                                                         static_cast<int64_t>(r.hi)));
      leaf = tj::astype(tj::array(v, leaf.shape()), leaf.dtype());
    }
    args.first = tj::tree_unflatten<DiffArgs>(tj::tree_flatten(args.first).def, xl);
    return args;
  }

  // vmap(f) and jit(vmap(f)) over lanes of fresh argument values, mapped on random axes, against
  // each lane's eager f within the kCompiledVsEager bounds. An argument with weakly typed
  // leaves stays unmapped: its lanes would be strongly typed, another program.
  std::optional<Mismatch> check_vmap() {
    constexpr int64_t kLanes = 3;
    stage_ = "vmap(f)";
    SeededRng rng(p_.id * 0x9E3779B97F4A7C15ull + 29);
    const std::vector<Array> arg_leaves[2] = {tj::tree_leaves(x_), y_};
    std::optional<int> axes[2];
    bool mappable[2];
    for (int a = 0; a < 2; ++a) {
      mappable[a] = !arg_leaves[a].empty() &&
                    std::none_of(arg_leaves[a].begin(), arg_leaves[a].end(),
                                 [](const Array& l) { return l.weak_type(); });
      const int choice = static_cast<int>(rng.uniform(0, 2));
      if (mappable[a] && choice > 0) axes[a] = choice == 1 ? 0 : -1;
    }
    if (!axes[0] && !axes[1]) {
      const int a = mappable[0] ? 0 : mappable[1] ? 1 : -1;
      if (a < 0) return std::nullopt;
      axes[a] = 0;
    }
    const bool fresh[2] = {axes[0].has_value(), axes[1].has_value()};
    std::vector<std::pair<DiffArgs, OtherArgs>> lanes;
    for (int64_t b = 0; b < kLanes; ++b) lanes.push_back(lane_args(rng, fresh));
    // Each leaf's lanes stacked at its argument's axis.
    auto stacked = [&](int a, size_t i) {
      std::vector<Array> parts;
      for (const auto& l : lanes) {
        const Array leaf = a == 0 ? tj::tree_leaves(l.first)[i] : l.second[i];
        if (!axes[a]) return leaf;
        Shape s = leaf.shape();
        s.insert(*axes[a] == 0 ? s.begin() : s.end(), 1);
        parts.push_back(tj::reshape(leaf, s));
      }
      return tj::concatenate(parts, *axes[a] == 0 ? 0 : -1);
    };
    std::vector<Array> bx, by;
    for (size_t i = 0; i < arg_leaves[0].size(); ++i) bx.push_back(stacked(0, i));
    for (size_t i = 0; i < arg_leaves[1].size(); ++i) by.push_back(stacked(1, i));
    const DiffArgs batched_x = tj::tree_unflatten<DiffArgs>(tj::tree_flatten(x_).def, bx);
    const int out_axis = rng.chance(0.5) ? 0 : -1;
    auto vf = tj::vmap(f_, tj::VmapOptions{.in_axes = {axes[0], axes[1]}, .out_axes = out_axis});
    const std::vector<Array> got = leaves(vf(batched_x, by));
    stage_ = "jit(vmap(f))";
    auto jvf = tj::jit(vf, kJitOptions);
    const std::vector<Array> got_jit = leaves(jvf(batched_x, by));
    stats_.compiles += jvf.stats().compiles;
    ++stats_.vmap_programs;
    for (int64_t b = 0; b < kLanes; ++b) {
      stage_ = "the bounds of a lane of vmap(f)";
      const auto& [lx, ly] = lanes[static_cast<size_t>(b)];
      const tj::IR ir = tj::make_ir(f_)(lx, ly);
      const std::vector<Bounded> want = eval_with_bounds(ir.function(), leaves(lx, ly), ErrorModel::kCompiledVsEager);
      auto lane_of = [&](const std::vector<Array>& outs) {
        std::vector<Array> lane;
        for (const Array& o : outs) {
          const int64_t axis = out_axis == 0 ? 0 : o.ndim() - 1;
          tj::Axes starts(static_cast<size_t>(o.ndim()), 0), limits(o.shape().begin(), o.shape().end());
          starts[static_cast<size_t>(axis)] = b;
          limits[static_cast<size_t>(axis)] = b + 1;
          Shape s = o.shape();
          s.erase(s.begin() + axis);
          lane.push_back(tj::reshape(tj::slice(o, starts, limits), s));
        }
        return lane;
      };
      const std::string what = absl::StrCat(" lane ", b, " (in_axes ", axes[0] ? absl::StrCat(*axes[0]) : "none",
                                            ", ", axes[1] ? absl::StrCat(*axes[1]) : "none", ")");
      if (auto m = compare("vmap", "vmap(f)" + what, lane_of(got), want, stats_)) return m;
      if (auto m = compare("vmap", "jit(vmap(f))" + what, lane_of(got_jit), want, stats_)) return m;
    }
    return std::nullopt;
  }

  std::vector<Array> f64_cotangents() const {
    std::vector<Array> cts;
    for (const Array& c : cts_) cts.push_back(c.valid() ? tj::astype(c, DType::f64) : Array());
    return cts;
  }

  const Program& p_;
  std::shared_ptr<const Program> program_;
  ProgramFn f_;
  CheckStats& stats_;
  DiffArgs x_;
  OtherArgs y_;
  std::vector<Array> eager_, cts_;
  const char* stage_ = "";  // what ran when an exception was thrown
  bool loops_ = false;      // the program has a loop
};

}  // namespace

std::optional<Mismatch> check_program(const Program& p, const CheckOptions& options,
                                      CheckStats& stats) {
  const bool partitionable = tj::random::threefry_partitionable();
  tj::random::set_threefry_partitionable(!p.threefry_original);
  std::optional<Mismatch> m = Checker(p, stats).run(options);
  tj::random::set_threefry_partitionable(partitionable);
  return m;
}

}  // namespace difftest

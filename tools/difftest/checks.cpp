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
std::string directional(const tj::ir::Function& fn, const DiffArgs& x, const OtherArgs& y,
                        const std::vector<Array>& cts, const std::vector<Array>& g, Rng& rng,
                        bool settle, bool* skipped) {
  const std::vector<Array> xs = tj::tree_leaves(x);
  std::vector<std::vector<double>> v;
  double ad = 0, ad_mag = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<double> gi = g[i].to_vector<double>(), vi(gi.size());
    for (size_t j = 0; j < vi.size(); ++j) {
      vi[j] = rng.real(-1, 1);
      ad += gi[j] * vi[j];
      ad_mag += std::fabs(gi[j] * vi[j]);
    }
    v.push_back(std::move(vi));
  }
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
    if (s.compiles != 1 || s.cache_hits != 1)
      return fail("jit", absl::StrCat("two calls of jit(f) with one signature: ", s.compiles,
                                      " compiles and ", s.cache_hits, " cache hits, want 1 and 1"));
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

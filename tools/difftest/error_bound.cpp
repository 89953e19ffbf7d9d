// Error bounds per primitive. For an elementwise primitive y = f(x) whose operands carry bounds
// e, the result's bound is what f can move over [x - e, x + e] (from f's derivative there, or
// f's range), plus what computing f may itself contribute (ErrorModel). Layout primitives move
// bounds with their elements; reductions and matmul add their operands' bounds and the
// rounding of their own accumulation. Integer and bool results are exact or unknown.
#include "error_bound.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/array_impl.h"
#include "trace/eager.h"
#include "tracejit/ops.h"

namespace difftest {
namespace {

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::ir::Prim;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Stated tolerances, in ulps of the result's magnitude:
// f32 exp/log/log1p/tanh compile to Cephes-style polynomials, within 2 ulps of the true
// value; glibc's float functions are within 1: the two differ by less than 3. (Measured over
// every 7th f32 of each function's domain: at most 1 ulp for exp and log, 2 for log1p and tanh.)
constexpr double kPolyUlps = 3;
// LLVM may rewrite pow(x, 2) as x * x and similar (correctly rounded); glibc's pow is within
// 1 ulp of the true value.
constexpr double kPowUlps = 2;
// When operands differ, two correctly rounded results differ by at most 1 ulp more than the
// exact results do; two libm results (each within 1 ulp) by 2.
constexpr double kRoundUlps = 1;
constexpr double kLibmUlps = 2;

// The spacing of floats of dtype `d` around magnitude m (at least the smallest subnormal).
double ulp(double m, DType d) {
  const int digits = d == DType::f32 ? 24 : 53, min_exp = d == DType::f32 ? -149 : -1074;
  if (!std::isfinite(m)) return kInf;
  int e = 0;
  std::frexp(m, &e);  // m = f * 2^e, f in [0.5, 1)
  return std::ldexp(1.0, std::max(e - digits, min_exp));
}
double unit_roundoff(DType d) { return d == DType::f32 ? 0x1p-24 : 0x1p-53; }

bool is_libm(Prim p) {
  switch (p) {
    case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin: case Prim::kCos:
    case Prim::kTanh:
    case Prim::kPow: return true;
    default: return false;
  }
}

std::vector<double> host(const Array& a) { return a.to_vector<double>(); }
Array f64(const std::vector<double>& v, const tj::Shape& s) { return tj::array(v, s); }

class Interpreter {
 public:
  Interpreter(const tj::ir::Function& fn, ErrorModel model) : fn_(fn), model_(model) {
    const size_t n = static_cast<size_t>(fn.num_vars());
    val_.resize(n);
    err_.resize(n);
    vary_.assign(n, false);
  }

  std::vector<Bounded> run(std::span<const Array> inputs, const std::vector<bool>& varying) {
    std::vector<Valued> in;
    for (size_t i = 0; i < inputs.size(); ++i)
      in.push_back({inputs[i], std::vector<double>(static_cast<size_t>(inputs[i].size()), 0.0),
                    i < varying.size() && varying[i]});
    std::vector<Bounded> out;
    for (Valued& v : run(in)) out.push_back({std::move(v.value), std::move(v.err)});
    return out;
  }

 private:
  // A value with its per-element bound, and whether it depends on a varying input.
  struct Valued {
    Array value;
    std::vector<double> err;
    bool vary = false;
  };

  std::vector<Valued> run(std::span<const Valued> inputs) {
    for (size_t i = 0; i < fn_.inputs.size(); ++i) set(fn_.inputs[i], inputs[i]);
    for (size_t i = 0; i < fn_.const_vars.size(); ++i)
      set(fn_.const_vars[i], {tracejit::detail::array_over(fn_.type(fn_.const_vars[i]), fn_.const_values[i]), {}, false});
    for (const tj::ir::Eqn& e : fn_.eqns) {
      if (e.out.empty()) continue;  // an effect (debug_print): nothing to bound
      std::vector<Array> in;
      bool vary = false;
      for (tj::ir::VarId v : e.in) {
        in.push_back(val_[static_cast<size_t>(v)]);
        vary = vary || vary_[static_cast<size_t>(v)];
      }
      if (tj::ir::has_regions(e.prim)) {
        std::vector<Valued> outs = region(e);
        for (size_t k = 0; k < e.out.size(); ++k) set(e.out[k], std::move(outs[k]));
        continue;
      }
      const size_t o = static_cast<size_t>(e.out[0]);
      val_[o] = tj::detail::eval_eager(e.prim, in, e.params, std::span(&fn_.type(e.out[0]), 1))[0];
      vary_[o] = vary;
      err_[o] = bound(e, in);
      for (double& x : err_[o])
        if (std::isnan(x) || (x > 0 && !is_float(val_[o].dtype()))) x = kInf;
    }
    std::vector<Valued> out;
    for (tj::ir::VarId v : fn_.outputs)
      out.push_back({val_[static_cast<size_t>(v)], err_[static_cast<size_t>(v)],
                     vary_[static_cast<size_t>(v)]});
    return out;
  }

  void set(tj::ir::VarId v, Valued a) {
    if (a.err.size() != static_cast<size_t>(a.value.size()))
      a.err.assign(static_cast<size_t>(a.value.size()), 0.0);
    for (double& x : a.err)
      if (std::isnan(x) || (x > 0 && !is_float(a.value.dtype()))) x = kInf;
    val_[static_cast<size_t>(v)] = std::move(a.value);
    err_[static_cast<size_t>(v)] = std::move(a.err);
    vary_[static_cast<size_t>(v)] = a.vary;
  }

  // ---- Higher-order primitives ----
  //
  // Regions are interpreted here, step by step, with the same per-primitive bounds: a loop's
  // carry takes its bound from one step into the next. Compiled code takes the same path as
  // eager evaluation when every branch index and loop predicate it computed is exact (a zero
  // bound); where one may differ, every result is unknown.

  std::vector<Valued> sub(const tj::ir::Function& fn, std::span<const Valued> in) const {
    return Interpreter(fn, model_).run(in);
  }

  static std::vector<Valued> concat(std::span<const Valued> a, std::span<const Valued> b) {
    std::vector<Valued> out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
  }

  static bool exact(const Valued& v) {
    return std::all_of(v.err.begin(), v.err.end(), [](double x) { return x == 0; });
  }

  // Row i of a stacked value (its leading axis dropped).
  static Valued row(const Valued& x, int64_t i) {
    const int64_t n = x.value.shape()[0] == 0 ? 0 : x.value.size() / x.value.shape()[0];
    Valued r{x.value[i], std::vector<double>(x.err.begin() + i * n, x.err.begin() + (i + 1) * n),
             x.vary};
    return r;
  }

  // Rows stacked along a new leading axis into type `t`; rows past `rows` are zeros.
  static Valued stack(const std::vector<Valued>& rows, const tj::ir::Type& t) {
    tj::Shape row_shape(t.shape.begin() + 1, t.shape.end());
    std::vector<Array> parts;
    Valued out{Array(), {}, false};
    for (const Valued& r : rows) {
      parts.push_back(tj::reshape(r.value, [&] {
        tj::Shape s = row_shape;
        s.insert(s.begin(), 1);
        return s;
      }()));
      out.err.insert(out.err.end(), r.err.begin(), r.err.end());
      out.vary = out.vary || r.vary;
    }
    const int64_t pad = t.shape[0] - static_cast<int64_t>(rows.size());
    if (pad > 0 || parts.empty()) {
      tj::Shape s = row_shape;
      s.insert(s.begin(), std::max<int64_t>(pad, 0));
      parts.push_back(tj::zeros(s, t.dtype));
      out.err.resize(static_cast<size_t>(t.size()), 0.0);
    }
    out.value = parts.size() == 1 ? parts[0] : tj::concatenate(parts, 0);
    return out;
  }

  std::vector<Valued> region(const tj::ir::Eqn& e) const {
    std::vector<Valued> in;
    for (tj::ir::VarId v : e.in)
      in.push_back({val_[static_cast<size_t>(v)], err(v), vary_[static_cast<size_t>(v)]});
    const tj::ir::Params& p = e.params;
    std::vector<Valued> out;
    bool unknown = false;  // compiled code may take another path
    switch (e.prim) {
      case Prim::kCall: out = sub(*p.regions[0], in); break;
      case Prim::kCustomVjp: {  // runs its primal on the primal's consts and the arguments
        const size_t nf = static_cast<size_t>(p.groups[0]);
        std::vector<Valued> f_in(in.begin(), in.begin() + static_cast<ptrdiff_t>(nf));
        f_in.insert(f_in.end(), in.begin() + static_cast<ptrdiff_t>(nf + p.groups[1] + p.groups[2]), in.end());
        out = sub(*p.regions[0], f_in);
        break;
      }
      case Prim::kCond: {
        const int64_t n = static_cast<int64_t>(p.regions.size());
        const int64_t index = std::clamp<int64_t>(in[0].value.item<int32_t>(), 0, n - 1);
        unknown = !exact(in[0]);
        out = sub(*p.regions[static_cast<size_t>(index)], std::span(in).subspan(1));
        break;
      }
      case Prim::kWhile: {
        const size_t nc = static_cast<size_t>(p.groups[0]), nb = static_cast<size_t>(p.groups[1]);
        const std::span<const Valued> cconsts = std::span(in).subspan(0, nc),
                                      bconsts = std::span(in).subspan(nc, nb);
        std::vector<Valued> carry(in.begin() + static_cast<ptrdiff_t>(nc + nb), in.end());
        std::vector<std::vector<Valued>> traj(carry.size());
        int64_t steps = 0;
        while (true) {
          const Valued pred = sub(*p.regions[0], concat(cconsts, carry))[0];
          unknown = unknown || !exact(pred);
          if (!pred.value.item<bool>()) break;
          if (p.length >= 0 && steps == p.length)
            throw std::runtime_error("difftest: while_loop ran past max_iterations");
          for (size_t k = 0; k < carry.size(); ++k) traj[k].push_back(carry[k]);
          carry = sub(*p.regions[1], concat(bconsts, carry));
          ++steps;
        }
        out = std::move(carry);
        if (p.trajectory) {
          out.push_back({Array(static_cast<int32_t>(steps)), {0.0}, false});
          for (size_t k = 0; k < traj.size(); ++k)
            out.push_back(stack(traj[k], fn_.type(e.out[out.size()])));
        }
        break;
      }
      case Prim::kScan: {
        const size_t nk = static_cast<size_t>(p.groups[0]), nc = static_cast<size_t>(p.groups[1]);
        const std::span<const Valued> consts = std::span(in).subspan(0, nk),
                                      xs = std::span(in).subspan(nk + nc);
        std::vector<Valued> carry(in.begin() + static_cast<ptrdiff_t>(nk),
                                  in.begin() + static_cast<ptrdiff_t>(nk + nc));
        const size_t ny = e.out.size() - nc;
        std::vector<std::vector<Valued>> ys(ny, std::vector<Valued>(static_cast<size_t>(p.length)));
        for (int64_t step = 0; step < p.length; ++step) {
          const int64_t i = p.reverse ? p.length - 1 - step : step;
          std::vector<Valued> args = concat(consts, carry);
          for (const Valued& x : xs) args.push_back(row(x, i));
          std::vector<Valued> outs = sub(*p.regions[0], args);
          carry.assign(outs.begin(), outs.begin() + static_cast<ptrdiff_t>(nc));
          for (size_t k = 0; k < ny; ++k) ys[k][static_cast<size_t>(i)] = std::move(outs[nc + k]);
        }
        out = std::move(carry);
        for (size_t k = 0; k < ny; ++k) out.push_back(stack(ys[k], fn_.type(e.out[nc + k])));
        break;
      }
      default: throw std::logic_error("difftest: not a region primitive");
    }
    for (size_t k = 0; k < out.size(); ++k) {
      // The equation's result types (a region's outputs keep their own weak bits).
      const tj::ir::Type& t = fn_.type(e.out[k]);
      if (out[k].value.dtype() != t.dtype || out[k].value.shape() != t.shape)
        throw std::logic_error("difftest: a region gave a value of another type");
      if (unknown) out[k].err.assign(static_cast<size_t>(t.size()), kInf);
    }
    return out;
  }
  const std::vector<double>& err(tj::ir::VarId v) const { return err_[static_cast<size_t>(v)]; }
  static bool any(const std::vector<double>& e) {
    return std::any_of(e.begin(), e.end(), [](double x) { return x > 0; });
  }

  // What the primitive contributes by itself at a result of magnitude m.
  double local(Prim p, DType d, bool inexact_operands, bool vary, double m) const {
    if (!is_float(d)) return 0;
    double ulps = 0;
    if (model_ == ErrorModel::kCompiledVsEager) {
      bool poly = d == DType::f32 &&
                  (p == Prim::kExp || p == Prim::kLog || p == Prim::kLog1p || p == Prim::kTanh);
      if (poly) ulps += kPolyUlps;
      if (p == Prim::kPow) ulps += kPowUlps;
      if (inexact_operands) ulps += is_libm(p) ? kLibmUlps : kRoundUlps;
    } else if (vary) {
      ulps = is_libm(p) ? kLibmUlps : kRoundUlps;
    }
    return ulps == 0 ? 0 : ulps * ulp(m, d);
  }

  // The same layout or reduction primitive applied to f64 arrays (bounds, magnitudes).
  std::vector<double> same(const tj::ir::Eqn& e, const std::vector<std::vector<double>>& xs) const {
    std::vector<Array> in;
    for (size_t k = 0; k < xs.size(); ++k) in.push_back(f64(xs[k], fn_.type(e.in[k]).shape));
    tj::ir::Type t{DType::f64, fn_.type(e.out[0]).shape, false};
    return host(tj::detail::eval_eager(e.prim, in, e.params, std::span(&t, 1))[0]);
  }

  std::vector<double> bound(const tj::ir::Eqn& e, const std::vector<Array>& in) const {
    const tj::ir::Type& out_type = fn_.type(e.out[0]);
    const DType d = out_type.dtype;
    const size_t n = static_cast<size_t>(out_type.size());
    const std::vector<double> y = host(val_[static_cast<size_t>(e.out[0])]);
    bool inexact = false, vary = false;
    for (tj::ir::VarId v : e.in) {
      inexact = inexact || any(err(v));
      vary = vary || vary_[static_cast<size_t>(v)];
    }
    std::vector<double> x0, x1, e0, e1;
    if (!e.in.empty() && tj::ir::is_elementwise(e.prim)) {
      x0 = host(in[0]);
      e0 = err(e.in[0]);
      if (e.in.size() > 1) x1 = host(in[1]), e1 = err(e.in[1]);
    }
    std::vector<double> out(n, 0.0);
    // Elementwise: `prop(i)` is how far the operands' bounds can move element i.
    auto elementwise = [&](auto prop) {
      for (size_t i = 0; i < n; ++i) {
        double p = prop(i);
        out[i] = p + local(e.prim, d, inexact, vary, std::fabs(y[i]) + p);
      }
      return out;
    };
    switch (e.prim) {
      case Prim::kNeg: case Prim::kAbs: case Prim::kStopGradient: case Prim::kMax: case Prim::kMin:
        return elementwise([&](size_t i) { return e1.empty() ? e0[i] : std::max(e0[i], e1[i]); });
      case Prim::kSign:  // a sign may flip within the bound
        return elementwise(
            [&](size_t i) { return e0[i] > 0 && std::fabs(x0[i]) <= e0[i] ? 2.0 : 0.0; });
      case Prim::kExp:
        return elementwise(
            [&](size_t i) { return e0[i] > 0 ? std::exp(x0[i] + e0[i]) * e0[i] : 0.0; });
      case Prim::kLog:
        return elementwise([&](size_t i) {
          return e0[i] == 0 ? 0.0 : x0[i] - e0[i] > 0 ? e0[i] / (x0[i] - e0[i]) : kInf;
        });
      case Prim::kLog1p:
        return elementwise([&](size_t i) {
          return e0[i] == 0 ? 0.0 : 1 + x0[i] - e0[i] > 0 ? e0[i] / (1 + x0[i] - e0[i]) : kInf;
        });
      case Prim::kSin: case Prim::kCos:
      case Prim::kTanh:  // |f'| <= 1 and |f| <= 1
        return elementwise([&](size_t i) { return std::min(e0[i], 2.0); });
      case Prim::kSqrt:  // |sqrt(a) - sqrt(b)| <= sqrt(|a - b|)
        return elementwise([&](size_t i) {
          if (e0[i] == 0) return 0.0;
          double lo = x0[i] - e0[i];
          return std::min(lo > 0 ? e0[i] / (2 * std::sqrt(lo)) : kInf, std::sqrt(e0[i]));
        });
      case Prim::kConvert: return convert(in[0].dtype(), d, x0, e0, inexact, vary, y);
      case Prim::kBitcast: return elementwise([&](size_t i) { return e0[i] > 0 ? kInf : 0.0; });
      case Prim::kAdd: case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl:
      case Prim::kShr: return elementwise([&](size_t i) { return e0[i] + e1[i]; });
      case Prim::kMul:
        return elementwise([&](size_t i) {  // (terms with a zero bound skipped: inf * 0)
          return (e0[i] > 0 ? std::fabs(x1[i]) * e0[i] : 0) +
                 (e1[i] > 0 ? std::fabs(x0[i]) * e1[i] : 0) + e0[i] * e1[i];
        });
      case Prim::kDiv:
        return elementwise([&](size_t i) {
          if (e0[i] + e1[i] == 0) return 0.0;
          if (!is_float(d) || std::fabs(x1[i]) <= e1[i]) return kInf;
          return (e0[i] + std::fabs(x0[i] / x1[i]) * e1[i]) / (std::fabs(x1[i]) - e1[i]);
        });
      case Prim::kPow:  // monotone in each operand for a positive base: extremes at corners
        return elementwise([&](size_t i) {
          if (e0[i] + e1[i] == 0) return 0.0;
          if (x0[i] - e0[i] <= 0) return kInf;
          double m = 0;
          for (double a : {x0[i] - e0[i], x0[i] + e0[i]})
            for (double b : {x1[i] - e1[i], x1[i] + e1[i]})
              m = std::max(m, std::fabs(std::pow(a, b) - y[i]));
          return m;
        });
      case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt:
      case Prim::kGe:
        return elementwise([&](size_t i) {  // may flip when the operands are within their bounds
          double s = e0[i] + e1[i];
          return s > 0 && std::fabs(x0[i] - x1[i]) <= s ? kInf : 0.0;
        });
      case Prim::kSelect: {
        const std::vector<double> a = host(in[1]), b = host(in[2]), ea = err(e.in[1]),
                                  eb = err(e.in[2]);
        for (size_t i = 0; i < n; ++i)
          out[i] = e0[i] > 0    ? std::fabs(a[i] - b[i]) + std::max(ea[i], eb[i])
                   : x0[i] != 0 ? ea[i]
                                : eb[i];
        return out;
      }
      case Prim::kReduceSum: {
        // Any order of summing n terms is within n*u*sum|x| of the exact sum (to first order);
        // two orders within twice that. Up to two terms, every order gives the same sum.
        std::vector<double> mag = host(in[0]);
        const std::vector<double>& ex = err(e.in[0]);
        for (size_t i = 0; i < mag.size(); ++i) mag[i] = std::fabs(mag[i]) + ex[i];
        std::vector<double> sum_e = same(e, {ex}), sum_mag = same(e, {mag});
        const double count =
            static_cast<double>(in[0].size()) / std::max<double>(1, static_cast<double>(n));
        double gamma = 0;
        if (model_ == ErrorModel::kCompiledVsEager && (count > 2 || inexact))
          gamma = 2 * count * unit_roundoff(d);
        if (model_ == ErrorModel::kRoundingOfVarying && vary) gamma = count * unit_roundoff(d);
        if (!is_float(d)) gamma = 0;
        for (size_t i = 0; i < n; ++i) out[i] = sum_e[i] + (gamma > 0 ? gamma * sum_mag[i] : 0);
        return out;
      }
      case Prim::kReduceMax:  // |max x - max x'| <= max |x - x'|
        return same(e, {err(e.in[0])});
      case Prim::kBroadcast: case Prim::kReshape: case Prim::kTranspose: case Prim::kSlice:
      case Prim::kConcatenate: {
        std::vector<std::vector<double>> es;
        for (tj::ir::VarId v : e.in) es.push_back(err(v));
        return same(e, es);
      }
      case Prim::kIota: return out;
      case Prim::kMatmul: {
        // Both sum each element's k products in order: only operand bounds propagate, and
        // with inexact operands, each partial sum's rounding.
        std::vector<double> a = host(in[0]), b = host(in[1]);
        const std::vector<double>&ea = err(e.in[0]), &eb = err(e.in[1]);
        std::vector<double> a_mag(a.size()), b_mag(b.size());
        for (size_t i = 0; i < a.size(); ++i) a[i] = std::fabs(a[i]), a_mag[i] = a[i] + ea[i];
        for (size_t i = 0; i < b.size(); ++i) b[i] = std::fabs(b[i]), b_mag[i] = b[i] + eb[i];
        if (!inexact) return out;
        std::vector<double> t1 = same(e, {a, eb}), t2 = same(e, {ea, b}), t3 = same(e, {ea, eb});
        std::vector<double> mag = same(e, {a_mag, b_mag});
        const double k = static_cast<double>(fn_.type(e.in[0]).shape[1]);
        double gamma = 0;
        if (model_ == ErrorModel::kCompiledVsEager && inexact) gamma = 2 * k * unit_roundoff(d);
        if (model_ == ErrorModel::kRoundingOfVarying && vary) gamma = k * unit_roundoff(d);
        if (!is_float(d)) gamma = 0;
        for (size_t i = 0; i < n; ++i)
          out[i] = t1[i] + t2[i] + t3[i] + (gamma > 0 ? gamma * mag[i] : 0);
        return out;
      }
      case Prim::kDebugPrint: return out;
      case Prim::kAllSum: break;  // never generated (a sum over ranks): no bound
      case Prim::kCall: case Prim::kCond: case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
        break;  // run() interprets them (region())
    }
    return std::vector<double>(n, kInf);
  }

  std::vector<double> convert(DType from, DType to, const std::vector<double>& x,
                              const std::vector<double>& ex, bool inexact, bool vary,
                              const std::vector<double>& y) const {
    std::vector<double> out(x.size(), 0.0);
    for (size_t i = 0; i < x.size(); ++i) {
      const double e = ex[i];
      if (is_float(from) && is_float(to)) {
        bool narrowing = from == DType::f64 && to == DType::f32;
        out[i] =
            e + (narrowing ? local(Prim::kConvert, to, inexact, vary, std::fabs(y[i]) + e) : 0);
      } else if (is_float(from) && e > 0) {
        // Saturating truncation (or != 0 for bool) may land elsewhere within the bound.
        auto conv = [&](double v) {
          if (to == DType::bool_) return v != 0 ? 1.0 : 0.0;
          double lo = to == DType::i32 ? -2147483648.0 : 0,
                 hi = to == DType::i32 ? 2147483647.0 : 4294967295.0;
          return std::clamp(std::trunc(v), lo, hi);
        };
        bool flips = to == DType::bool_ ? std::fabs(x[i]) <= e : conv(x[i] - e) != conv(x[i] + e);
        out[i] = flips ? kInf : 0;
      } else {
        out[i] = e;
      }
    }
    return out;
  }

  const tj::ir::Function& fn_;
  ErrorModel model_;
  std::vector<Array> val_;
  std::vector<std::vector<double>> err_;
  std::vector<bool> vary_;
};

std::string index_str(int64_t flat, const tj::Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t k = shape.size(); k-- > 0;) {
    idx[k] = shape[k] ? flat % shape[k] : 0;
    flat = shape[k] ? flat / shape[k] : 0;
  }
  return absl::StrCat("[", absl::StrJoin(idx, ","), "]");
}

std::string type_mismatch(const Array& got, const Array& want) {
  if (got.dtype() == want.dtype() && got.shape() == want.shape()) return "";
  return absl::StrCat("got ", tj::type_str(got.dtype(), got.shape()), ", want ",
                      tj::type_str(want.dtype(), want.shape()));
}

}  // namespace

std::vector<Bounded> eval_with_bounds(const tj::ir::Function& fn, std::span<const Array> inputs,
                                      ErrorModel model, const std::vector<bool>& varying) {
  return Interpreter(fn, model).run(inputs, varying);
}

std::string first_difference(const Array& got, const Bounded& want, int64_t* compared,
                             int64_t* unknown) {
  if (std::string t = type_mismatch(got, want.value); !t.empty()) return t;
  const std::vector<double> g = host(got), w = host(want.value);
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = want.err[i];
    if (std::isinf(e)) {
      if (unknown) ++*unknown;
      continue;
    }
    if (compared) ++*compared;
    // An exact element must match to the sign of a zero (1 / x and bitcasts tell them apart).
    const bool same_zero = g[i] != 0 || e > 0 || std::signbit(g[i]) == std::signbit(w[i]);
    if ((g[i] == w[i] && same_zero) || (std::isnan(g[i]) && std::isnan(w[i])) ||
        (g[i] != w[i] && std::fabs(g[i] - w[i]) <= e))
      continue;
    return absl::StrFormat("element %s of %s: got %.17g, want %.17g within %.3g (off by %.3g)",
                           index_str(static_cast<int64_t>(i), got.shape()),
                           tj::type_str(got.dtype(), got.shape()), g[i], w[i], e,
                           std::fabs(g[i] - w[i]));
  }
  return "";
}

std::string first_bit_difference(const Array& got, const Array& want) {
  if (std::string t = type_mismatch(got, want); !t.empty()) return t;
  const std::vector<double> g = host(got), w = host(want);
  for (size_t i = 0; i < g.size(); ++i) {
    bool same = (g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i])) ||
                (std::isnan(g[i]) && std::isnan(w[i]));
    if (!same)
      return absl::StrFormat("element %s of %s: got %.17g, want %.17g (bit for bit)",
                             index_str(static_cast<int64_t>(i), got.shape()),
                             tj::type_str(got.dtype(), got.shape()), g[i], w[i]);
  }
  return "";
}

}  // namespace difftest

// check_grads over flat leaves: forward mode against central differences in f64, reverse mode
// against the same differences through inner products, recursively for higher orders.
#include "tracejit/check_grads.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit::detail {
namespace {

constexpr double kEps = 1e-4;

double tolerance(DType d) { return d == DType::f64 ? 1e-5 : 2e-3; }

// Deterministic pseudo-random values in [-1, 1] (a 64-bit LCG), one array per float leaf and
// zeros of the leaf's dtype for the others.
std::vector<Array> directions(const std::vector<Array>& leaves, uint64_t seed) {
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  std::vector<Array> out;
  for (const Array& x : leaves) {
    if (!is_float(x.dtype())) {
      out.push_back(zeros_like(x));
      continue;
    }
    std::vector<double> v(static_cast<size_t>(x.size()));
    for (double& e : v) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      e = static_cast<double>(s >> 11) / static_cast<double>(1ull << 53) * 2 - 1;
    }
    out.push_back(astype(array(v, x.shape()), x.dtype()));
  }
  return out;
}

std::vector<Array> like(const std::vector<Array>& values, const std::vector<Array>& types) {
  std::vector<Array> out;
  for (size_t i = 0; i < values.size(); ++i) out.push_back(astype(values[i], types[i].dtype()));
  return out;
}

// f at leaves + t * v (float leaves in f64, the others unchanged), results in f64.
std::vector<Array> eval_along(const FlatFn& f, const std::vector<Array>& leaves,
                              const std::vector<Array>& v, double t) {
  std::vector<Array> xs;
  for (size_t i = 0; i < leaves.size(); ++i)
    xs.push_back(is_float(leaves[i].dtype())
                     ? astype(leaves[i], DType::f64) + astype(v[i], DType::f64) * t
                     : leaves[i]);
  std::vector<Array> out;
  for (const Array& y : f(xs)) out.push_back(is_float(y.dtype()) ? astype(y, DType::f64) : y);
  return out;
}

double inner(const std::vector<Array>& a, const std::vector<Array>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!is_float(a[i].dtype()) || !is_float(b[i].dtype())) continue;
    s += sum(astype(a[i], DType::f64) * astype(b[i], DType::f64)).item<double>();
  }
  return s;
}

struct Worst {
  double ratio = 0;
  std::string what;
};

void note(Worst& w, double got, double want, double tol, const std::string& where) {
  const double err = std::abs(got - want);
  double ratio = err / (tol + tol * std::abs(want));
  if (std::isnan(ratio)) ratio = INFINITY;
  if (ratio <= w.ratio) return;
  w = {ratio, cat(where, ": got ", got, ", finite differences give ", want, " (|difference| ", err,
                  ", tolerance ", tol, " + ", tol, " * |expected|)")};
}

void check_order(const FlatFn& f, const std::vector<Array>& leaves, int order, int level) {
  const std::vector<Array> v = directions(leaves, 17 + static_cast<uint64_t>(level));
  std::vector<Array> plus = eval_along(f, leaves, v, kEps);
  std::vector<Array> minus = eval_along(f, leaves, v, -kEps);
  std::vector<Array> fd;
  for (size_t j = 0; j < plus.size(); ++j)
    fd.push_back(is_float(plus[j].dtype()) ? (plus[j] - minus[j]) / (2 * kEps) : plus[j]);

  auto g = [&f](const std::vector<Array>& xs) { return f(xs); };
  auto [outs, tangents] = jvp(g, std::tuple{leaves}, std::tuple{v});
  Worst worst;
  for (size_t j = 0; j < outs.size(); ++j) {
    if (!is_float(outs[j].dtype())) continue;
    const std::vector<double> got = astype(tangents[j], DType::f64).to_vector<double>();
    const std::vector<double> want = fd[j].to_vector<double>();
    for (size_t e = 0; e < got.size(); ++e)
      note(worst, got[e], want[e], tolerance(outs[j].dtype()),
           cat("order ", level, " forward mode (jvp), output leaf ", j, " element ", e));
  }
  const std::vector<Array> u = like(directions(outs, 91 + static_cast<uint64_t>(level)), outs);
  auto [outs2, vjp_fn] = vjp(g, leaves);
  const std::vector<Array> cts = std::get<0>(vjp_fn(u));
  DType loosest = DType::f64;
  for (const Array& y : outs)
    if (y.dtype() == DType::f32) loosest = DType::f32;
  for (const Array& x : leaves)
    if (x.dtype() == DType::f32) loosest = DType::f32;
  note(worst, inner(cts, v), inner(u, fd), tolerance(loosest),
       cat("order ", level, " reverse mode (vjp), <vjp(u), v> against <u, J v>"));
  if (worst.ratio > 1)
    raise<Error>("check_grads", "derivatives disagree with finite differences at ", worst.what);
  if (order <= 1) return;
  // The derivative functions, checked one order lower.
  FlatFn fwd = [g, v](const std::vector<Array>& xs) {
    return jvp(g, std::tuple{xs}, std::tuple{like(v, xs)}).second;
  };
  FlatFn rev = [g, u](const std::vector<Array>& xs) {
    auto [ys, back] = vjp(g, xs);
    return std::get<0>(back(like(u, ys)));
  };
  check_order(fwd, leaves, order - 1, level + 1);
  check_order(rev, leaves, order - 1, level + 1);
}

}  // namespace

void check_grads_flat(const FlatFn& f, const std::vector<Array>& leaves, int order) {
  if (order < 1)
    raise<Error>("check_grads", "order must be at least 1, got ", order);
  check_order(f, leaves, order, 1);
}

}  // namespace tracejit::detail

// The static rules of generated programs: for each operation, the type of its result (JAX's
// promotion of weak C++ scalars included), a range holding every value it can take, and
// whether it applies at all. The ranges are what keep programs inside their domains without
// filtering after the fact: inputs are drawn inside their declared ranges (shrunk by a margin
// that covers finite-difference steps), so every value any check computes lies inside the
// range derived here.
//
// `exact`: the compiled code must reproduce the eager value bit for bit. It holds unless the
// value passed through an operation whose compiled form legitimately differs from the eager
// one (f32 exp/log/log1p/tanh are vectorized polynomials, float sums may be reassociated, pow
// may be rewritten by LLVM); comparisons, sign, and float-to-integer casts and bitcasts take
// exact operands only, since a last-bit difference could flip them.
//
// `varies`: the value moves when finite differences perturb the differentiated inputs. In a
// smooth program no varying value meets a kink (abs or sign at 0, a tie of maximum/minimum or
// of a reduce-max, a comparison, a cast to an integer) or stop_gradient (whose derivative is 0
// by definition while the value still moves).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "program.h"

namespace difftest {
namespace {

// Float values stay within this magnitude: products and sums of them stay far from overflow,
// and the error bounds of the checks stay meaningful.
constexpr double kMaxAbs = 1e6;
// Distance kept from a singularity: log/sqrt at 0, log1p at -1, a divisor at 0, pow's base at 0.
// It bounds derivatives (and so cotangents) by a few powers of 1/kDomainMargin.
constexpr double kDomainMargin = 0.05;
// pow's exponent stays within this magnitude.
constexpr double kMaxPowExponent = 4;

}  // namespace

int dtype_kind(DType d) { return d == DType::bool_ ? 0 : tj::is_integer(d) ? 1 : 2; }

Interval full_range(DType d) {
  switch (d) {
    case DType::bool_: return {0, 1};
    case DType::i32: return {-2147483648.0, 2147483647.0};
    case DType::u32: return {0, 4294967295.0};
    case DType::f32:
    case DType::f64: break;
  }
  return {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
}

namespace {

// Integer arithmetic wraps: a range that leaves the dtype becomes the whole dtype.
Interval fit_int(Interval r, DType d) {
  Interval full = full_range(d);
  if (r.lo < full.lo || r.hi > full.hi || std::isnan(r.lo) || std::isnan(r.hi)) return full;
  return r;
}

bool float_ok(Interval r) {
  return std::isfinite(r.lo) && std::isfinite(r.hi) && r.max_abs() <= kMaxAbs;
}

// Finishes a numeric result: integers wrap, floats must stay within kMaxAbs.
std::optional<Interval> finish(Interval r, DType d) {
  if (d == DType::bool_) return Interval{0, 1};
  if (!is_float(d)) return fit_int(r, d);
  if (!float_ok(r)) return std::nullopt;
  return r;
}

Interval hull(std::initializer_list<double> xs) { return {std::min(xs), std::max(xs)}; }
Interval mul(Interval a, Interval b) {
  return hull({a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi});
}
Interval join(Interval a, Interval b) { return {std::min(a.lo, b.lo), std::max(a.hi, b.hi)}; }
bool excludes(Interval r, double lo, double hi) { return r.hi < lo || r.lo > hi; }
// Strictly apart, with a gap that rounding cannot close.
bool disjoint(Interval a, Interval b) {
  double gap = 1e-6 * (1 + std::max(a.max_abs(), b.max_abs()));
  return a.hi + gap < b.lo || b.hi + gap < a.lo;
}

// The dtype of a binary operation under JAX's default promotion (API.md, "Arrays"), written
// here from the rules rather than read from tracejit's table: kinds bool < int < float; two
// strong dtypes of one kind take the wider (i32 with u32 gives i32, f32 with f64 gives f64);
// a weak operand takes the strong one's dtype unless its kind is higher, then it gives the
// default dtype of its kind (i32, f32), weakly typed; two weak operands join and stay weak.
std::optional<Facts> combine(const Facts& a, const Facts& b) {
  auto join_strong = [](DType x, DType y) {
    if (x == y) return x;
    if (dtype_kind(x) != dtype_kind(y)) return dtype_kind(x) > dtype_kind(y) ? x : y;
    return tj::is_float(x) ? DType::f64 : DType::i32;
  };
  Facts f = a;  // the caller sets the shape and range
  if (a.weak == b.weak) {
    f.dtype = join_strong(a.dtype, b.dtype);
    f.weak = a.weak;
  } else {
    const Facts& w = a.weak ? a : b;
    const Facts& s = a.weak ? b : a;
    // A weak bool is a bool (JAX has no weak bool): it joins as a strong one.
    if (w.dtype == DType::bool_ || dtype_kind(w.dtype) <= dtype_kind(s.dtype)) {
      f.dtype = w.dtype == DType::bool_ ? join_strong(w.dtype, s.dtype) : s.dtype;
      f.weak = false;
    } else {
      f.dtype = dtype_kind(w.dtype) == 2 ? DType::f32 : DType::i32;
      f.weak = true;
    }
  }
  f.exact = a.exact && b.exact;
  f.varies = a.varies || b.varies;
  return f;
}

std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t x = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    int64_t y = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// A range converted to the dtype a weak operand is promoted to (the same kind): integers
// wrap between i32 and u32, floats keep their values.
Interval converted(Interval r, DType from, DType to) {
  if (from == to || is_float(to)) return r;
  return fit_int(r, to);
}

// A C++ scalar operand: weakly typed, so it takes the array's dtype (an int literal meeting a
// u32 array wraps around).
Facts scalar_facts(const Facts& array, double c) {
  Facts f;
  f.dtype = array.dtype;
  f.weak = true;
  if (array.dtype == DType::u32 && c < 0) c += 4294967296.0;
  f.range = {c, c};
  return f;
}

std::optional<std::vector<int64_t>> reduce_axes(const Node& n, const Facts& a) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  std::vector<int64_t> axes;
  if (n.all_axes) {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
    return axes;
  }
  for (int64_t x : n.axes) {
    int64_t y = x < 0 ? x + rank : x;
    if (y < 0 || y >= rank || std::count(axes.begin(), axes.end(), y)) return std::nullopt;
    axes.push_back(y);
  }
  return axes;
}

int64_t count_over(const Shape& s, const std::vector<int64_t>& axes) {
  int64_t c = 1;
  for (int64_t a : axes) c *= s[static_cast<size_t>(a)];
  return c;
}

Shape drop_axes(const Shape& s, const std::vector<int64_t>& axes) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i)
    if (!std::count(axes.begin(), axes.end(), static_cast<int64_t>(i))) out.push_back(s[i]);
  return out;
}

// Elementwise unary maths (tj::exp and friends promote integers and bools to f32).
std::optional<Facts> unary_math(Op op, const Facts& a) {
  Facts f = a;
  if (!is_float(a.dtype)) f.dtype = DType::f32;
  const Interval r = a.range;
  bool poly = false;  // f32 exp/log/log1p/tanh: vectorized polynomials in compiled code
  switch (op) {
    case Op::kExp:
      if (r.hi > std::log(kMaxAbs)) return std::nullopt;
      f.range = {std::exp(r.lo), std::exp(r.hi)};
      poly = true;
      break;
    case Op::kLog:
      if (r.lo < kDomainMargin) return std::nullopt;
      f.range = {std::log(r.lo), std::log(r.hi)};
      poly = true;
      break;
    case Op::kLog1p:
      if (r.lo < -1 + kDomainMargin) return std::nullopt;
      f.range = {std::log1p(r.lo), std::log1p(r.hi)};
      poly = true;
      break;
    case Op::kTanh:
      f.range = {std::tanh(r.lo), std::tanh(r.hi)};
      poly = true;
      break;
    case Op::kSin: case Op::kCos:
      if (!std::isfinite(r.lo) || !std::isfinite(r.hi)) return std::nullopt;
      f.range = {-1, 1};
      break;
    case Op::kSqrt:
      if (r.lo < kDomainMargin) return std::nullopt;
      f.range = {std::sqrt(r.lo), std::sqrt(r.hi)};
      break;
    default: return std::nullopt;
  }
  if (poly && f.dtype == DType::f32) f.exact = false;
  return f;
}

std::optional<Facts> binary(const Program& p, Op op, Facts a, Facts b) {
  std::optional<Facts> f = combine(a, b);
  if (!f) return std::nullopt;
  std::optional<Shape> shape = broadcast(a.shape, b.shape);
  if (!shape) return std::nullopt;
  f->shape = *shape;
  const DType d = f->dtype;
  a.range = converted(a.range, a.dtype, d);
  b.range = converted(b.range, b.dtype, d);
  const bool kink_guard = p.smooth && f->varies;
  std::optional<Interval> r;
  switch (op) {
    case Op::kAdd:
      if (d == DType::bool_) return std::nullopt;
      r = finish({a.range.lo + b.range.lo, a.range.hi + b.range.hi}, d);
      break;
    case Op::kSub:
      if (d == DType::bool_) return std::nullopt;
      r = finish({a.range.lo - b.range.hi, a.range.hi - b.range.lo}, d);
      break;
    case Op::kMul:
      if (d == DType::bool_) return std::nullopt;
      r = finish(mul(a.range, b.range), d);
      break;
    case Op::kDiv:
      if (d == DType::bool_) return std::nullopt;
      // True division (jnp.true_divide): integers divide in f32, as floats do.
      if (!excludes(b.range, -kDomainMargin, kDomainMargin)) return std::nullopt;
      r = finish(mul(a.range, {1 / b.range.hi, 1 / b.range.lo}), is_float(d) ? d : DType::f32);
      if (!is_float(d)) f->dtype = DType::f32;
      break;
    case Op::kPow: {
      // Integer pow is exact integer arithmetic (tested against closed forms in ops_eager_test).
      if (!is_float(d)) return std::nullopt;
      if (a.range.lo < kDomainMargin || b.range.max_abs() > kMaxPowExponent) return std::nullopt;
      // a^b = exp(b log a) is monotone in each operand for a > 0: the extremes are at corners.
      Interval e = mul(b.range, {std::log(a.range.lo), std::log(a.range.hi)});
      if (e.hi > std::log(kMaxAbs)) return std::nullopt;
      r = Interval{std::exp(e.lo), std::exp(e.hi)};
      f->exact = false;  // LLVM may rewrite pow(x, 2) as x * x: within 1 ulp of libm's pow
      break;
    }
    case Op::kMaximum: case Op::kMinimum:
      if (kink_guard && !disjoint(a.range, b.range)) return std::nullopt;
      r = op == Op::kMaximum
              ? Interval{std::max(a.range.lo, b.range.lo), std::max(a.range.hi, b.range.hi)}
              : Interval{std::min(a.range.lo, b.range.lo), std::min(a.range.hi, b.range.hi)};
      break;
    case Op::kAnd: case Op::kOr: case Op::kXor:
      if (is_float(d)) return std::nullopt;
      r = full_range(d);
      if (a.range.lo >= 0 && b.range.lo >= 0) {  // non-negative: below the next power of two
        double top = std::exp2(std::ceil(std::log2(std::max(a.range.hi, b.range.hi) + 1)));
        r = Interval{0, std::min(top - 1, full_range(d).hi)};
      }
      break;
    case Op::kShl: case Op::kShr:
      if (!tj::is_integer(d)) return std::nullopt;
      // Left shifts wrap; right shifts move toward 0 (toward -1 for a negative i32).
      r = op == Op::kShl ? full_range(d)
                         : fit_int({std::min(a.range.lo, 0.0), std::max(a.range.hi, 0.0)}, d);
      break;
    case Op::kEq: case Op::kNe: case Op::kLt: case Op::kLe: case Op::kGt: case Op::kGe:
      if (is_float(d) && !f->exact) return std::nullopt;
      if (kink_guard && !disjoint(a.range, b.range)) return std::nullopt;
      f->dtype = DType::bool_;
      f->weak = false;
      r = Interval{0, 1};
      break;
    default: return std::nullopt;
  }
  if (!r) return std::nullopt;
  f->range = *r;
  return f;
}

std::optional<Facts> cast(const Program& p, const Facts& a, DType to) {
  Facts f = a;
  f.dtype = to;
  f.weak = false;
  if (is_float(a.dtype) && !is_float(to)) {
    if (!a.exact || (p.smooth && a.varies)) return std::nullopt;
    f.varies = false;
    if (to == DType::bool_) {
      f.range = {0, 1};
    } else {  // saturating, as fptosi.sat
      Interval full = full_range(to);
      f.range = {std::clamp(std::trunc(a.range.lo), full.lo, full.hi),
                 std::clamp(std::trunc(a.range.hi), full.lo, full.hi)};
    }
    return f;
  }
  if (to == DType::bool_)
    f.range = {0, 1};
  else if (!is_float(to))
    f.range = fit_int(a.range, to);
  return f;
}

std::optional<Facts> bitcast(const Program& p, const Facts& a, DType to) {
  auto ok = [](DType d) { return d == DType::f32 || d == DType::i32 || d == DType::u32; };
  if (!ok(a.dtype) || !ok(to)) return std::nullopt;
  Facts f = a;
  f.dtype = to;
  f.weak = false;
  if (is_float(a.dtype)) {
    if (to == DType::f32 || !a.exact || (p.smooth && a.varies)) return std::nullopt;
    f.varies = false;
    f.range = full_range(to);
  } else if (to == DType::f32) {
    // Only bit patterns of finite non-negative floats (subnormals included): no NaN or inf
    // enters the program. The result may exceed kMaxAbs; later ops that need less refuse it.
    if (a.range.lo < 0 || a.range.hi > 0x7F7FFFFF) return std::nullopt;
    f.range = {0, std::numeric_limits<float>::max()};
  } else {
    f.range = fit_int(a.range, to);
  }
  return f;
}

// floor, ceil and round (half to even) of floats; the identity on integers and bools. They jump
// at integers (round: at odd multiples of 1/2), so a varying value of a smooth program takes
// them only where its range holds no jump (with a gap that rounding cannot close): the result
// is then one integer that finite differences do not move.
std::optional<Facts> rounding(const Program& p, Op op, const Facts& a) {
  Facts f = a;
  if (!is_float(a.dtype)) return f;
  auto g = [op](double x) {
    return op == Op::kFloor ? std::floor(x) : op == Op::kCeil ? std::ceil(x) : std::nearbyint(x);
  };
  f.range = {g(a.range.lo), g(a.range.hi)};
  if (p.smooth && a.varies) {
    const double shift = op == Op::kRound ? 0.5 : 0, gap = 1e-6 * (1 + a.range.max_abs());
    const double lo = a.range.lo + shift - gap, hi = a.range.hi + shift + gap;
    if (std::floor(lo) != std::floor(hi) || std::floor(lo) == lo) return std::nullopt;
    f.varies = false;
  }
  return f;
}

// An axis of a rank-`rank` shape, negative ones counted from the end; nullopt when outside.
std::optional<size_t> axis_of(int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank), a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) return std::nullopt;
  return static_cast<size_t>(a);
}

// The facts of several operands promoted to one dtype (concatenate, stack): a binary
// operation's promotion, applied pairwise; ranges joined. The caller sets the shape.
std::optional<Facts> promote_all(const std::vector<const Facts*>& in) {
  Facts f = *in[0];
  for (const Facts* x : in) {
    if (x == in[0]) continue;
    std::optional<Facts> c = combine(f, *x);
    if (!c) return std::nullopt;
    f.range = join(converted(f.range, f.dtype, c->dtype), converted(x->range, x->dtype, c->dtype));
    f.dtype = c->dtype;
    f.weak = c->weak;
    f.exact = c->exact;
    f.varies = c->varies;
  }
  return f;
}

bool index_dtype(const Facts& f) { return f.dtype == DType::i32 || f.dtype == DType::u32; }
bool scalar_index(const Facts& f) { return index_dtype(f) && f.shape.empty(); }

// Gathers cost the indexed axis's length per result element (indexing.cpp): bounded.
bool gather_fits(int64_t result_size, int64_t axis_length) {
  return result_size * std::max<int64_t>(axis_length, 1) <= kMaxElements;
}

// The result of a contraction: every element sums `count` products of one element of each
// operand. Integers wrap; floats are exact when the sum runs in order (a matmul) or has at
// most two terms.
std::optional<Facts> contraction(const std::vector<const Facts*>& in, Shape shape, int64_t count,
                                 bool in_order) {
  Facts f = *in[0];
  Interval term = in[0]->range;
  for (size_t k = 1; k < in.size(); ++k) {
    std::optional<Facts> c = combine(f, *in[k]);
    if (!c) return std::nullopt;
    term = mul(converted(term, f.dtype, c->dtype), converted(in[k]->range, in[k]->dtype, c->dtype));
    f = *c;
  }
  if (f.dtype == DType::bool_) return std::nullopt;
  f.shape = std::move(shape);
  const double c = static_cast<double>(count);
  std::optional<Interval> r =
      finish(count == 1 ? term : Interval{std::min(0.0, c * term.lo), std::max(0.0, c * term.hi)},
             f.dtype);
  if (!r) return std::nullopt;
  f.range = *r;
  if (is_float(f.dtype) && !in_order && count > 2) f.exact = false;
  return f;
}

// einsum over the operands with one of kEinsumSpecs (explicit or implicit form).
std::optional<Facts> einsum(const Node& n, const std::vector<const Facts*>& in) {
  if (n.index < 0 || n.index >= static_cast<int64_t>(std::size(kEinsumSpecs))) return std::nullopt;
  const std::string spec = kEinsumSpecs[n.index].spec;
  const size_t arrow = spec.find("->");
  const std::vector<std::string> subs = einsum_subscripts(spec);
  std::string out;
  if (subs.size() != in.size()) return std::nullopt;
  std::map<char, int64_t> sizes;
  std::map<char, int> counts;
  int64_t all = 1;
  for (size_t k = 0; k < subs.size(); ++k) {
    if (subs[k].size() != in[k]->shape.size()) return std::nullopt;
    for (size_t i = 0; i < subs[k].size(); ++i) {
      auto [it, fresh] = sizes.emplace(subs[k][i], in[k]->shape[i]);
      if (!fresh && it->second != in[k]->shape[i]) return std::nullopt;
      if (fresh) all *= in[k]->shape[i];
      ++counts[subs[k][i]];
    }
  }
  if (arrow != std::string::npos) {
    out = spec.substr(arrow + 2);
  } else {  // the implicit form: the labels used once, alphabetically
    for (const auto& [c, k] : counts)
      if (k == 1) out += c;
  }
  Shape shape;
  int64_t count = 1;
  for (char c : out) shape.push_back(sizes.at(c));
  for (const auto& [c, d] : sizes)
    if (out.find(c) == std::string::npos) count *= d;
  // The broadcast product of a batched contraction has every label's extent.
  if (all > kMaxElements) return std::nullopt;
  if (in.size() == 1 && count == 1) {  // a transpose or a diagonal: the elements themselves
    Facts f = *in[0];
    if (f.dtype == DType::bool_) return std::nullopt;
    f.shape = shape;
    return f;
  }
  return contraction(in, shape, count, kEinsumSpecs[n.index].in_order);
}

// The rules proper, on the operands' facts.
std::optional<Facts> rule(const Program& p, const Node& n, const std::vector<const Facts*>& in);

}  // namespace

double Interval::max_abs() const { return std::max(std::fabs(lo), std::fabs(hi)); }

std::optional<Facts> infer(const Program& p, const Node& n) {
  if (is_control(n.op)) {
    Node copy = n;
    if (!infer_control(p, copy)) return std::nullopt;
    return copy.facts;
  }
  if (n.op == Op::kResult) {  // result `index` of a control-flow node
    if (n.args.size() != 1 || n.args[0] < 0 || n.args[0] >= static_cast<int>(p.nodes.size()))
      return std::nullopt;
    const Node& c = p.nodes[static_cast<size_t>(n.args[0])];
    if (!is_control(c.op) || n.index < 1 || n.index >= static_cast<int64_t>(c.results.size()))
      return std::nullopt;
    return c.results[static_cast<size_t>(n.index)];
  }
  std::vector<const Facts*> in;
  bool special = false;
  for (int a : n.args) {
    if (a < 0 || a >= static_cast<int>(p.nodes.size())) return std::nullopt;
    in.push_back(&p.nodes[static_cast<size_t>(a)].facts);
    special = special || in.back()->special;
  }
  std::optional<Facts> f;
  if (!special) {
    f = rule(p, n, in);
  } else {
    // NaN and infinities are legal operands everywhere (IEEE arithmetic, and the library's
    // rules for max, conversions and the rest): the operation needs only to be well typed,
    // checked with a range that every domain accepts. Float results may be special too;
    // integer results of a conversion may take any value.
    std::vector<Facts> tame;
    for (const Facts* x : in) {
      tame.push_back(*x);
      if (x->special) tame.back().range = {1, 2}, tame.back().special = false;
    }
    std::vector<const Facts*> tame_in;
    for (const Facts& x : tame) tame_in.push_back(&x);
    f = rule(p, n, tame_in);
    if (f && f->dtype != DType::bool_) {
      f->special = tj::is_float(f->dtype);
      f->range = full_range(f->dtype);
    }
  }
  if (f && tj::shape_size(f->shape) > kMaxElements) return std::nullopt;
  return f;
}

namespace {

std::optional<Facts> rule(const Program& p, const Node& n, const std::vector<const Facts*>& in) {
  auto arity = [&](size_t k) { return in.size() == k; };
  switch (n.op) {
    case Op::kInput:
    case Op::kConst: return n.facts;
    case Op::kArange: {
      if (!arity(0) || n.dtype == DType::bool_ || n.index < 0) return std::nullopt;
      Facts f;
      f.dtype = n.dtype;
      f.shape = {n.index};
      f.range = {0, static_cast<double>(std::max<int64_t>(n.index - 1, 0))};
      return f;
    }
    case Op::kFull: {
      if (!arity(0) || !n.value.valid()) return std::nullopt;
      Facts f;
      f.dtype = n.dtype;
      f.shape = n.shape;
      double v = n.value.item<double>();
      f.range = {v, v};
      return f;
    }
    case Op::kNeg: {
      if (!arity(1) || in[0]->dtype == DType::bool_) return std::nullopt;
      Facts f = *in[0];
      f.range = {-in[0]->range.hi, -in[0]->range.lo};
      if (!is_float(f.dtype))
        f.range = fit_int(
            f.dtype == DType::u32 && in[0]->range.hi > 0 ? full_range(f.dtype) : f.range, f.dtype);
      return f;
    }
    case Op::kExp: case Op::kLog: case Op::kLog1p: case Op::kSin: case Op::kCos: case Op::kTanh:
    case Op::kSqrt:
      if (!arity(1)) return std::nullopt;
      return unary_math(n.op, *in[0]);
    case Op::kAbs:
    case Op::kSign: {
      if (!arity(1) || in[0]->dtype == DType::bool_) return std::nullopt;
      Facts f = *in[0];
      const Interval r = in[0]->range;
      bool away_from_zero = r.lo > 0 || r.hi < 0;
      if (p.smooth && f.varies && !away_from_zero) return std::nullopt;
      if (n.op == Op::kSign) {
        if (is_float(f.dtype) && !f.exact) return std::nullopt;
        f.range = {r.lo < 0 ? -1.0 : r.lo > 0 ? 1.0 : 0.0, r.hi > 0 ? 1.0 : r.hi < 0 ? -1.0 : 0.0};
        return f;
      }
      f.range = away_from_zero ? Interval{std::min(std::fabs(r.lo), std::fabs(r.hi)), r.max_abs()}
                               : Interval{0, r.max_abs()};
      if (!is_float(f.dtype)) f.range = fit_int(f.range, f.dtype);  // abs(INT_MIN) wraps
      return f;
    }
    case Op::kSquare: {
      if (!arity(1) || in[0]->dtype == DType::bool_) return std::nullopt;
      Facts f = *in[0];
      const Interval r = in[0]->range;
      double lo = r.contains(0) ? 0 : std::min(r.lo * r.lo, r.hi * r.hi);
      std::optional<Interval> sq = finish({lo, r.max_abs() * r.max_abs()}, f.dtype);
      if (!sq) return std::nullopt;
      f.range = *sq;
      return f;
    }
    case Op::kStopGradient:
      if (!arity(1) || (p.smooth && in[0]->varies)) return std::nullopt;
      return *in[0];
    case Op::kAdd: case Op::kSub: case Op::kMul: case Op::kDiv: case Op::kPow: case Op::kMaximum:
    case Op::kMinimum: case Op::kAnd: case Op::kOr: case Op::kXor: case Op::kShl: case Op::kShr:
    case Op::kEq: case Op::kNe: case Op::kLt: case Op::kLe: case Op::kGt:
    case Op::kGe: {
      if (n.scalar) {
        if (!arity(1)) return std::nullopt;
        Facts c = scalar_facts(*in[0], *n.scalar);
        return n.scalar_first ? binary(p, n.op, c, *in[0]) : binary(p, n.op, *in[0], c);
      }
      if (!arity(2)) return std::nullopt;
      return binary(p, n.op, *in[0], *in[1]);
    }
    case Op::kWhere: {
      if (!arity(3)) return std::nullopt;
      const Facts& c = *in[0];
      if (is_float(c.dtype) && !c.exact) return std::nullopt;
      if (p.smooth && c.varies) return std::nullopt;
      std::optional<Facts> f = combine(*in[1], *in[2]);
      if (!f) return std::nullopt;
      std::optional<Shape> s = broadcast(in[1]->shape, in[2]->shape);
      if (s) s = broadcast(*s, c.shape);
      if (!s) return std::nullopt;
      f->shape = *s;
      f->range = join(converted(in[1]->range, in[1]->dtype, f->dtype),
                      converted(in[2]->range, in[2]->dtype, f->dtype));
      f->exact = f->exact && c.exact;
      f->varies = f->varies || c.varies;
      return f;
    }
    case Op::kSum: case Op::kMean:
    case Op::kMax: {
      if (!arity(1)) return std::nullopt;
      const Facts& a = *in[0];
      std::optional<std::vector<int64_t>> axes = reduce_axes(n, a);
      if (!axes) return std::nullopt;
      const int64_t count = count_over(a.shape, *axes);
      Facts f = a;
      f.shape = drop_axes(a.shape, *axes);
      if (n.op == Op::kMax) {
        if (count == 0 && !axes->empty()) return std::nullopt;       // no identity
        if (p.smooth && a.varies && count > 1) return std::nullopt;  // ties are kinks
        return f;
      }
      if (n.op == Op::kMean && count == 0) return std::nullopt;  // 0 / 0
      if (a.dtype == DType::bool_) f.dtype = DType::i32, f.weak = false;
      if (n.op == Op::kMean && !is_float(a.dtype)) f.dtype = DType::f32, f.weak = false;
      const double c = static_cast<double>(count);
      std::optional<Interval> sum = finish({c * a.range.lo, c * a.range.hi}, f.dtype);
      if (!sum) return std::nullopt;
      f.range = n.op == Op::kMean ? a.range : *sum;
      if (is_float(f.dtype) && count > 2) f.exact = false;  // the order of the sum is unspecified
      return f;
    }
    case Op::kReshape: {
      if (!arity(1)) return std::nullopt;
      Facts f = *in[0];
      Shape s = n.shape;
      int64_t known = 1, minus = 0;
      for (int64_t d : s) {
        if (d == -1)
          ++minus;
        else if (d < 0)
          return std::nullopt;
        else
          known *= d;
      }
      const int64_t size = tj::shape_size(in[0]->shape);
      if (minus > 1) return std::nullopt;
      if (minus == 1) {
        if (known == 0 || size % known != 0) return std::nullopt;
        *std::find(s.begin(), s.end(), -1) = size / known;
      } else if (known != size) {
        return std::nullopt;
      }
      f.shape = s;
      return f;
    }
    case Op::kBroadcastTo: {
      if (!arity(1)) return std::nullopt;
      std::optional<Shape> s = broadcast(in[0]->shape, n.shape);
      if (!s || *s != n.shape) return std::nullopt;
      Facts f = *in[0];
      f.shape = n.shape;
      return f;
    }
    case Op::kTranspose: {
      if (!arity(1)) return std::nullopt;
      const int64_t rank = static_cast<int64_t>(in[0]->shape.size());
      if (static_cast<int64_t>(n.axes.size()) != rank) return std::nullopt;
      Facts f = *in[0];
      f.shape.clear();
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (int64_t x : n.axes) {
        int64_t y = x < 0 ? x + rank : x;
        if (y < 0 || y >= rank || seen[static_cast<size_t>(y)]) return std::nullopt;
        seen[static_cast<size_t>(y)] = true;
        f.shape.push_back(in[0]->shape[static_cast<size_t>(y)]);
      }
      return f;
    }
    case Op::kSlice: {
      if (!arity(1)) return std::nullopt;
      const Shape& s = in[0]->shape;
      if (n.axes.size() != s.size() || n.limits.size() != s.size()) return std::nullopt;
      Facts f = *in[0];
      for (size_t i = 0; i < s.size(); ++i) {
        if (n.axes[i] < 0 || n.limits[i] < n.axes[i] || n.limits[i] > s[i]) return std::nullopt;
        f.shape[i] = n.limits[i] - n.axes[i];
      }
      return f;
    }
    case Op::kIndex: {
      if (!arity(1) || in[0]->shape.empty()) return std::nullopt;
      const int64_t d0 = in[0]->shape[0];
      if (n.index < -d0 || n.index >= d0) return std::nullopt;
      Facts f = *in[0];
      f.shape.erase(f.shape.begin());
      return f;
    }
    case Op::kConcatenate: {
      if (in.empty() || in[0]->shape.empty()) return std::nullopt;
      const int64_t rank = static_cast<int64_t>(in[0]->shape.size());
      const int64_t axis = n.index < 0 ? n.index + rank : n.index;
      if (axis < 0 || axis >= rank) return std::nullopt;
      // concatenate promotes all operands to one dtype, as a binary operation does.
      Facts f = *in[0];
      f.shape[static_cast<size_t>(axis)] = 0;
      for (const Facts* x : in) {
        if (static_cast<int64_t>(x->shape.size()) != rank) return std::nullopt;
        for (int64_t i = 0; i < rank; ++i)
          if (i != axis && x->shape[static_cast<size_t>(i)] != in[0]->shape[static_cast<size_t>(i)])
            return std::nullopt;
        if (x != in[0]) {
          std::optional<Facts> c = combine(f, *x);
          if (!c) return std::nullopt;
          f.range =
              join(converted(f.range, f.dtype, c->dtype), converted(x->range, x->dtype, c->dtype));
          f.dtype = c->dtype;
          f.weak = c->weak;
          f.exact = c->exact;
          f.varies = c->varies;
        }
        f.shape[static_cast<size_t>(axis)] += x->shape[static_cast<size_t>(axis)];
      }
      if (in.size() == 1) f.weak = in[0]->weak;
      return f;
    }
    case Op::kMatmul: {
      if (!arity(2)) return std::nullopt;
      const Facts &a = *in[0], &b = *in[1];
      const size_t ra = a.shape.size(), rb = b.shape.size();
      if (ra < 1 || ra > 2 || rb < 1 || rb > 2) return std::nullopt;
      std::optional<Facts> f = combine(a, b);
      if (!f || f->dtype == DType::bool_) return std::nullopt;
      const int64_t k = a.shape[ra - 1];
      if (k != b.shape[0]) return std::nullopt;
      f->shape.clear();
      if (ra == 2) f->shape.push_back(a.shape[0]);
      if (rb == 2) f->shape.push_back(b.shape[1]);
      Interval term =
          mul(converted(a.range, a.dtype, f->dtype), converted(b.range, b.dtype, f->dtype));
      const double kk = static_cast<double>(k);
      std::optional<Interval> r =
          finish({std::min(0.0, kk * term.lo), std::max(0.0, kk * term.hi)}, f->dtype);
      if (!r) return std::nullopt;
      f->range = *r;
      // Each output element sums its k products in order, as the eager reference does.
      return f;
    }
    case Op::kFloor: case Op::kCeil: case Op::kRound:
      if (!arity(1)) return std::nullopt;
      return rounding(p, n.op, *in[0]);
    case Op::kClip: {
      // tj::clip is minimum(maximum(a, lo), hi), as jnp.clip: lo > hi gives hi.
      Facts lo, hi;
      if (n.scalar) {
        if (!arity(1)) return std::nullopt;
        lo = scalar_facts(*in[0], *n.scalar);
        hi = scalar_facts(*in[0], n.scalar_hi);
      } else {
        if (!arity(3)) return std::nullopt;
        lo = *in[1];
        hi = *in[2];
      }
      std::optional<Facts> m = binary(p, Op::kMaximum, *in[0], lo);
      if (!m) return std::nullopt;
      return binary(p, Op::kMinimum, *m, hi);
    }
    case Op::kArgmax: case Op::kArgmin: {
      if (!arity(1)) return std::nullopt;
      const Facts& a = *in[0];
      Facts f;
      f.dtype = DType::i32;
      int64_t count = tj::shape_size(a.shape);
      if (!n.all_axes) {
        std::optional<size_t> ax = n.axes.size() == 1 ? axis_of(n.axes[0], a.shape.size())
                                                       : std::nullopt;
        if (!ax) return std::nullopt;
        count = a.shape[*ax];
        f.shape = a.shape;
        f.shape.erase(f.shape.begin() + static_cast<ptrdiff_t>(*ax));
      }
      if (count == 0) return std::nullopt;  // no answer (a ShapeError)
      // The index of the best element: ties and last-bit differences would move it.
      if (is_float(a.dtype) && !a.exact) return std::nullopt;
      if (p.smooth && a.varies && count > 1) return std::nullopt;
      f.range = {0, static_cast<double>(count - 1)};
      f.varies = a.varies && count > 1;
      return f;
    }
    case Op::kStack: {
      if (in.empty()) return std::nullopt;
      const std::optional<size_t> axis = axis_of(n.index, in[0]->shape.size() + 1);
      if (!axis) return std::nullopt;
      for (const Facts* x : in)
        if (x->shape != in[0]->shape) return std::nullopt;
      std::optional<Facts> f = promote_all(in);
      if (!f) return std::nullopt;
      f->shape.insert(f->shape.begin() + static_cast<ptrdiff_t>(*axis),
                      static_cast<int64_t>(in.size()));
      return f;
    }
    case Op::kTake: {
      // Indices out of range are clamped (jnp's mode='clip'): the elements are a's.
      if (!arity(2) || !index_dtype(*in[1])) return std::nullopt;
      const Facts &a = *in[0], &idx = *in[1];
      const std::optional<size_t> axis = axis_of(n.index, a.shape.size());
      if (!axis) return std::nullopt;
      const int64_t len = a.shape[*axis];
      if (len == 0 && tj::shape_size(idx.shape) > 0) return std::nullopt;  // an IndexError
      Facts f = a;
      f.shape.assign(a.shape.begin(), a.shape.begin() + static_cast<ptrdiff_t>(*axis));
      f.shape.insert(f.shape.end(), idx.shape.begin(), idx.shape.end());
      f.shape.insert(f.shape.end(), a.shape.begin() + static_cast<ptrdiff_t>(*axis) + 1,
                     a.shape.end());
      if (!gather_fits(tj::shape_size(f.shape), len)) return std::nullopt;
      f.weak = a.weak && a.dtype != DType::bool_;
      f.exact = a.exact && idx.exact;
      return f;
    }
    case Op::kDynamicSlice: {
      // Starts are clamped so that the window fits (lax.dynamic_slice).
      if (in.empty()) return std::nullopt;
      const Facts& a = *in[0];
      if (in.size() != a.shape.size() + 1 || n.shape.size() != a.shape.size()) return std::nullopt;
      int64_t widest = 1;
      for (size_t i = 0; i < a.shape.size(); ++i) {
        if (!scalar_index(*in[i + 1]) || n.shape[i] < 0 || n.shape[i] > a.shape[i])
          return std::nullopt;
        widest = std::max(widest, a.shape[i]);
      }
      Facts f = a;
      f.shape = n.shape;
      if (!gather_fits(tj::shape_size(a.shape), widest)) return std::nullopt;
      return f;
    }
    case Op::kDynamicUpdateSlice: {
      if (in.size() < 2) return std::nullopt;
      const Facts &a = *in[0], &u = *in[1];
      if (in.size() != a.shape.size() + 2 || u.shape.size() != a.shape.size() ||
          u.dtype != a.dtype)
        return std::nullopt;
      int64_t widest = 1;
      for (size_t i = 0; i < a.shape.size(); ++i) {
        if (!scalar_index(*in[i + 2]) || u.shape[i] > a.shape[i]) return std::nullopt;
        widest = std::max(widest, a.shape[i]);
      }
      if (!gather_fits(tj::shape_size(a.shape), widest)) return std::nullopt;
      Facts f = a;
      f.weak = a.weak && u.weak;
      f.range = join(a.range, u.range);
      f.exact = a.exact && u.exact;
      f.varies = a.varies || u.varies;
      return f;
    }
    case Op::kAtSet: case Op::kAtAdd: case Op::kAtMultiply: case Op::kAtMin: case Op::kAtMax: {
      // x.at(i): row i along axis 0 updated, the others kept; an index out of range (after
      // negative ones count from the end) updates nothing, as JAX's scatters drop it.
      const size_t want = 1 + !n.static_index + !n.scalar;
      if (in.size() != want || in[0]->shape.empty()) return std::nullopt;
      const Facts& a = *in[0];
      if (!n.static_index && !scalar_index(*in[1])) return std::nullopt;
      Facts row = a;
      row.shape.erase(row.shape.begin());
      Facts v;
      if (n.scalar) {
        v = scalar_facts(a, *n.scalar);
      } else {
        v = *in.back();
        std::optional<Shape> s = broadcast(v.shape, row.shape);
        if (v.dtype != a.dtype || v.shape.size() > row.shape.size() || !s || *s != row.shape)
          return std::nullopt;
      }
      if (a.dtype == DType::bool_ && (n.op != Op::kAtSet || n.scalar)) return std::nullopt;
      Facts f = a;
      if (n.op == Op::kAtSet) {
        f.range = join(a.range, v.range);
        f.exact = a.exact && v.exact;
        f.varies = a.varies || v.varies;
      } else {
        static constexpr Op kBinary[] = {Op::kAdd, Op::kMul, Op::kMinimum, Op::kMaximum};
        std::optional<Facts> r =
            binary(p, kBinary[static_cast<int>(n.op) - static_cast<int>(Op::kAtAdd)], row, v);
        if (!r || r->dtype != a.dtype) return std::nullopt;
        f.range = join(a.range, r->range);
        f.exact = r->exact;
        f.varies = r->varies;
      }
      f.weak = a.weak && v.weak && v.dtype == a.dtype;
      return f;
    }
    case Op::kDot: {
      // jnp.dot: a product with a scalar, matmul up to matrices, else a's last axis with b's
      // second to last (its only one for a vector).
      if (!arity(2)) return std::nullopt;
      const Facts &a = *in[0], &b = *in[1];
      if (a.shape.empty() || b.shape.empty()) return binary(p, Op::kMul, a, b);
      const size_t kb = b.shape.size() == 1 ? 0 : b.shape.size() - 2;
      if (a.shape.back() != b.shape[kb]) return std::nullopt;
      Shape s(a.shape.begin(), a.shape.end() - 1);
      for (size_t i = 0; i < b.shape.size(); ++i)
        if (i != kb) s.push_back(b.shape[i]);
      return contraction(in, s, a.shape.back(), true);
    }
    case Op::kTensordot: {
      if (!arity(2)) return std::nullopt;
      const Facts &a = *in[0], &b = *in[1];
      const size_t k = static_cast<size_t>(n.index);
      if (n.index < 0 || k > a.shape.size() || k > b.shape.size()) return std::nullopt;
      int64_t count = 1;
      for (size_t i = 0; i < k; ++i) {
        if (a.shape[a.shape.size() - k + i] != b.shape[i]) return std::nullopt;
        count *= b.shape[i];
      }
      Shape s(a.shape.begin(), a.shape.end() - static_cast<ptrdiff_t>(k));
      s.insert(s.end(), b.shape.begin() + static_cast<ptrdiff_t>(k), b.shape.end());
      return contraction(in, s, count, true);
    }
    case Op::kEinsum:
      if (in.empty()) return std::nullopt;
      return einsum(n, in);
    case Op::kAsType:
      if (!arity(1)) return std::nullopt;
      return cast(p, *in[0], n.dtype);
    case Op::kBitcast:
      if (!arity(1)) return std::nullopt;
      return bitcast(p, *in[0], n.dtype);
    case Op::kCond: case Op::kWhile: case Op::kFori: case Op::kScan:
    case Op::kResult: return std::nullopt;  // infer() handles them
    case Op::kRandomBits: case Op::kUniform: case Op::kNormal: case Op::kSplit:
    case Op::kFoldIn: {
      if (!arity(1) || in[0]->dtype != DType::u32 || in[0]->shape != Shape{2}) return std::nullopt;
      Facts f;  // a function of the key alone: exact integer arithmetic, strong, never varies
      f.dtype = DType::u32;
      f.shape = {2};
      f.range = full_range(DType::u32);
      f.exact = in[0]->exact;
      if (n.op == Op::kSplit && (n.index < -kSplitCount || n.index >= kSplitCount))
        return std::nullopt;
      if (n.op == Op::kFoldIn && (!n.scalar || *n.scalar < 0 || *n.scalar > 4294967295.0))
        return std::nullopt;
      if (n.op == Op::kRandomBits || n.op == Op::kUniform || n.op == Op::kNormal) f.shape = n.shape;
      if (n.op == Op::kUniform || n.op == Op::kNormal) {
        if (!is_float(n.dtype)) return std::nullopt;
        f.dtype = n.dtype;
      }
      if (n.op == Op::kUniform) {
        if (n.index < 0 || n.index >= static_cast<int64_t>(std::size(kUniformBounds)))
          return std::nullopt;
        f.range = {kUniformBounds[n.index][0], kUniformBounds[n.index][1]};
      }
      if (n.op == Op::kNormal) {
        f.range = {-9, 9};  // sqrt(2) erf_inv(u) for u in (-1, 1) of a 53-bit grid: |x| < 8.3
        f.exact = f.exact && n.dtype == DType::f64;  // f32 erf_inv uses log1p (a polynomial)
      }
      return f;
    }
  }
  return std::nullopt;
}

}  // namespace

// ---- Control flow ----
//
// A body is checked like a program, from the facts of its parameters and of the values it
// captures. Loops run their body many times on a carry, so the carry's facts must hold for
// every iteration: starting from the init's facts joined with what the generator declared, the
// body's carry outputs are joined in (range, exactness, varying, special, weak type) until
// nothing changes. Integer ranges that keep growing become the whole dtype; float ranges must
// settle within a few rounds (the generator wraps carries that would grow, e.g. in sin).

namespace {

constexpr int kFixpointRounds = 4;

Facts slice_facts(Facts f) {
  f.shape.erase(f.shape.begin());
  f.weak = false;
  return f;
}
Facts stacked_facts(Facts f, int64_t length) {
  f.shape.insert(f.shape.begin(), length);
  f.weak = false;
  return f;
}

// Sets the facts of `body`'s inputs (parameters from `params`, captured values from the
// enclosing program) and rechecks it.
bool check_body(const Program& outer, const Node& n, Program& body,
                const std::vector<Facts>& params) {
  body.smooth = outer.smooth;
  for (Node& b : body.nodes) {
    if (b.op != Op::kInput) continue;
    if (b.slot.arg == kParam) {
      if (b.index < 0 || b.index >= static_cast<int64_t>(params.size())) return false;
      b.facts = params[static_cast<size_t>(b.index)];
    } else if (b.slot.arg == kCapture) {
      const int64_t k = n.operands + b.index;
      if (b.index < 0 || k >= static_cast<int64_t>(n.args.size())) return false;
      b.facts = outer.nodes[static_cast<size_t>(n.args[static_cast<size_t>(k)])].facts;
    } else {
      return false;
    }
  }
  if (!recheck(body)) return false;
  for (int o : body.outputs)
    if (o < 0 || o >= static_cast<int>(body.nodes.size())) return false;
  return true;
}

std::vector<Facts> outputs_of(const Program& body) {
  std::vector<Facts> out;
  for (int o : body.outputs) out.push_back(body.nodes[static_cast<size_t>(o)].facts);
  return out;
}

// The carry's starting facts: the init's, joined with the declared invariant.
std::optional<std::vector<Facts>> start_carry(const std::vector<Facts>& init,
                                              const std::vector<Facts>& declared) {
  std::vector<Facts> c = init;
  for (size_t k = 0; k < c.size(); ++k) {
    if (k >= declared.size()) break;
    const Facts& d = declared[k];
    if (d.dtype != c[k].dtype || d.shape != c[k].shape) return std::nullopt;
    c[k].range = join(c[k].range, d.range);
    c[k].exact = c[k].exact && d.exact;
    c[k].varies = c[k].varies || d.varies;
    c[k].special = c[k].special || d.special;
  }
  for (Facts& f : c)
    if (f.special) f.range = full_range(f.dtype);
  return c;
}

// Takes `carry` to a fixpoint of `body`, whose parameters are params(carry) and whose outputs
// [first, first + carry.size()) are the next carry.
template <class Params>
bool carry_fixpoint(const Program& outer, const Node& n, Program& body, std::vector<Facts>& carry,
                    Params params, size_t first) {
  for (int round = 0; round < kFixpointRounds; ++round) {
    if (!check_body(outer, n, body, params(carry))) return false;
    const std::vector<Facts> out = outputs_of(body);
    if (out.size() < first + carry.size()) return false;
    std::vector<Facts> next = carry;
    for (size_t k = 0; k < carry.size(); ++k) {
      const Facts& o = out[first + k];
      Facts& c = next[k];
      if (o.dtype != c.dtype || o.shape != c.shape) return false;
      c.weak = c.weak && o.weak;  // a weak init takes the body's strong type (JAX's promotion)
      c.exact = c.exact && o.exact;
      c.varies = c.varies || o.varies;
      c.special = c.special || o.special;
      if (c.special) {
        c.range = full_range(c.dtype);
      } else if (!(c.range.contains(o.range.lo) && c.range.contains(o.range.hi))) {
        c.range = join(c.range, o.range);
        if (!is_float(c.dtype) && round > 0) c.range = full_range(c.dtype);
      }
    }
    if (next == carry) return true;
    carry = std::move(next);
  }
  return false;
}

std::vector<Facts> arg_facts(const Program& p, const Node& n, int from, int to) {
  std::vector<Facts> out;
  for (int k = from; k < to; ++k)
    out.push_back(p.nodes[static_cast<size_t>(n.args[static_cast<size_t>(k)])].facts);
  return out;
}

bool small_enough(const std::vector<Facts>& fs) {
  for (const Facts& f : fs)
    if (tj::shape_size(f.shape) > kMaxElements) return false;
  return true;
}

}  // namespace

bool infer_control(const Program& p, Node& n) {
  for (int a : n.args)
    if (a < 0 || a >= static_cast<int>(p.nodes.size())) return false;
  if (n.operands < 0 || n.operands > static_cast<int>(n.args.size())) return false;
  std::vector<Facts> results;
  switch (n.op) {
    case Op::kCond: {
      if (n.bodies.size() != 2 || n.operands < 1) return false;
      const Facts& pred = p.nodes[static_cast<size_t>(n.args[0])].facts;
      if (!pred.shape.empty() || is_float(pred.dtype) || !pred.exact ||
          (p.smooth && pred.varies))
        return false;
      const std::vector<Facts> ops = arg_facts(p, n, 1, n.operands);
      for (Program& b : n.bodies)
        if (!check_body(p, n, b, ops)) return false;
      const std::vector<Facts> f = outputs_of(n.bodies[0]), t = outputs_of(n.bodies[1]);
      if (f.empty() || f.size() != t.size()) return false;
      for (size_t k = 0; k < f.size(); ++k) {
        if (f[k].dtype != t[k].dtype || f[k].shape != t[k].shape) return false;
        Facts r = f[k];
        r.weak = f[k].weak && t[k].weak;
        r.range = join(f[k].range, t[k].range);
        r.exact = f[k].exact && t[k].exact;
        r.varies = f[k].varies || t[k].varies || pred.varies;
        r.special = f[k].special || t[k].special;
        results.push_back(r);
      }
      break;
    }
    case Op::kWhile: {
      if (n.bodies.size() != 2 || n.operands < 2) return false;
      const Facts& i0 = p.nodes[static_cast<size_t>(n.args[0])].facts;
      const Facts& bound = p.nodes[static_cast<size_t>(n.args[1])].facts;
      if (i0.dtype != DType::i32 || !i0.shape.empty() || bound.dtype != DType::i32 ||
          !bound.shape.empty())
        return false;
      // i < n, i += 1: at most n.hi - i0.lo steps, and i stays in [i0.lo, max(i0.hi, n.hi)].
      const double trips = std::max(0.0, bound.range.hi - i0.range.lo);
      if (trips > static_cast<double>(kMaxTrips) || n.max_iterations < trips) return false;
      Facts counter = i0;
      counter.range = {i0.range.lo, std::max(i0.range.hi, bound.range.hi)};
      std::optional<std::vector<Facts>> carry =
          start_carry(arg_facts(p, n, 2, n.operands), n.carry);
      if (!carry) return false;
      auto params = [&](const std::vector<Facts>& c) {
        std::vector<Facts> all{counter};
        all.insert(all.end(), c.begin(), c.end());
        return all;
      };
      if (!carry_fixpoint(p, n, n.bodies[1], *carry, params, 0)) return false;
      if (n.bodies[1].outputs.size() != carry->size()) return false;
      if (!check_body(p, n, n.bodies[0], params(*carry))) return false;
      const std::vector<Facts> extra = outputs_of(n.bodies[0]);
      if (extra.size() > 1) return false;
      for (const Facts& e : extra)
        if (e.dtype != DType::bool_ || !e.shape.empty() || !e.exact || (p.smooth && e.varies))
          return false;
      results = params(*carry);
      break;
    }
    case Op::kFori: {
      if (n.bodies.size() != 1) return false;
      const int64_t trips = std::max<int64_t>(0, n.upper - n.lower);
      if (trips > kMaxTrips || std::abs(n.lower) > 1000) return false;
      Facts i;
      i.dtype = DType::i32;
      i.range = {static_cast<double>(n.lower), static_cast<double>(std::max(n.lower, n.upper - 1))};
      std::optional<std::vector<Facts>> carry = start_carry(arg_facts(p, n, 0, n.operands), n.carry);
      if (!carry) return false;
      auto params = [&](const std::vector<Facts>& c) {
        std::vector<Facts> all{i};
        all.insert(all.end(), c.begin(), c.end());
        return all;
      };
      if (!carry_fixpoint(p, n, n.bodies[0], *carry, params, 0)) return false;
      if (n.bodies[0].outputs.size() != carry->size()) return false;
      results = *carry;
      break;
    }
    case Op::kScan: {
      if (n.bodies.size() != 1 || n.carries < 0 || n.carries > n.operands) return false;
      std::optional<std::vector<Facts>> carry = start_carry(arg_facts(p, n, 0, n.carries), n.carry);
      if (!carry) return false;
      const std::vector<Facts> xs = arg_facts(p, n, n.carries, n.operands);
      int64_t length = n.lower;
      std::vector<Facts> slices;
      for (const Facts& x : xs) {
        if (x.shape.empty() || x.shape[0] != xs[0].shape[0]) return false;
        length = x.shape[0];
        slices.push_back(slice_facts(x));
      }
      if (length < 0 || length > kMaxTrips) return false;
      auto params = [&](const std::vector<Facts>& c) {
        std::vector<Facts> all = c;
        all.insert(all.end(), slices.begin(), slices.end());
        return all;
      };
      if (!carry_fixpoint(p, n, n.bodies[0], *carry, params, 0)) return false;
      results = *carry;
      const std::vector<Facts> out = outputs_of(n.bodies[0]);
      for (size_t k = carry->size(); k < out.size(); ++k)
        results.push_back(stacked_facts(out[k], length));
      break;
    }
    default: return false;
  }
  if (results.empty() || !small_enough(results)) return false;
  n.results = std::move(results);
  n.facts = n.results[0];
  return true;
}

bool recheck(Program& p) {
  for (Node& n : p.nodes) {
    if (is_control(n.op)) {
      if (!infer_control(p, n)) return false;
      continue;
    }
    std::optional<Facts> f = infer(p, n);
    if (!f) return false;
    n.facts = *f;
  }
  return true;
}

}  // namespace difftest

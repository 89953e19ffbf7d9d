// The program generator. It grows a DAG one operation at a time: it draws an operation, takes
// operands among the values so far (recent ones more often, so chains form and fuse; any
// earlier one otherwise, so subexpressions are shared) or new inputs shaped to broadcast, and
// keeps the operation only when infer() accepts it. When an operation's domain refuses an
// operand (log of a possibly negative value), the operand is wrapped first (log(x*x + 1)).
#include "generator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"

namespace difftest {
namespace {

// Attempts per wanted operation before the generator settles for a shorter program.
constexpr int kAttemptsPerOp = 8;
// At most this many outputs (sinks of the DAG are preferred).
constexpr int kMaxOutputs = 4;

// Dimensions of generated shapes; one program in kLargeOneIn gets large ones, so that kernels
// are long enough to be split across threads.
const std::vector<int64_t> kDims = {1, 2, 3, 4, 5, 6, 8, 16};
const std::vector<int64_t> kLargeDims = {64, 128, 256, 300, 512};
constexpr int kLargeOneIn = 50;
// The share of non-differentiated float inputs of non-smooth programs that hold special values.
constexpr double kSpecialInputs = 0.2;

// Control flow: the weight of a loop or branch among the steps, how deep they nest, how many
// operations a body has (domain wrappers aside), how large the values loops take are, how
// often a body picks a value of an enclosing program, and the largest data-dependent
// while_loop trip count.
constexpr int kControlWeight = 6;
constexpr size_t kMaxDepth = 2;
constexpr int kMaxBodyOps = 5;
constexpr int64_t kMaxLoopElements = 1 << 12;
constexpr double kOuterPick = 0.1;
constexpr int64_t kMaxWhileTrips = 8;

// Value ranges for inputs. Float endpoints are exact in f32, so rounding keeps values inside.
const std::vector<Interval> kFloatRanges = {{-2, 2},    {-1, 1},   {0.5, 4}, {-8, 8},
                                            {0.125, 2}, {-32, 32}, {1, 64},  {-0.75, 0.25}};
const std::vector<Interval> kIntRanges = {{-8, 8}, {0, 16}, {-1000, 1000}, {0, 40}};
const std::vector<Interval> kUintRanges = {{0, 16}, {0, 1000}, {0, 40}};
const std::vector<double> kFloatScalars = {0.5, 2, -1.5, 3, 1, 0.25, -4, 10};
const std::vector<double> kIntScalars = {1, 2, 3, -1, 7, 31, 0, -5};

class Generator {
 public:
  Generator(Rng& rng, const GenOptions& options, uint64_t id)
      : rng_(rng), options_(options), values_(rng.uniform(0, INT64_MAX)) {
    program_.id = id;
    program_.smooth = rng_.chance(0.6);
    program_.threefry_original = rng_.chance(0.2);
    float_ = rng_.chance(0.75) ? DType::f32 : DType::f64;
    base_ = random_shape();
  }

  Program run() {
    const int inputs = static_cast<int>(rng_.uniform(1, 4));
    for (int i = 0; i < inputs; ++i) {
      DType d = random_dtype();
      new_input(d, variant_of(base_), random_range(d));
    }
    const int want = static_cast<int>(rng_.uniform(1, std::max(1, options_.max_ops)));
    for (int attempt = 0; attempt < kAttemptsPerOp * want && program_.num_ops() < want; ++attempt)
      step();
    choose_outputs();
    prune(program_);
    return std::move(program_);
  }

 private:
  // The program being grown: the whole program, or the body of a control-flow node.
  Program& cur() const { return *frames_.back().prog; }
  const Facts& facts(int i) const { return cur().nodes[static_cast<size_t>(i)].facts; }
  int size() const { return static_cast<int>(cur().nodes.size()); }

  // Adds `n` if infer() accepts it; returns its index, or -1.
  int add(Node n) {
    for (int a : n.args)
      if (a < 0) return -1;
    if (is_control(n.op)) {
      if (!infer_control(cur(), n)) return -1;
    } else {
      std::optional<Facts> f = infer(cur(), n);
      if (!f) return -1;
      n.facts = *f;
    }
    cur().nodes.push_back(std::move(n));
    return size() - 1;
  }
  int add(Op op, std::vector<int> args) {
    Node n;
    n.op = op;
    n.args = std::move(args);
    return add(std::move(n));
  }
  int add_scalar(Op op, int a, double c, bool first = false) {
    Node n;
    n.op = op;
    n.args = {a};
    n.scalar = c;
    n.scalar_first = first;
    return add(std::move(n));
  }

  // ---- Inputs and their values ----

  Shape random_shape() {
    if (rng_.uniform(1, kLargeOneIn) == 1)
      return Shape{rng_.pick(kLargeDims), rng_.pick(kLargeDims)};
    static const std::vector<int> kRankWeights = {1, 3, 4, 2};
    Shape s(rng_.weighted(kRankWeights), 1);
    for (int64_t& d : s) d = rng_.pick(kDims);
    if (!s.empty() && rng_.chance(0.05))
      s[static_cast<size_t>(rng_.uniform(0, static_cast<int64_t>(s.size()) - 1))] = 0;
    return s;
  }

  // A shape that broadcasts with `s`: itself, a suffix, some dimensions set to 1, a scalar,
  // or one with an extra leading dimension.
  Shape variant_of(const Shape& s) {
    static const std::vector<int> kWeights = {10, 3, 3, 2, 2};
    Shape v = s;
    switch (rng_.weighted(kWeights)) {
      case 0: break;
      case 1:
        v.erase(v.begin(), v.begin() + rng_.uniform(0, static_cast<int64_t>(v.size())));
        break;
      case 2:
        for (int64_t& d : v)
          if (rng_.chance(0.4)) d = 1;
        break;
      case 3: v.clear(); break;
      case 4:
        if (v.size() < 4) v.insert(v.begin(), rng_.pick(kDims));
        break;
    }
    return v;
  }

  DType random_dtype() {
    static const std::vector<int> kWeights = {10, 1, 3, 1,
                                              2};  // float_, other float, i32, u32, bool
    switch (rng_.weighted(kWeights)) {
      case 0: return float_;
      case 1: return float_ == DType::f32 ? DType::f64 : DType::f32;
      case 2: return DType::i32;
      case 3: return DType::u32;
      default: return DType::bool_;
    }
  }

  Interval random_range(DType d) {
    switch (d) {
      case DType::f32:
      case DType::f64: return rng_.pick(kFloatRanges);
      case DType::i32: return rng_.chance(0.1) ? full_range(d) : rng_.pick(kIntRanges);
      case DType::u32: return rng_.chance(0.1) ? full_range(d) : rng_.pick(kUintRanges);
      case DType::bool_: return {0, 1};
    }
    return {0, 1};
  }

  // One element inside `r`. Differentiated inputs keep kInputMargin from the ends, so that
  // finite-difference steps stay inside the range every rule was checked on; the others may
  // take the ends and other telling values (0, -0.0, -1, integers).
  double draw(DType d, Interval r, bool differentiated, bool special) {
    if (d == DType::bool_) return static_cast<double>(values_.uniform(0, 1));
    if (special && values_.chance(0.5)) {
      const double inf = std::numeric_limits<double>::infinity();
      const bool f32 = d == DType::f32;
      const double big =
          f32 ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
      const double tiny = f32 ? std::numeric_limits<float>::denorm_min()
                              : std::numeric_limits<double>::denorm_min();
      const double normal =
          f32 ? std::numeric_limits<float>::min() : std::numeric_limits<double>::min();
      const std::vector<double> kSpecial = {std::nan(""), inf,  -inf, -0.0,    0.0,
                                            big,          -big, tiny, -normal, 1e30};
      return values_.pick(kSpecial);
    }
    if (is_float(d)) {
      if (differentiated) return values_.real(r.lo + kInputMargin, r.hi - kInputMargin);
      if (values_.chance(0.85)) return values_.real(r.lo, r.hi);
      std::vector<double> telling = {r.lo, r.hi, std::round((r.lo + r.hi) / 2)};
      if (r.contains(0)) telling.push_back(values_.chance(0.5) ? 0.0 : -0.0);
      return values_.pick(telling);
    }
    if (values_.chance(0.7))
      return static_cast<double>(
          values_.uniform(static_cast<int64_t>(r.lo), static_cast<int64_t>(r.hi)));
    std::vector<double> telling = {r.lo, r.hi};
    for (double x : {0.0, -1.0, 1.0})
      if (r.contains(x)) telling.push_back(x);
    return values_.pick(telling);
  }

  Array draw_array(DType d, const Shape& shape, Interval r, bool differentiated, bool weak,
                   bool special = false) {
    std::vector<double> xs(static_cast<size_t>(tj::shape_size(shape)));
    for (double& x : xs) x = draw(d, r, differentiated, special);
    if (weak) {
      switch (d) {
        case DType::f32: return Array(static_cast<float>(xs[0]));
        case DType::f64: return Array(xs[0]);
        default: return Array(static_cast<int>(xs[0]));
      }
    }
    switch (d) {
      case DType::f32: return tj::array(std::vector<float>(xs.begin(), xs.end()), shape);
      case DType::f64: return tj::array(xs, shape);
      case DType::i32: return tj::array(std::vector<int32_t>(xs.begin(), xs.end()), shape);
      case DType::u32: return tj::array(std::vector<uint32_t>(xs.begin(), xs.end()), shape);
      case DType::bool_: {
        std::vector<bool> bs;
        for (double x : xs) bs.push_back(x != 0);
        return tj::array(bs, shape);
      }
    }
    return Array();
  }

  // A new input leaf. Float inputs are mostly differentiated (argument 0, a vector or a map
  // entry); the others go to argument 1. A few 0-d inputs are weakly typed C++ scalars. In
  // programs that are not smooth, some float inputs hold NaN, infinities, -0.0, subnormals.
  int new_input(DType d, Shape shape, Interval r) {
    if (depth() > 0) {  // inputs are the program's: made there, captured into the bodies
      std::vector<Frame> saved = frames_;
      frames_.resize(1);
      int i = new_input(d, std::move(shape), r);
      frames_ = saved;
      return import_root(i);
    }
    while (tj::shape_size(shape) > kMaxElements) shape.erase(shape.begin());
    Node n;
    n.op = Op::kInput;
    const bool differentiated = is_float(d) && rng_.chance(0.7);
    const bool special =
        is_float(d) && !differentiated && !program_.smooth && rng_.chance(kSpecialInputs);
    const bool weak = shape.empty() && d != DType::u32 && d != DType::bool_ && rng_.chance(0.1);
    if (differentiated) {
      n.slot.arg = 0;
      if (rng_.chance(0.4)) n.slot.key = absl::StrCat("k", next_key_++);
    } else {
      n.slot.arg = 1;
    }
    n.value = draw_array(d, shape, r, differentiated, weak, special);
    // Sometimes the very array of an earlier input, so that arguments alias one buffer.
    for (const Node& m : program_.nodes)
      if (m.op == Op::kInput && m.facts.dtype == d && m.facts.shape == shape &&
          m.facts.weak == weak && m.facts.varies == differentiated && m.facts.special == special &&
          rng_.chance(0.1)) {
        n.value = m.value;
        r = m.facts.range;
      }
    n.facts = Facts{d, shape, weak, r, /*exact=*/true, /*varies=*/differentiated, special};
    if (special)
      n.facts.range = {-std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::infinity()};
    return add(std::move(n));
  }

  // ---- Operands ----

  // An existing value, recent ones preferred (chains), among those `ok` accepts; -1 if none.
  int pick(const std::function<bool(const Facts&)>& ok) {
    if (depth() > 0 && rng_.chance(kOuterPick)) {  // a value of an enclosing program, captured
      const Frame top = frames_.back();
      frames_.pop_back();
      int i = pick([&](const Facts& f) { return ok(f) && loopable(f); });
      frames_.push_back(top);
      if (i >= 0) return capture(top, i);
    }
    std::vector<int> all;
    for (int i = 0; i < size(); ++i)
      if (ok(facts(i))) all.push_back(i);
    if (all.empty()) return -1;
    if (rng_.chance(0.5)) {
      std::vector<int> recent(
          all.end() - std::min<ptrdiff_t>(3, static_cast<ptrdiff_t>(all.size())), all.end());
      return rng_.pick(recent);
    }
    return rng_.pick(all);
  }
  int pick_any() {
    return pick([](const Facts&) { return true; });
  }
  int pick_kind(std::initializer_list<int> kinds) {
    return pick([&](const Facts& f) {
      return std::count(kinds.begin(), kinds.end(), dtype_kind(f.dtype)) > 0;
    });
  }

  // A second operand for `a`: an existing value whose shape broadcasts, or a new input shaped
  // to broadcast with it. Mostly of a's dtype; in a third of the cases any dtype, which the
  // operation promotes (JAX's standard promotion).
  int partner(int a) {
    if (a < 0) return -1;
    const Facts fa = facts(a);
    const bool mix = rng_.chance(0.3);
    auto fits = [&](const Facts& f) {
      if (!mix && dtype_kind(f.dtype) != dtype_kind(fa.dtype)) return false;
      if (!mix && !f.weak && !fa.weak && f.dtype != fa.dtype) return false;
      if (!mix && f.weak && fa.weak && f.dtype != fa.dtype) return false;
      size_t r = std::max(f.shape.size(), fa.shape.size());
      for (size_t i = 0; i < r; ++i) {
        int64_t x = i < r - f.shape.size() ? 1 : f.shape[i - (r - f.shape.size())];
        int64_t y = i < r - fa.shape.size() ? 1 : fa.shape[i - (r - fa.shape.size())];
        if (x != y && x != 1 && y != 1) return false;
      }
      return true;
    };
    if (rng_.chance(0.7)) {
      int b = pick(fits);
      if (b >= 0) return b;
    }
    DType d = mix ? random_dtype() : fa.weak ? float_if(fa.dtype) : fa.dtype;
    return new_input(d, variant_of(fa.shape), random_range(d));
  }
  DType float_if(DType d) { return is_float(d) ? float_ : d; }

  // A value derived from `a` that lies in [1, ...): a*a + 1 when that stays in range, else
  // tanh(a) + 2. Used where log, sqrt, pow or a divisor would refuse `a`.
  int positive(int a) {
    if (a < 0) return -1;
    if (facts(a).range.lo >= 1) return a;
    int s = add(Op::kSquare, {a});
    if (s >= 0) {
      int t = add_scalar(Op::kAdd, s, 1);
      if (t >= 0 && facts(t).range.lo >= 1) return t;
    }
    return add_scalar(Op::kAdd, add(Op::kTanh, {a}), 2);
  }
  // A value derived from `a` within [-1, 1].
  int bounded(int a) {
    if (a < 0) return -1;
    return add(rng_.chance(0.5) ? Op::kTanh : Op::kSin, {a});
  }

  std::vector<int64_t> random_axes(int64_t rank, bool* all) {
    *all = rank == 0 || rng_.chance(0.3);
    std::vector<int64_t> axes;
    if (*all) return axes;
    for (int64_t i = 0; i < rank; ++i)
      if (rng_.chance(0.5)) axes.push_back(rng_.chance(0.2) ? i - rank : i);
    if (axes.empty()) axes.push_back(rng_.uniform(0, rank - 1));
    if (rng_.chance(0.3)) std::reverse(axes.begin(), axes.end());
    return axes;
  }

  // A shape of `size` elements in 0 to 4 dimensions, sometimes with a -1.
  Shape reshape_target(int64_t size) {
    Shape s;
    if (size == 0) {
      s = {0};
      if (rng_.chance(0.5)) s.insert(s.begin() + rng_.uniform(0, 1), rng_.pick(kDims));
      return s;
    }
    std::vector<int64_t> factors;
    for (int64_t n = size, f = 2; n > 1;) {
      if (n % f == 0)
        factors.push_back(f), n /= f;
      else
        ++f;
    }
    const int64_t dims = rng_.uniform(size == 1 ? 0 : 1, 4);
    s.assign(static_cast<size_t>(dims), 1);
    for (int64_t f : factors)
      s[static_cast<size_t>(rng_.uniform(0, std::max<int64_t>(dims - 1, 0)))] *= f;
    if (dims > 0 && rng_.chance(0.2)) s[static_cast<size_t>(rng_.uniform(0, dims - 1))] = -1;
    return s;
  }

  // ---- Operations ----

  int step() {
    enum Category {
      kMath,
      kUnary,
      kArith,
      kScalar,
      kBits,
      kCompare,
      kWhere,
      kReduce,
      kLayout,
      kMatmul,
      kCast,
      kSource,
      kRepeat,
      kRandom,
      kRounding,
      kArgBest,
      kStack,
      kIndexing,
      kContract,
      kControl
    };
    // Without loops, no control flow is drawn (kControl comes last).
    static const std::vector<int> kWeights = {18, 8, 22, 10, 5, 5, 6, 12, 14, 4, 6, 2, 2, 2,
                                              5,  2, 2,  6,  5, kControlWeight};
    static const std::vector<int> kNoLoops(kWeights.begin(), kWeights.end() - 1);
    switch (static_cast<Category>(rng_.weighted(options_.loops ? kWeights : kNoLoops))) {
      case kMath: return math();
      case kUnary: {
        static const std::vector<Op> kOps = {Op::kNeg, Op::kAbs, Op::kSign, Op::kSquare,
                                             Op::kStopGradient};
        return add(rng_.pick(kOps), {pick_any()});
      }
      case kArith: return arith();
      case kScalar: return scalar_op();
      case kBits: {
        static const std::vector<Op> kOps = {Op::kAnd, Op::kOr, Op::kXor, Op::kShl, Op::kShr};
        int a = pick_kind({0, 1});
        if (a < 0) return -1;
        return add(rng_.pick(kOps), {a, partner(a)});
      }
      case kCompare: {
        int a = pick_any();
        return add(compare_op(), {a, partner(a)});
      }
      case kWhere: return where();
      case kReduce: return reduce();
      case kLayout: return layout();
      case kMatmul: return matmul();
      case kCast: {
        int a = pick_any();
        Node n;
        n.args = {a};
        if (rng_.chance(0.85)) {
          n.op = Op::kAsType;
          static const std::vector<DType> kAll = {DType::f32, DType::f64, DType::i32, DType::u32,
                                                  DType::bool_};
          n.dtype = rng_.pick(kAll);
        } else {
          n.op = Op::kBitcast;
          static const std::vector<DType> k32 = {DType::f32, DType::i32, DType::u32};
          n.dtype = rng_.pick(k32);
        }
        return add(std::move(n));
      }
      case kSource: return source();
      case kRandom: return random();
      case kRounding: return rounding();
      case kArgBest: return argbest();
      case kStack: return stack();
      case kIndexing: return indexing();
      case kContract: return contract();
      case kControl: return control();
      case kRepeat: {  // an operation computed twice: common subexpressions for CSE to merge
        int a = pick([](const Facts&) { return true; });
        if (a < 0 || cur().nodes[static_cast<size_t>(a)].op == Op::kInput) return -1;
        return add(Node(cur().nodes[static_cast<size_t>(a)]));
      }
    }
    return -1;
  }

  Op compare_op() {
    static const std::vector<Op> kOps = {Op::kEq, Op::kNe, Op::kLt, Op::kLe, Op::kGt, Op::kGe};
    return rng_.pick(kOps);
  }

  int math() {
    static const std::vector<Op> kOps = {Op::kExp, Op::kLog,  Op::kLog1p, Op::kSin,
                                         Op::kCos, Op::kTanh, Op::kSqrt};
    Op op = rng_.pick(kOps);
    int a = rng_.chance(0.85) ? pick_kind({2}) : pick_any();
    if (a < 0) return -1;
    int r = add(op, {a});
    if (r >= 0) return r;
    bool needs_positive = op == Op::kLog || op == Op::kLog1p || op == Op::kSqrt;
    return add(op, {needs_positive ? positive(a) : bounded(a)});
  }

  int arith() {
    static const std::vector<Op> kOps = {Op::kAdd, Op::kSub,     Op::kMul,    Op::kDiv,
                                         Op::kPow, Op::kMaximum, Op::kMinimum};
    Op op = rng_.pick(kOps);
    int a = rng_.chance(0.8) ? pick_kind({2}) : pick_kind({1, 2});
    if (a < 0) return -1;
    int b = partner(a);
    int r = add(op, {a, b});
    if (r >= 0 || b < 0) return r;
    if (op == Op::kDiv) return add(op, {a, positive(b)});
    if (op == Op::kPow) return add(op, {positive(a), bounded(b)});
    if (op == Op::kAdd || op == Op::kSub || op == Op::kMul)
      return add(op, {bounded(a), bounded(b)});
    return -1;
  }

  int scalar_op() {
    int a = pick_any();
    if (a < 0) return -1;
    const Facts f = facts(a);
    Op op;
    double c;
    if (f.dtype == DType::bool_) {
      static const std::vector<Op> kOps = {Op::kAnd, Op::kOr, Op::kXor, Op::kEq, Op::kNe};
      op = rng_.pick(kOps);
      c = static_cast<double>(rng_.uniform(0, 1));
    } else if (is_float(f.dtype)) {
      static const std::vector<Op> kOps = {Op::kAdd,     Op::kSub,     Op::kMul, Op::kDiv, Op::kPow,
                                           Op::kMaximum, Op::kMinimum, Op::kLt,  Op::kGe};
      op = rng_.pick(kOps);
      c = rng_.pick(kFloatScalars);
      if (op == Op::kPow) c = rng_.chance(0.5) ? 2 : 0.5;
    } else {
      static const std::vector<Op> kOps = {Op::kAdd, Op::kSub, Op::kMul, Op::kDiv, Op::kMaximum,
                                           Op::kShr, Op::kAnd, Op::kGt,  Op::kEq};
      op = rng_.pick(kOps);
      c = rng_.pick(kIntScalars);
    }
    int r = add_scalar(op, a, c, rng_.chance(0.3));
    if (r >= 0) return r;
    return add_scalar(op, op == Op::kPow ? positive(a) : a, c, false);
  }

  int where() {
    int c = pick_kind({0});
    if (c < 0 || rng_.chance(0.3)) {
      int x = pick_any();
      c = add(compare_op(), {x, partner(x)});
    }
    int a = pick_any();
    if (a < 0 || c < 0) return -1;
    return add(Op::kWhere, {c, a, partner(a)});
  }

  int reduce() {
    static const std::vector<Op> kOps = {Op::kSum, Op::kSum, Op::kMean, Op::kMax};
    Node n;
    n.op = rng_.pick(kOps);
    int a = pick_any();
    if (a < 0) return -1;
    n.args = {a};
    n.axes = random_axes(static_cast<int64_t>(facts(a).shape.size()), &n.all_axes);
    return add(std::move(n));
  }

  int layout() {
    int a = pick_any();
    if (a < 0) return -1;
    const Facts f = facts(a);
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    Node n;
    n.args = {a};
    switch (rng_.uniform(0, 5)) {
      case 0:
        n.op = Op::kReshape;
        n.shape = reshape_target(tj::shape_size(f.shape));
        break;
      case 1: {
        n.op = Op::kBroadcastTo;
        n.shape = f.shape;
        for (int64_t& d : n.shape)
          if (d == 1 && rng_.chance(0.5)) d = rng_.pick(kDims);
        for (int64_t k = rng_.uniform(0, 2); k > 0 && n.shape.size() < 4; --k)
          n.shape.insert(n.shape.begin(), rng_.pick(kDims));
        break;
      }
      case 2: {
        n.op = Op::kTranspose;
        for (int64_t i = 0; i < rank; ++i) n.axes.push_back(i);
        for (int64_t i = rank - 1; i > 0; --i)
          std::swap(n.axes[static_cast<size_t>(i)],
                    n.axes[static_cast<size_t>(rng_.uniform(0, i))]);
        for (int64_t& x : n.axes)
          if (rng_.chance(0.2)) x -= rank;
        break;
      }
      case 3:
        n.op = Op::kSlice;
        for (int64_t d : f.shape) {
          int64_t s = rng_.uniform(0, d);
          n.axes.push_back(s);
          n.limits.push_back(rng_.uniform(s, d));
        }
        break;
      case 4:
        if (rank == 0 || f.shape[0] == 0) return -1;
        n.op = Op::kIndex;
        n.index = rng_.uniform(-f.shape[0], f.shape[0] - 1);
        break;
      default: return concatenate(a);
    }
    return add(std::move(n));
  }

  // a with one or two more operands that agree with it except along the axis: a itself, an
  // existing value, or a new input.
  int concatenate(int a) {
    const Facts f = facts(a);
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    if (rank == 0) return -1;
    Node n;
    n.op = Op::kConcatenate;
    const int64_t axis = rng_.uniform(0, rank - 1);
    n.index = rng_.chance(0.2) ? axis - rank : axis;
    n.args = {a};
    for (int64_t k = rng_.uniform(1, 2); k > 0; --k) {
      int b = -1;
      switch (rng_.uniform(0, 2)) {
        case 0: b = a; break;
        case 1:
          b = pick([&](const Facts& g) {
            if (g.dtype != f.dtype || g.shape.size() != f.shape.size()) return false;
            for (int64_t i = 0; i < rank; ++i)
              if (i != axis && g.shape[static_cast<size_t>(i)] != f.shape[static_cast<size_t>(i)])
                return false;
            return true;
          });
          break;
        default: break;
      }
      if (b < 0) {
        Shape s = f.shape;
        s[static_cast<size_t>(axis)] = rng_.uniform(0, 4);
        b = new_input(float_if(f.dtype), s, random_range(float_if(f.dtype)));
      }
      n.args.push_back(b);
    }
    return add(std::move(n));
  }

  int matmul() {
    int a = pick([](const Facts& f) {
      return f.dtype != DType::bool_ && (f.shape.size() == 1 || f.shape.size() == 2);
    });
    if (a < 0) return -1;
    const Facts f = facts(a);
    const int64_t k = f.shape.back();
    int b = pick([&](const Facts& g) {
      return dtype_kind(g.dtype) == dtype_kind(f.dtype) &&
             (g.shape.size() == 1 || g.shape.size() == 2) && g.shape[0] == k;
    });
    if (b < 0 || rng_.chance(0.4)) {
      Shape s = {k};
      if (rng_.chance(0.7)) s.push_back(rng_.pick(kDims));
      DType d = float_if(f.dtype);
      b = new_input(d, s, random_range(d));
    }
    int r = add(Op::kMatmul, {a, b});
    if (r >= 0) return r;
    return add(Op::kMatmul, {bounded(a), bounded(b)});  // products and sums stay in range
  }

  // ---- The wider jnp surface (issue 14) ----

  // A value not moved by finite differences (any value in programs that are not smooth).
  int pick_steady_or(const std::function<bool(const Facts&)>& ok) {
    int a = pick(ok);
    if (a >= 0 && cur().smooth && facts(a).varies && rng_.chance(0.7)) {
      int b = pick([&](const Facts& f) { return ok(f) && !f.varies; });
      if (b >= 0) return b;
    }
    return a;
  }

  // floor, ceil, round and clip.
  int rounding() {
    static const std::vector<Op> kOps = {Op::kFloor, Op::kCeil, Op::kRound, Op::kClip, Op::kClip};
    const Op op = rng_.pick(kOps);
    int a = pick_steady_or([](const Facts& f) { return f.dtype != DType::bool_; });
    if (a < 0) return -1;
    if (op != Op::kClip) {
      int r = add(op, {a});
      // A varying value spanning a jump: scaled into (0, 1) first, where floor and ceil are
      // constant (round: below 1/2).
      if (r < 0 && is_float(facts(a).dtype))
        r = add(op, {add_scalar(Op::kMul, add_scalar(Op::kAdd, bounded(a), 1.5), 0.125)});
      return r;
    }
    const Facts f = facts(a);
    Node n;
    n.op = Op::kClip;
    if (rng_.chance(0.3)) {  // array bounds
      n.args = {a, partner(a), partner(a)};
      int r = add(std::move(n));
      if (r >= 0) return r;
      n = Node();
      n.op = Op::kClip;
    }
    n.args = {a};
    const bool integer = !is_float(f.dtype);
    auto point = [&] {
      double lo = std::isfinite(f.range.lo) ? std::max(f.range.lo, -1e6) : -4;
      double hi = std::isfinite(f.range.hi) ? std::min(f.range.hi, 1e6) : 4;
      if (f.dtype == DType::u32) lo = std::max(lo, 0.0);
      return integer ? std::round(rng_.real(lo, hi)) : std::round(rng_.real(lo, hi) * 8) / 8;
    };
    double lo = point(), hi = point();
    if (lo > hi && rng_.chance(0.8)) std::swap(lo, hi);  // sometimes lo > hi: all hi, as jnp
    n.scalar = lo;
    n.scalar_hi = hi;
    int r = add(Node(n));
    if (r >= 0 || !std::isfinite(f.range.lo) || !std::isfinite(f.range.hi)) return r;
    // A kink on a varying value: bounds outside its range (no effect, or a constant).
    const double below = std::floor(f.range.lo) - 1, above = std::ceil(f.range.hi) + 1;
    if (rng_.chance(0.7)) {
      n.scalar = f.dtype == DType::u32 ? 0.0 : below;
      n.scalar_hi = above;
    } else {
      n.scalar = above;
      n.scalar_hi = above + 1;
    }
    return add(std::move(n));
  }

  int argbest() {
    // Exact operands: a last-bit difference could move the index.
    int a = pick_steady_or([](const Facts& f) { return f.exact || !is_float(f.dtype); });
    if (a < 0) return -1;
    Node n;
    n.op = rng_.chance(0.5) ? Op::kArgmax : Op::kArgmin;
    n.args = {a};
    const int64_t rank = static_cast<int64_t>(facts(a).shape.size());
    n.all_axes = rank == 0 || rng_.chance(0.3);
    if (!n.all_axes) n.axes = {rng_.uniform(-rank, rank - 1)};
    return add(std::move(n));
  }

  // stack of a with copies of itself, values of its shape, or new inputs.
  int stack() {
    int a = pick_any();
    if (a < 0) return -1;
    const Facts f = facts(a);
    Node n;
    n.op = Op::kStack;
    n.args = {a};
    for (int64_t k = rng_.uniform(0, 2); k > 0; --k) {
      int b = -1;
      if (rng_.chance(0.3)) b = a;
      if (b < 0 && rng_.chance(0.5)) b = pick([&](const Facts& g) { return g.shape == f.shape; });
      if (b < 0) {
        const DType d = rng_.chance(0.3) ? random_dtype() : float_if(f.dtype);
        b = new_input(d, f.shape, random_range(d));
      }
      n.args.push_back(b);
    }
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    n.index = rng_.uniform(-rank - 1, rank);
    return add(std::move(n));
  }

  // An i32 index into an axis of length `len`: mostly in range, sometimes past either end
  // (clamped or dropped by the op), as a new input or an integer value of the program.
  int index_value(int64_t len, const Shape& shape) {
    if (shape.empty() && rng_.chance(0.3)) {
      int i = pick([](const Facts& f) {
        return f.shape.empty() && (f.dtype == DType::i32 || f.dtype == DType::u32) &&
               f.range.hi - f.range.lo < 64;
      });
      if (i >= 0) return i;
    }
    const Interval r = rng_.chance(0.6) ? Interval{0, static_cast<double>(std::max<int64_t>(len - 1, 0))}
                                        : Interval{-static_cast<double>(len) - 2, static_cast<double>(len) + 2};
    return new_input(DType::i32, shape, r);
  }
  std::vector<int> starts_for(const Shape& s) {
    std::vector<int> out;
    for (int64_t d : s) out.push_back(index_value(d, {}));
    return out;
  }

  int indexing() {
    const int64_t kind = rng_.uniform(0, 5);  // take, dynamic_slice, its update, at (half)
    if (kind == 0) return take();
    if (kind >= 3) return at_update();
    int a = pick_any();
    if (a < 0) return -1;
    const Facts f = facts(a);
    Node n;
    n.args = {a};
    if (kind == 1) {
      n.op = Op::kDynamicSlice;
      for (int64_t d : f.shape) n.shape.push_back(rng_.chance(0.2) ? d : rng_.uniform(0, d));
    } else {  // an update no larger than a: an existing value or a new input
      n.op = Op::kDynamicUpdateSlice;
      int u = pick([&](const Facts& g) {
        if (g.dtype != f.dtype || g.shape.size() != f.shape.size() || g.shape == f.shape) return false;
        for (size_t i = 0; i < g.shape.size(); ++i)
          if (g.shape[i] > f.shape[i]) return false;
        return true;
      });
      if (u < 0 || rng_.chance(0.5)) {
        Shape s;
        for (int64_t d : f.shape) s.push_back(rng_.uniform(0, d));
        u = new_input(f.dtype, s, f.dtype == DType::bool_ ? Interval{0, 1} : random_range(f.dtype));
      }
      n.args.push_back(u);
    }
    for (int s : starts_for(f.shape)) n.args.push_back(s);
    return add(std::move(n));
  }

  int take() {
    int a = pick([](const Facts& f) { return !f.shape.empty(); });
    if (a < 0) return -1;
    const Facts f = facts(a);
    Node n;
    n.op = Op::kTake;
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    n.index = rng_.uniform(-rank, rank - 1);
    const int64_t len = f.shape[static_cast<size_t>(n.index < 0 ? n.index + rank : n.index)];
    static const std::vector<Shape> kIndexShapes = {{}, {1}, {2}, {3}, {5}, {2, 3}, {0}};
    n.args = {a, index_value(len, rng_.pick(kIndexShapes))};
    return add(std::move(n));
  }

  int at_update() {
    static const std::vector<Op> kOps = {Op::kAtSet, Op::kAtAdd, Op::kAtAdd, Op::kAtMultiply,
                                         Op::kAtMin, Op::kAtMax};
    const Op op = rng_.pick(kOps);
    int a = pick([&](const Facts& f) {
      return !f.shape.empty() && (f.dtype != DType::bool_ || op == Op::kAtSet);
    });
    if (a < 0) return -1;
    const Facts f = facts(a);
    const int64_t len = f.shape[0];
    Node n;
    n.op = op;
    n.args = {a};
    n.static_index = rng_.chance(0.4);
    if (n.static_index)
      n.index = rng_.chance(0.8) ? rng_.uniform(-len, std::max<int64_t>(len - 1, 0))
                                 : rng_.uniform(-len - 2, len + 1);
    else
      n.args.push_back(index_value(len, {}));
    const Shape row(f.shape.begin() + 1, f.shape.end());
    if (f.dtype != DType::bool_ && rng_.chance(0.4)) {
      n.scalar = is_float(f.dtype) ? rng_.pick(kFloatScalars) : std::abs(rng_.pick(kIntScalars));
    } else {
      int v = pick([&](const Facts& g) {
        std::optional<Shape> s = g.shape.size() <= row.size() ? std::optional<Shape>(row) : std::nullopt;
        if (g.dtype != f.dtype || !s) return false;
        for (size_t i = 0; i < g.shape.size(); ++i) {
          const int64_t d = g.shape[i], want = row[row.size() - g.shape.size() + i];
          if (d != want && d != 1) return false;
        }
        return true;
      });
      if (v < 0 || rng_.chance(0.5)) {
        Shape s = row;
        s.erase(s.begin(), s.begin() + rng_.uniform(0, static_cast<int64_t>(s.size())));
        v = new_input(f.dtype, s, f.dtype == DType::bool_ ? Interval{0, 1} : random_range(f.dtype));
      }
      n.args.push_back(v);
    }
    int r = add(Node(n));
    if (r >= 0 || n.scalar || op == Op::kAtSet || !is_float(f.dtype)) return r;
    // Products and sums that leave the range: bounded operands.
    n.args.front() = bounded(a);
    n.args.back() = bounded(n.args.back());
    return add(std::move(n));
  }

  // dot, tensordot and einsum: operands of matching sizes, existing ones or new inputs; when a
  // sum leaves the range, bounded operands.
  int contract() {
    auto operand = [&](const Shape& s, DType like) {
      int b = rng_.chance(0.5) ? pick([&](const Facts& g) {
        return g.shape == s && g.dtype != DType::bool_ && dtype_kind(g.dtype) == dtype_kind(like);
      })
                               : -1;
      if (b >= 0) return b;
      const DType d = rng_.chance(0.2) ? random_dtype() : float_if(like);
      return new_input(d == DType::bool_ ? float_ : d, s, random_range(d == DType::bool_ ? float_ : d));
    };
    auto small = [&] { return rng_.pick(kDims); };
    Node n;
    switch (rng_.uniform(0, 2)) {
      case 0: {  // dot
        n.op = Op::kDot;
        int a = pick([](const Facts& f) { return f.dtype != DType::bool_ && f.shape.size() <= 3; });
        if (a < 0) return -1;
        const Facts f = facts(a);
        Shape s;
        if (!f.shape.empty()) {
          s = {f.shape.back()};
          if (rng_.chance(0.6)) s.push_back(small());
          if (rng_.chance(0.2)) s.insert(s.begin(), small());
        } else if (rng_.chance(0.5)) {
          s = {small()};
        }
        n.args = {a, operand(s, f.dtype)};
        break;
      }
      case 1: {  // tensordot over 0 to 2 axes
        n.op = Op::kTensordot;
        n.index = rng_.uniform(0, 2);
        int a = pick([&](const Facts& f) {
          return f.dtype != DType::bool_ && static_cast<int64_t>(f.shape.size()) >= n.index &&
                 f.shape.size() <= 3;
        });
        if (a < 0) return -1;
        const Facts f = facts(a);
        Shape s(f.shape.end() - n.index, f.shape.end());
        if (rng_.chance(0.7)) s.push_back(small());
        n.args = {a, operand(s, f.dtype)};
        break;
      }
      default: {  // einsum: sizes per label from the first operand when one fits
        n.op = Op::kEinsum;
        n.index = rng_.uniform(0, static_cast<int64_t>(std::size(kEinsumSpecs)) - 1);
        const std::string spec = kEinsumSpecs[n.index].spec;
        const std::vector<std::string> subs = einsum_subscripts(spec);
        std::map<char, int64_t> sizes;
        int a = pick([&](const Facts& f) {
          if (f.dtype == DType::bool_ || f.shape.size() != subs[0].size()) return false;
          for (size_t i = 0; i < f.shape.size(); ++i)
            for (size_t j = 0; j < i; ++j)
              if (subs[0][i] == subs[0][j] && f.shape[i] != f.shape[j]) return false;
          return true;
        });
        if (a >= 0)
          for (size_t i = 0; i < subs[0].size(); ++i) sizes[subs[0][i]] = facts(a).shape[i];
        const DType like = a >= 0 ? facts(a).dtype : float_;
        for (size_t k = 0; k < subs.size(); ++k) {
          if (k == 0 && a >= 0) {
            n.args.push_back(a);
            continue;
          }
          Shape s;
          for (char c : subs[k]) {
            if (!sizes.contains(c)) sizes[c] = rng_.chance(0.1) ? 0 : small();
            s.push_back(sizes[c]);
          }
          n.args.push_back(operand(s, like));
        }
        break;
      }
    }
    int r = add(Node(n));
    if (r >= 0) return r;
    for (int& x : n.args) x = bounded(x);
    return add(std::move(n));
  }

  // A draw from tj::random with a key that is an input or derived from one.
  int random() {
    int key = pick([](const Facts& f) { return f.dtype == DType::u32 && f.shape == Shape{2}; });
    if (key < 0 || rng_.chance(0.3)) key = new_input(DType::u32, {2}, full_range(DType::u32));
    static const std::vector<Op> kOps = {Op::kRandomBits, Op::kUniform, Op::kUniform,
                                         Op::kNormal,     Op::kSplit,   Op::kFoldIn};
    Node n;
    n.op = rng_.pick(kOps);
    n.args = {key};
    n.shape = variant_of(base_);
    n.dtype = rng_.chance(0.7) ? float_ : DType::f64;
    n.index = n.op == Op::kSplit
                  ? rng_.uniform(-kSplitCount, kSplitCount - 1)
                  : rng_.uniform(0, static_cast<int64_t>(std::size(kUniformBounds)) - 1);
    if (n.op == Op::kFoldIn) n.scalar = static_cast<double>(rng_.uniform(0, 4294967295));
    return add(std::move(n));
  }

  int source() {
    Node n;
    static const std::vector<DType> kAll = {DType::f32, DType::f64, DType::i32, DType::u32,
                                            DType::bool_};
    switch (rng_.uniform(0, 2)) {
      case 0:
        n.op = Op::kArange;
        n.index = rng_.uniform(0, 10);
        n.dtype = rng_.pick(kAll);
        break;
      case 1: {
        n.op = Op::kFull;
        n.dtype = rng_.pick(kAll);
        n.shape = variant_of(base_);
        double v = n.dtype == DType::bool_ ? static_cast<double>(rng_.uniform(0, 1))
                   : is_float(n.dtype)     ? rng_.pick(kFloatScalars)
                                           : std::abs(rng_.pick(kIntScalars));
        n.value = Array(v);
        break;
      }
      default: {
        n.op = Op::kConst;
        DType d = random_dtype();
        Interval r = random_range(d);
        n.value = draw_array(d, variant_of(base_), r, false, false);
        n.facts = Facts{d, n.value.shape(), false, r, true, false};
        break;
      }
    }
    return add(std::move(n));
  }

  // Outputs: the sinks of the DAG (values nothing else uses), sometimes another value too;
  // each goes to the result's vector or map.
  void choose_outputs() {
    std::vector<bool> used(program_.nodes.size(), false);
    for (const Node& n : program_.nodes)
      for (int a : n.args) used[static_cast<size_t>(a)] = true;
    std::vector<int> outs;
    for (int i = size() - 1; i >= 0 && static_cast<int>(outs.size()) < kMaxOutputs; --i)
      if (!used[static_cast<size_t>(i)] && program_.nodes[static_cast<size_t>(i)].op != Op::kInput)
        outs.push_back(i);
    if (outs.empty() || rng_.chance(0.2))
      outs.push_back(static_cast<int>(rng_.uniform(0, size() - 1)));
    std::sort(outs.begin(), outs.end());
    outs.erase(std::unique(outs.begin(), outs.end()), outs.end());
    if (rng_.chance(0.1)) outs.push_back(outs[0]);  // one value as two outputs
    int key = 0;
    for (int o : outs) {
      program_.outputs.push_back(o);
      Slot s;
      if (rng_.chance(0.4)) s.key = absl::StrCat("o", key++);
      program_.out_slots.push_back(s);
    }
  }

  // ---- Control flow ----
  //
  // A body is grown like a program, in a frame of its own: its parameters are inputs, values of
  // the enclosing programs are captured (and new inputs are made in the whole program and
  // captured through every frame). Loop carries must keep their facts over every iteration
  // (rules.cpp takes them to a fixpoint): the generator declares float carries to range over
  // at least [-1, 1] and wraps a carry output whose range would leave its carry's in
  // sin(o * 2^-k) (integers: clamps it), so the fixpoint holds after one round.

  struct Frame {
    Program* prog;
    Node* owner;  // the control-flow node whose body this is (null for the whole program)
  };

  size_t depth() const { return frames_.size() - 1; }
  static bool loopable(const Facts& f) { return tj::shape_size(f.shape) <= kMaxLoopElements; }

  // In body frame `f`, the input capturing node i of the enclosing frame.
  int capture(const Frame& f, int i) {
    Node& owner = *f.owner;
    int64_t k = -1;
    for (size_t a = static_cast<size_t>(owner.operands); a < owner.args.size(); ++a)
      if (owner.args[a] == i) k = static_cast<int64_t>(a) - owner.operands;
    if (k < 0) {
      owner.args.push_back(i);
      k = static_cast<int64_t>(owner.args.size()) - 1 - owner.operands;
    }
    for (size_t j = 0; j < f.prog->nodes.size(); ++j) {
      const Node& b = f.prog->nodes[j];
      if (b.op == Op::kInput && b.slot.arg == kCapture && b.index == k) return static_cast<int>(j);
    }
    const Program& outer = *frames_[frame_index(f) - 1].prog;
    Node c;
    c.op = Op::kInput;
    c.slot.arg = kCapture;
    c.index = k;
    c.facts = outer.nodes[static_cast<size_t>(i)].facts;
    f.prog->nodes.push_back(std::move(c));
    return static_cast<int>(f.prog->nodes.size()) - 1;
  }
  size_t frame_index(const Frame& f) const {
    for (size_t l = 0; l < frames_.size(); ++l)
      if (frames_[l].prog == f.prog) return l;
    return 0;
  }
  // Node i of the whole program, captured into the current frame.
  int import_root(int i) {
    if (i < 0) return -1;
    for (size_t l = 1; l < frames_.size(); ++l) i = capture(frames_[l], i);
    return i;
  }

  // While it lives, the generator grows `body` (a body of `owner`) with inputs for `params`
  // and a few captured values.
  class BodyScope {
   public:
    BodyScope(Generator& g, Program* body, Node* owner, const std::vector<Facts>& params) : g_(g) {
      body->smooth = g.program_.smooth;
      g.frames_.push_back({body, owner});
      for (size_t k = 0; k < params.size(); ++k) {
        Node in;
        in.op = Op::kInput;
        in.slot.arg = kParam;
        in.index = static_cast<int64_t>(k);
        in.facts = params[k];
        body->nodes.push_back(std::move(in));
      }
      for (int64_t k = g.rng_.uniform(0, 2); k > 0; --k) {
        const Frame top = g.frames_.back();
        g.frames_.pop_back();
        int i = g.pick(loopable);
        g.frames_.push_back(top);
        if (i >= 0) g.capture(top, i);
      }
    }
    ~BodyScope() { g_.frames_.pop_back(); }
    BodyScope(const BodyScope&) = delete;
    BodyScope& operator=(const BodyScope&) = delete;

   private:
    Generator& g_;
  };

  // Grows the current body by up to `want` operations.
  void grow(int want) {
    const int start = cur().num_ops();
    for (int attempt = 0; attempt < kAttemptsPerOp * want && cur().num_ops() - start < want;
         ++attempt)
      step();
  }
  int body_ops() { return static_cast<int>(rng_.uniform(1, kMaxBodyOps)); }

  int control() {
    if (!options_.loops || depth() >= kMaxDepth || tj::shape_size(base_) > kMaxLoopElements)
      return -1;
    static const std::vector<int> kWeights = {3, 3, 2, 4};
    switch (rng_.weighted(kWeights)) {
      case 0: return cond_node();
      case 1: return while_node();
      case 2: return fori_node();
      default: return scan_node();
    }
  }

  // A scalar to compare values in `f` with: inside the range, so that both outcomes occur.
  double threshold(const Facts& f) {
    if (f.dtype == DType::bool_) return static_cast<double>(rng_.uniform(0, 1));
    if (f.special || !std::isfinite(f.range.lo) || !std::isfinite(f.range.hi))
      return rng_.chance(0.5) ? 0.0 : 1.0;
    if (is_float(f.dtype)) return std::round(rng_.real(f.range.lo, f.range.hi) * 8) / 8;
    const double lo = std::max(f.range.lo, -1e9), hi = std::min(f.range.hi, 1e9);
    return static_cast<double>(rng_.uniform(static_cast<int64_t>(lo), static_cast<int64_t>(hi)));
  }
  // A value branches and loop counts may depend on: exact, and fixed under finite differences
  // in smooth programs.
  bool steady(const Facts& f) const {
    return loopable(f) && (f.exact || !is_float(f.dtype)) && !(cur().smooth && f.varies) &&
           f.range.lo < f.range.hi;
  }

  // A comparison with a threshold: an ordering (an equality rarely holds), or for bools ==, !=.
  Op compare_for(const Facts& f) {
    static const std::vector<Op> kOrder = {Op::kLt, Op::kLe, Op::kGt, Op::kGe};
    if (f.dtype == DType::bool_) return rng_.chance(0.5) ? Op::kEq : Op::kNe;
    return rng_.chance(0.9) ? rng_.pick(kOrder) : compare_op();
  }

  // A bool[] computed from data: a comparison with a threshold, counted over the elements
  // (sum) and compared again when the value is not a scalar.
  int scalar_predicate() {
    int a = pick([&](const Facts& f) { return steady(f); });
    if (a < 0) return -1;
    const Facts fa = facts(a);
    int b = a;
    if (fa.dtype != DType::bool_ || rng_.chance(0.3))
      b = add_scalar(compare_for(fa), a, threshold(fa), rng_.chance(0.3));
    if (b < 0) return -1;
    if (!facts(b).shape.empty()) {
      Node n;
      n.op = Op::kSum;
      n.args = {b};
      n.all_axes = true;
      const int s = add(std::move(n));
      if (s < 0) return -1;
      b = add_scalar(compare_op(), s, threshold(facts(s)));
    }
    return b;
  }

  // An i32[] trip bound n computed from data, in [-1, kMaxWhileTrips].
  int trip_bound() {
    const double k = static_cast<double>(rng_.uniform(2, kMaxWhileTrips));
    int n = -1;
    if (rng_.chance(0.5)) {
      int a = pick([&](const Facts& f) {
        return steady(f) && f.shape.empty() && (f.dtype == DType::i32 || f.dtype == DType::u32);
      });
      if (a >= 0 && facts(a).dtype == DType::u32) {
        Node c;
        c.op = Op::kAsType;
        c.args = {a};
        c.dtype = DType::i32;
        a = add(std::move(c));
      }
      if (a >= 0) n = add_scalar(Op::kMaximum, a, -1);
    }
    if (n < 0) {  // how many elements pass a comparison
      int a = pick([&](const Facts& f) { return steady(f) && tj::shape_size(f.shape) > 1; });
      if (a < 0) a = pick([&](const Facts& f) { return steady(f); });
      if (a < 0) return -1;
      int b = facts(a).dtype == DType::bool_ ? a
                                             : add_scalar(compare_for(facts(a)), a, threshold(facts(a)));
      if (b < 0) return -1;
      Node sum;
      sum.op = Op::kSum;
      sum.args = {b};
      sum.all_axes = true;
      n = add(std::move(sum));
      if (n >= 0 && facts(n).range.hi <= 1 && rng_.chance(0.7))  // a scalar's count: 0 or 1
        n = add_scalar(Op::kMul, n, static_cast<double>(rng_.uniform(2, 4)));
      if (n >= 0 && rng_.chance(0.2)) n = add_scalar(Op::kSub, n, 1);
    }
    if (n < 0) return -1;
    return add_scalar(Op::kMinimum, n, k);
  }

  // The facts a loop declares for a carry starting at `init` (see rules.cpp).
  Facts declared(const Facts& init, bool varying_operands) const {
    Facts c = init;
    if (is_float(c.dtype) && !c.special) {
      c.range = {std::min(c.range.lo, -1.0), std::max(c.range.hi, 1.0)};
      c.varies = c.varies || varying_operands;
    }
    if (c.special) c.range = full_range(c.dtype);
    return c;
  }

  // Init leaves of a loop: `count` values, floats preferred.
  std::vector<int> inits(int64_t count) {
    std::vector<int> out;
    for (int64_t k = 0; k < count; ++k) {
      int a = rng_.chance(0.7) ? pick([](const Facts& f) { return loopable(f) && is_float(f.dtype); })
                               : -1;
      if (a < 0) a = pick(loopable);
      if (a >= 0) out.push_back(a);
    }
    return out;
  }

  // Body values that can be outputs: computed ones, most recent preferred; inputs otherwise.
  template <class Pred>
  int body_value(Pred ok) {
    std::vector<int> computed, inputs;
    for (int i = 0; i < size(); ++i)
      if (ok(facts(i))) (cur().nodes[static_cast<size_t>(i)].op == Op::kInput ? inputs : computed).push_back(i);
    std::vector<int>& from = computed.empty() ? inputs : computed;
    if (from.empty()) return -1;
    if (rng_.chance(0.6)) return from.back();
    return rng_.pick(from);
  }

  // A value of the current body with `want`'s dtype and shape: one that has them, one
  // broadcast to them, or a constant.
  int value_of_type(const Facts& want) {
    int v = body_value([&](const Facts& f) { return f.dtype == want.dtype && f.shape == want.shape; });
    if (v >= 0 && rng_.chance(0.9)) return v;
    int b = body_value([&](const Facts& f) {
      return f.dtype == want.dtype && f.shape.size() <= want.shape.size() && f.shape != want.shape;
    });
    if (b >= 0) {
      Node n;
      n.op = Op::kBroadcastTo;
      n.args = {b};
      n.shape = want.shape;
      int r = add(std::move(n));
      if (r >= 0) return r;
    }
    if (v >= 0) return v;
    Node n;
    n.op = Op::kFull;
    n.dtype = want.dtype;
    n.shape = want.shape;
    n.value = Array(want.dtype == DType::bool_ ? static_cast<double>(rng_.uniform(0, 1))
                    : is_float(want.dtype)     ? rng_.pick(kFloatScalars) / 8
                                               : static_cast<double>(rng_.uniform(0, 3)));
    return add(std::move(n));
  }

  // The output for a carry with facts `c`: a value of its type whose range stays within the
  // carry's (wrapped in sin, or clamped, when it would leave it).
  int carry_output(const Facts& c) {
    int o = value_of_type(c);
    if (o < 0) return -1;
    const Facts f = facts(o);
    if (c.special || f.dtype == DType::bool_ ||
        (c.range.contains(f.range.lo) && c.range.contains(f.range.hi)))
      return o;
    if (is_float(f.dtype)) {
      // sin(o * 2^-k), its argument within [-1, 1]: the carry's map has a small gain, so that
      // derivatives do not compound over the steps beyond what finite differences resolve.
      const double m = std::max(f.range.max_abs(), 1.0);
      const double scale = std::exp2(-std::ceil(std::log2(m)));
      return add(Op::kSin, {scale == 1 ? o : add_scalar(Op::kMul, o, scale)});
    }
    if (c.range.lo < -2147483648.0 || c.range.hi > 2147483647.0) return -1;
    return add_scalar(Op::kMinimum, add_scalar(Op::kMaximum, o, c.range.lo), c.range.hi);
  }

  // The current body's outputs for the carries `carry`; false when one cannot be made.
  bool carry_outputs(const std::vector<Facts>& carry) {
    std::vector<int> outs;
    for (const Facts& c : carry) {
      int o = carry_output(c);
      if (o < 0) return false;
      outs.push_back(o);
    }
    cur().outputs = std::move(outs);
    return true;
  }

  // Adds a control-flow node, and kResult nodes for some of its other results.
  int add_control(Node n) {
    const int c = add(std::move(n));
    if (c < 0) return -1;
    const size_t results = cur().nodes[static_cast<size_t>(c)].results.size();
    for (size_t k = 1; k < results; ++k) {
      if (!rng_.chance(0.7)) continue;
      Node r;
      r.op = Op::kResult;
      r.args = {c};
      r.index = static_cast<int64_t>(k);
      add(std::move(r));
    }
    return c;
  }

  bool any_varies(const Node& n) const {
    for (int a : n.args)
      if (facts(a).varies) return true;
    return false;
  }
  std::vector<Facts> declared_carry(const Node& n, int from, int to) const {
    std::vector<Facts> out;
    for (int k = from; k < to; ++k)
      out.push_back(declared(facts(n.args[static_cast<size_t>(k)]), any_varies(n)));
    return out;
  }

  int cond_node() {
    Node n;
    n.op = Op::kCond;
    int pred = rng_.chance(0.5) ? pick([&](const Facts& f) {
      return steady(f) && f.shape.empty() && !is_float(f.dtype);
    })
                                : -1;
    if (pred < 0) pred = scalar_predicate();
    if (pred < 0) return -1;
    n.args = {pred};
    for (int k : inits(rng_.uniform(0, 3))) n.args.push_back(k);
    n.operands = static_cast<int>(n.args.size());
    std::vector<Facts> params;
    for (size_t k = 1; k < n.args.size(); ++k) params.push_back(facts(n.args[k]));
    n.bodies.resize(2);
    {
      BodyScope scope(*this, &n.bodies[0], &n, params);
      grow(body_ops());
      for (int64_t k = rng_.uniform(1, 3); k > 0; --k) {
        int o = body_value([](const Facts&) { return true; });
        if (o >= 0) cur().outputs.push_back(o);
      }
      if (cur().outputs.empty()) return -1;
    }
    {
      BodyScope scope(*this, &n.bodies[1], &n, params);
      grow(body_ops());
      for (int o : n.bodies[0].outputs) {
        int t = value_of_type(n.bodies[0].nodes[static_cast<size_t>(o)].facts);
        if (t < 0) return -1;
        cur().outputs.push_back(t);
      }
    }
    return add_control(std::move(n));
  }

  int while_node() {
    Node n;
    n.op = Op::kWhile;
    const int bound = trip_bound();
    Node i0;
    i0.op = Op::kFull;
    i0.dtype = DType::i32;
    i0.value = Array(static_cast<double>(rng_.uniform(-1, 1) * (rng_.chance(0.7) ? 0 : 1)));
    const int start = add(std::move(i0));
    if (start < 0 || bound < 0) return -1;
    n.args = {start, bound};
    for (int k : inits(rng_.uniform(0, 2))) n.args.push_back(k);
    n.operands = static_cast<int>(n.args.size());
    const double trips = std::max(0.0, facts(bound).range.hi - facts(start).range.lo);
    static const std::vector<int64_t> kSlack = {0, 0, 1, 4};
    n.max_iterations = static_cast<int64_t>(trips) + rng_.pick(kSlack);
    n.carry = declared_carry(n, 2, n.operands);
    Facts counter = facts(start);
    counter.range = {counter.range.lo, std::max(counter.range.hi, facts(bound).range.hi)};
    std::vector<Facts> params{counter};
    params.insert(params.end(), n.carry.begin(), n.carry.end());
    n.bodies.resize(2);
    {
      BodyScope scope(*this, &n.bodies[0], &n, params);
      if (rng_.chance(0.35)) {
        grow(static_cast<int>(rng_.uniform(0, 2)));
        int p = scalar_predicate();
        if (p >= 0) cur().outputs.push_back(p);
      }
    }
    {
      BodyScope scope(*this, &n.bodies[1], &n, params);
      grow(body_ops());
      if (!carry_outputs(n.carry)) return -1;
    }
    return add_control(std::move(n));
  }

  int fori_node() {
    Node n;
    n.op = Op::kFori;
    n.args = inits(rng_.uniform(1, 3));
    if (n.args.empty()) return -1;
    n.operands = static_cast<int>(n.args.size());
    static const std::vector<int64_t> kTrips = {0, 1, 1, 2, 2, 3, 3, 4, 5, 7, -2};
    n.lower = rng_.uniform(-2, 3);
    n.upper = n.lower + rng_.pick(kTrips);
    n.carry = declared_carry(n, 0, n.operands);
    Facts i;
    i.dtype = DType::i32;
    i.range = {static_cast<double>(n.lower), static_cast<double>(std::max(n.lower, n.upper - 1))};
    std::vector<Facts> params{i};
    params.insert(params.end(), n.carry.begin(), n.carry.end());
    n.bodies.resize(1);
    {
      BodyScope scope(*this, &n.bodies[0], &n, params);
      grow(body_ops());
      if (!carry_outputs(n.carry)) return -1;
    }
    return add_control(std::move(n));
  }

  int scan_node() {
    Node n;
    n.op = Op::kScan;
    n.args = inits(rng_.uniform(0, 2));
    n.carries = static_cast<int>(n.args.size());
    static const std::vector<int64_t> kLengths = {0, 1, 2, 3, 3, 4, 5, 8};
    int64_t length = rng_.pick(kLengths);
    for (int64_t k = rng_.uniform(0, 2); k > 0; --k) {
      const bool first = static_cast<int>(n.args.size()) == n.carries;
      int x = rng_.chance(0.6) ? pick([&](const Facts& f) {
        return loopable(f) && !f.shape.empty() && f.shape[0] <= kMaxTrips &&
               (first || f.shape[0] == length);
      })
                               : -1;
      if (x < 0) {
        Shape s = variant_of(base_);
        if (s.size() > 2) s.erase(s.begin());
        s.insert(s.begin(), length);
        DType d = rng_.chance(0.8) ? float_ : random_dtype();
        x = new_input(d, s, random_range(d));
      }
      if (x < 0) return -1;
      length = facts(x).shape[0];
      n.args.push_back(x);
    }
    n.operands = static_cast<int>(n.args.size());
    n.lower = length;
    n.reverse = rng_.chance(0.3);
    n.unroll = rng_.chance(0.2) ? static_cast<int>(rng_.uniform(2, 3)) : 1;
    n.carry = declared_carry(n, 0, n.carries);
    std::vector<Facts> params = n.carry;
    for (int k = n.carries; k < n.operands; ++k) {
      Facts f = facts(n.args[static_cast<size_t>(k)]);
      f.shape.erase(f.shape.begin());
      f.weak = false;
      params.push_back(f);
    }
    n.bodies.resize(1);
    {
      BodyScope scope(*this, &n.bodies[0], &n, params);
      grow(body_ops());
      if (!carry_outputs(n.carry)) return -1;
      for (int64_t k = rng_.uniform(n.carries == 0 ? 1 : 0, 2); k > 0; --k) {
        int y = body_value([&](const Facts& f) {
          return tj::shape_size(f.shape) * std::max<int64_t>(length, 1) <= kMaxElements;
        });
        if (y >= 0) cur().outputs.push_back(y);
      }
    }
    return add_control(std::move(n));
  }

  Rng& rng_;
  GenOptions options_;
  SeededRng values_;  // input values: not drawn from rng_, so a fuzzer's bytes shape programs only
  Program program_;
  std::vector<Frame> frames_{{&program_, nullptr}};
  DType float_ = DType::f32;
  Shape base_;
  int next_key_ = 0;
};

}  // namespace

Program generate(Rng& rng, const GenOptions& options, uint64_t id) {
  return Generator(rng, options, id).run();
}

}  // namespace difftest

// Each node becomes the public tracejit call a user would write (program.cpp prints the same
// calls as a listing). Binary operations with a scalar operand pass a real C++ scalar of the
// type that keeps the array's dtype, so weak typing is exercised as users meet it.
#include "evaluator.h"

#include <algorithm>
#include <span>

#include "absl/strings/str_cat.h"
#include "tracejit/control_flow.h"

namespace difftest {
namespace {

// The C++ scalar a user would write next to an array of dtype `d` (2.5f, 2.5, 3, true).
Array scalar_for(DType d, double c) {
  switch (d) {
    case DType::f32: return Array(static_cast<float>(c));
    case DType::f64: return Array(c);
    case DType::i32:
    case DType::u32: return Array(static_cast<int>(c));
    case DType::bool_: return Array(c != 0);
  }
  return Array();
}

Array binary(Op op, const Array& a, const Array& b) {
  switch (op) {
    case Op::kAdd: return a + b;
    case Op::kSub: return a - b;
    case Op::kMul: return a * b;
    case Op::kDiv: return a / b;
    case Op::kPow: return tj::pow(a, b);
    case Op::kMaximum: return tj::maximum(a, b);
    case Op::kMinimum: return tj::minimum(a, b);
    case Op::kAnd: return a & b;
    case Op::kOr: return a | b;
    case Op::kXor: return a ^ b;
    case Op::kShl: return a << b;
    case Op::kShr: return a >> b;
    case Op::kEq: return a == b;
    case Op::kNe: return a != b;
    case Op::kLt: return a < b;
    case Op::kLe: return a <= b;
    case Op::kGt: return a > b;
    case Op::kGe: return a >= b;
    default: throw std::logic_error("difftest: not a binary op");
  }
}

using Values = std::vector<Array>;

class Evaluator {
 public:
  Evaluator(const Program& p, std::optional<DType> floats) : p_(p), floats_(floats) {}

  std::vector<Array> run(const DiffArgs& x, const OtherArgs& y) const {
    Scope scope{p_, &x, &y, {}, {}, !floats_};
    return eval(scope);
  }

 private:
  // One program or body being run: where its inputs come from, and whether its values are
  // checked against the rules' types.
  struct Scope {
    const Program& p;
    const DiffArgs* x = nullptr;  // the program's arguments (bodies: null)
    const OtherArgs* y = nullptr;
    std::span<const Array> params;    // a body's parameters...
    std::span<const Array> captured;  // ...and the enclosing values it captures
    bool check = true;
  };

  std::vector<Array> eval(const Scope& s) const {
    std::vector<Array> v;
    v.reserve(s.p.nodes.size());
    std::vector<Values> results(s.p.nodes.size());  // control flow: every result
    size_t pos0 = 0, pos1 = 0;
    for (size_t i = 0; i < s.p.nodes.size(); ++i) {
      const Node& n = s.p.nodes[i];
      Array r;
      if (n.op == Op::kInput) {
        if (n.slot.arg == kParam)
          r = s.params[static_cast<size_t>(n.index)];
        else if (n.slot.arg == kCapture)
          r = s.captured[static_cast<size_t>(n.index)];
        else if (n.slot.arg == 1)
          r = s.y->at(pos1++);
        else if (n.slot.key.empty())
          r = std::get<0>(*s.x).at(pos0++);
        else
          r = std::get<1>(*s.x).at(n.slot.key);
      } else if (is_control(n.op)) {
        results[i] = control(s, n, v);
        if (s.check)
          for (size_t k = 0; k < results[i].size(); ++k)
            check_type(n.results[k], n.op, results[i][k], static_cast<int>(i));
        r = results[i].at(0);
      } else if (n.op == Op::kResult) {
        r = results[static_cast<size_t>(n.args[0])].at(static_cast<size_t>(n.index));
      } else {
        r = apply(n, v);
      }
      if (s.check) check_type(n.facts, n.op, r, static_cast<int>(i));
      v.push_back(std::move(r));
    }
    return v;
  }

  // A body's outputs for `params`. A weakly typed parameter the rules say is strong is a
  // first trace (tracejit traces again with the carry promoted): its values are not checked.
  Values body(const Scope& s, const Program& b, const Values& params, const Values& captured) const {
    bool check = s.check;
    for (const Node& n : b.nodes)
      if (n.op == Op::kInput && n.slot.arg == kParam &&
          params[static_cast<size_t>(n.index)].weak_type() != n.facts.weak)
        check = false;
    Scope inner{b, nullptr, nullptr, params, captured, check};
    std::vector<Array> v = eval(inner);
    Values out;
    for (int o : b.outputs) out.push_back(v[static_cast<size_t>(o)]);
    return out;
  }

  static Values concat(Values a, const Values& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  Values control(const Scope& s, const Node& n, const std::vector<Array>& v) const {
    auto arg = [&](size_t k) -> const Array& { return v[static_cast<size_t>(n.args[k])]; };
    auto args = [&](size_t from, size_t to) {
      Values out;
      for (size_t k = from; k < to; ++k) out.push_back(arg(k));
      return out;
    };
    const size_t ops = static_cast<size_t>(n.operands);
    const Values captured = args(ops, n.args.size());
    switch (n.op) {
      case Op::kCond: {
        auto branch = [&](size_t b) {
          return [&, b](const Values& o) { return body(s, n.bodies[b], o, captured); };
        };
        return tj::cond(arg(0), branch(1), branch(0), args(1, ops));
      }
      case Op::kWhile: {
        const Array& bound = arg(1);
        auto cond_fn = [&](const Values& c) {
          Array pred = c[0] < bound;
          if (!n.bodies[0].outputs.empty()) pred = pred & body(s, n.bodies[0], c, captured)[0];
          return pred;
        };
        auto body_fn = [&](const Values& c) {
          return concat({c[0] + 1}, body(s, n.bodies[1], c, captured));
        };
        return tj::while_loop(cond_fn, body_fn, concat({arg(0)}, args(2, ops)),
                              tj::WhileOptions{.max_iterations = n.max_iterations});
      }
      case Op::kFori:
        return tj::fori_loop(
            n.lower, n.upper,
            [&](const Array& i, const Values& c) { return body(s, n.bodies[0], concat({i}, c), captured); },
            args(0, ops));
      case Op::kScan: {
        const size_t nc = static_cast<size_t>(n.carries);
        auto f = [&](const Values& c, const Values& x) {
          Values out = body(s, n.bodies[0], concat(c, x), captured);
          Values ys(out.begin() + static_cast<ptrdiff_t>(nc), out.end());
          out.resize(nc);
          return std::pair<Values, Values>(std::move(out), std::move(ys));
        };
        const Values xs = args(nc, ops);
        auto [carry, ys] = tj::scan(f, args(0, nc), xs,
                                    tj::ScanOptions{.length = xs.empty() ? n.lower : -1,
                                                    .reverse = n.reverse,
                                                    .unroll = n.unroll});
        return concat(std::move(carry), ys);
      }
      default: break;
    }
    throw std::logic_error("difftest: not a control-flow node");
  }
  // The dtype a float value takes in this instance.
  DType fl(DType d) const { return floats_ && is_float(d) ? *floats_ : d; }
  // In the f64 instance, operands that a public op would promote to f32 are converted to f64
  // first, so that f32 and f64 never meet.
  Array promoted(const Array& a) const {
    return floats_ && !is_float(a.dtype()) ? tj::astype(a, *floats_) : a;
  }

  // Operands of one op that mix floats with integers or bools: as promoted() (f64 instance).
  std::vector<Array> mixed(std::vector<Array> xs) const {
    const bool any_float = std::any_of(xs.begin(), xs.end(), [](const Array& x) { return is_float(x.dtype()); });
    const bool any_other = std::any_of(xs.begin(), xs.end(), [](const Array& x) { return !is_float(x.dtype()); });
    if (any_float && any_other)
      for (Array& x : xs) x = promoted(x);
    return xs;
  }

  Array apply(const Node& n, const std::vector<Array>& v) const {
    auto a = [&](size_t k) -> const Array& { return v[static_cast<size_t>(n.args[k])]; };
    switch (n.op) {
      case Op::kInput: break;
      case Op::kConst: return to_float_dtype(n.value, fl(n.value.dtype()));
      case Op::kArange: return tj::arange(n.index, fl(n.dtype));
      case Op::kFull: return tj::full(n.shape, n.value.item<double>(), fl(n.dtype));
      case Op::kNeg: return -a(0);
      case Op::kExp: return tj::exp(promoted(a(0)));
      case Op::kLog: return tj::log(promoted(a(0)));
      case Op::kLog1p: return tj::log1p(promoted(a(0)));
      case Op::kSin: return tj::sin(promoted(a(0)));
      case Op::kCos: return tj::cos(promoted(a(0)));
      case Op::kTanh: return tj::tanh(promoted(a(0)));
      case Op::kSqrt: return tj::sqrt(promoted(a(0)));
      case Op::kAbs: return tj::abs(a(0));
      case Op::kSign: return tj::sign(a(0));
      case Op::kSquare: return tj::square(a(0));
      case Op::kStopGradient: return tj::stop_gradient(a(0));
      case Op::kFloor: return tj::floor(a(0));
      case Op::kCeil: return tj::ceil(a(0));
      case Op::kRound: return tj::round(a(0));
      case Op::kAdd: case Op::kSub: case Op::kMul: case Op::kDiv: case Op::kPow: case Op::kMaximum:
      case Op::kMinimum: case Op::kAnd: case Op::kOr: case Op::kXor: case Op::kShl: case Op::kShr:
      case Op::kEq: case Op::kNe: case Op::kLt: case Op::kLe: case Op::kGt:
      case Op::kGe: {
        Array x = a(0);
        Array y = n.scalar ? scalar_for(x.dtype(), *n.scalar) : a(1);
        if (n.scalar_first) std::swap(x, y);
        // pow and / compute integers in f32, and an integer meeting a weak float gives f32:
        // the f64 instance converts the integers to f64 first.
        if (n.op == Op::kPow || n.op == Op::kDiv || is_float(x.dtype()) != is_float(y.dtype()))
          x = promoted(x), y = promoted(y);
        return binary(n.op, x, y);
      }
      case Op::kWhere: {
        Array x = a(1), y = a(2);
        if (is_float(x.dtype()) != is_float(y.dtype())) x = promoted(x), y = promoted(y);
        return tj::where(a(0), x, y);
      }
      case Op::kClip: {
        if (n.args.size() == 1)
          return tj::clip(a(0), scalar_for(a(0).dtype(), *n.scalar),
                          scalar_for(a(0).dtype(), n.scalar_hi));
        std::vector<Array> xs = mixed({a(0), a(1), a(2)});
        return tj::clip(xs[0], xs[1], xs[2]);
      }
      case Op::kArgmax: return n.all_axes ? tj::argmax(a(0)) : tj::argmax(a(0), n.axes[0]);
      case Op::kArgmin: return n.all_axes ? tj::argmin(a(0)) : tj::argmin(a(0), n.axes[0]);
      case Op::kSum: return n.all_axes ? tj::sum(a(0)) : tj::sum(a(0), n.axes);
      case Op::kMean:
        return n.all_axes ? tj::mean(promoted(a(0))) : tj::mean(promoted(a(0)), n.axes);
      case Op::kMax: return n.all_axes ? tj::max(a(0)) : tj::max(a(0), n.axes);
      case Op::kReshape: return tj::reshape(a(0), n.shape);
      case Op::kBroadcastTo: return tj::broadcast_to(a(0), n.shape);
      case Op::kTranspose: return tj::transpose(a(0), n.axes);
      case Op::kSlice: return tj::slice(a(0), n.axes, n.limits);
      case Op::kIndex: return a(0)[n.index];
      case Op::kConcatenate: {
        std::vector<Array> xs;
        for (size_t k = 0; k < n.args.size(); ++k) xs.push_back(a(k));
        return tj::concatenate(xs, n.index);
      }
      case Op::kStack: {
        std::vector<Array> xs;
        for (size_t k = 0; k < n.args.size(); ++k) xs.push_back(a(k));
        return tj::stack(mixed(xs), n.index);
      }
      case Op::kTake: return tj::take(a(0), a(1), n.index);
      case Op::kDynamicSlice: {
        std::vector<Array> starts;
        for (size_t k = 1; k < n.args.size(); ++k) starts.push_back(a(k));
        return tj::dynamic_slice(a(0), starts, n.shape);
      }
      case Op::kDynamicUpdateSlice: {
        std::vector<Array> starts;
        for (size_t k = 2; k < n.args.size(); ++k) starts.push_back(a(k));
        return tj::dynamic_update_slice(a(0), a(1), starts);
      }
      case Op::kAtSet: case Op::kAtAdd: case Op::kAtMultiply: case Op::kAtMin: case Op::kAtMax: {
        const tj::ArrayAt at = n.static_index ? a(0).at(static_cast<int>(n.index)) : a(0).at(a(1));
        const Array v = n.scalar ? scalar_for(a(0).dtype(), *n.scalar) : a(n.args.size() - 1);
        switch (n.op) {
          case Op::kAtSet: return at.set(v);
          case Op::kAtAdd: return at.add(v);
          case Op::kAtMultiply: return at.multiply(v);
          case Op::kAtMin: return at.min(v);
          default: return at.max(v);
        }
      }
      case Op::kMatmul: return tj::matmul(a(0), a(1));
      case Op::kDot: {
        std::vector<Array> xs = mixed({a(0), a(1)});
        return tj::dot(xs[0], xs[1]);
      }
      case Op::kTensordot: {
        std::vector<Array> xs = mixed({a(0), a(1)});
        return tj::tensordot(xs[0], xs[1], static_cast<int>(n.index));
      }
      case Op::kEinsum: {
        std::vector<Array> xs;
        for (size_t k = 0; k < n.args.size(); ++k) xs.push_back(a(k));
        return tj::einsum(kEinsumSpecs[n.index].spec, mixed(xs));
      }
      case Op::kAsType: return tj::astype(a(0), fl(n.dtype));
      case Op::kBitcast: {
        // Bitcasts are between 32-bit types: the f64 instance goes through f32.
        Array x = is_float(a(0).dtype()) && floats_ ? tj::astype(a(0), DType::f32) : a(0);
        Array r = tj::bitcast(x, n.dtype);
        return is_float(n.dtype) && floats_ ? tj::astype(r, *floats_) : r;
      }
      case Op::kRandomBits: return tj::random::bits(a(0), n.shape);
      case Op::kUniform:
        return tj::random::uniform(a(0), n.shape, fl(n.dtype), kUniformBounds[n.index][0],
                                   kUniformBounds[n.index][1]);
      case Op::kNormal: return tj::random::normal(a(0), n.shape, fl(n.dtype));
      case Op::kSplit: return tj::random::split(a(0), kSplitCount)[n.index];
      case Op::kFoldIn: return tj::random::fold_in(a(0), static_cast<uint32_t>(*n.scalar));
      case Op::kCond: case Op::kWhile: case Op::kFori: case Op::kScan: case Op::kResult: break;
    }
    throw std::logic_error("difftest: an input or control-flow node reached apply");
  }

  static void check_type(const Facts& f, Op op, const Array& r, int index) {
    if (r.dtype() == f.dtype && r.shape() == f.shape && r.weak_type() == f.weak) return;
    throw TypeMismatch(absl::StrCat("v", index, " = ", op_name(op), " gave ",
                                    tj::type_str(r.dtype(), r.shape()),
                                    r.weak_type() ? " weak" : "", ", the rules say ",
                                    tj::type_str(f.dtype, f.shape), f.weak ? " weak" : ""));
  }

  const Program& p_;
  std::optional<DType> floats_;
};

}  // namespace

Array to_float_dtype(const Array& x, DType dtype) {
  if (!is_float(x.dtype()) || x.dtype() == dtype) return x;
  if (x.weak_type()) return Array::scalar(dtype, x.item<double>(), /*weak=*/true);
  return tj::astype(x, dtype);
}

Outputs ProgramFn::operator()(const DiffArgs& x, const OtherArgs& y) const {
  std::vector<Array> v = node_values(x, y);
  Outputs out;
  for (size_t k = 0; k < program->outputs.size(); ++k) {
    const Array& value = v[static_cast<size_t>(program->outputs[k])];
    const std::string& key = program->out_slots[k].key;
    if (key.empty())
      out.first.push_back(value);
    else
      out.second.emplace(key, value);
  }
  return out;
}

std::vector<Array> ProgramFn::node_values(const DiffArgs& x, const OtherArgs& y) const {
  return Evaluator(*program, floats).run(x, y);
}

std::pair<DiffArgs, OtherArgs> make_args(const Program& p, std::optional<DType> floats) {
  std::pair<DiffArgs, OtherArgs> args;
  for (const Node& n : p.nodes) {
    if (n.op != Op::kInput) continue;
    Array v = floats ? to_float_dtype(n.value, *floats) : n.value;
    if (n.slot.arg == 1)
      args.second.push_back(v);
    else if (n.slot.key.empty())
      std::get<0>(args.first).push_back(v);
    else
      std::get<1>(args.first).emplace(n.slot.key, v);
  }
  return args;
}

std::vector<Array> leaves(const DiffArgs& x, const OtherArgs& y) {
  std::vector<Array> out = tj::tree_leaves(x);
  for (const Array& a : y) out.push_back(a);
  return out;
}

std::vector<Array> leaves(const Outputs& out) { return tj::tree_leaves(out); }

}  // namespace difftest

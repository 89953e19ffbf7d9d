// Names, the C++-like listing of a program, and pruning of dead nodes.
#include "program.h"

#include <cctype>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace difftest {
namespace {

// Elements printed per value in a listing; larger values are summarised by their range.
constexpr int64_t kMaxListedElements = 24;

std::string braced(const std::vector<int64_t>& xs) {
  return absl::StrCat("{", absl::StrJoin(xs, ", "), "}");
}
std::string braced(const Shape& s) { return braced(std::vector<int64_t>(s.begin(), s.end())); }
std::string dtype_expr(DType d) {
  return absl::StrCat("tj::DType::", d == DType::bool_ ? "bool_" : std::string(tj::dtype_name(d)));
}

// 2.0, 0.25, 1e-05: always with a point or an exponent.
std::string float_literal(double c, int digits) {
  std::string s = absl::StrFormat("%.*g", digits, c);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// A C++ scalar literal of the type that keeps `operand`'s dtype (2.5f for f32, 3 for ints).
std::string literal(DType operand, double c) {
  switch (operand) {
    case DType::f32: return absl::StrCat(float_literal(c, 9), "f");
    case DType::f64: return float_literal(c, 17);
    case DType::i32:
    case DType::u32: return absl::StrCat(static_cast<int64_t>(c));
    case DType::bool_: return c != 0 ? "true" : "false";
  }
  return "?";
}

const char* infix(Op op) {
  switch (op) {
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    case Op::kAnd: return "&";
    case Op::kOr: return "|";
    case Op::kXor: return "^";
    case Op::kShl: return "<<";
    case Op::kShr: return ">>";
    case Op::kEq: return "==";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    default: return nullptr;
  }
}

std::string var(int i) { return absl::StrCat("v", i); }

std::string expr(const Program& p, const Node& n, const std::function<std::string(int)>& var) {
  auto a = [&](size_t k) { return var(n.args[k]); };
  switch (n.op) {
    case Op::kInput: return "(input)";
    case Op::kConst: return "(captured constant)";
    case Op::kArange: return absl::StrCat("tj::arange(", n.index, ", ", dtype_expr(n.dtype), ")");
    case Op::kFull:
      return absl::StrCat("tj::full(", braced(n.shape), ", ",
                          literal(DType::f64, n.value.item<double>()), ", ", dtype_expr(n.dtype),
                          ")");
    case Op::kNeg: return absl::StrCat("-", a(0));
    case Op::kReshape: return absl::StrCat("tj::reshape(", a(0), ", ", braced(n.shape), ")");
    case Op::kBroadcastTo:
      return absl::StrCat("tj::broadcast_to(", a(0), ", ", braced(n.shape), ")");
    case Op::kTranspose: return absl::StrCat("tj::transpose(", a(0), ", ", braced(n.axes), ")");
    case Op::kSlice:
      return absl::StrCat("tj::slice(", a(0), ", ", braced(n.axes), ", ", braced(n.limits), ")");
    case Op::kIndex: return absl::StrCat(a(0), "[", n.index, "]");
    case Op::kConcatenate: {
      std::vector<std::string> xs;
      for (int x : n.args) xs.push_back(var(x));
      return absl::StrCat("tj::concatenate({", absl::StrJoin(xs, ", "), "}, ", n.index, ")");
    }
    case Op::kStack: {
      std::vector<std::string> xs;
      for (int x : n.args) xs.push_back(var(x));
      return absl::StrCat("tj::stack({", absl::StrJoin(xs, ", "), "}, ", n.index, ")");
    }
    case Op::kClip:
      if (n.args.size() == 1) {
        const DType d = p.nodes[static_cast<size_t>(n.args[0])].facts.dtype;
        return absl::StrCat("tj::clip(", a(0), ", ", literal(d, *n.scalar), ", ",
                            literal(d, n.scalar_hi), ")");
      }
      break;
    case Op::kArgmax: case Op::kArgmin:
      return absl::StrCat("tj::", op_name(n.op), "(", a(0),
                          n.all_axes ? "" : absl::StrCat(", ", n.axes[0]), ")");
    case Op::kTake: return absl::StrCat("tj::take(", a(0), ", ", a(1), ", ", n.index, ")");
    case Op::kDynamicSlice: case Op::kDynamicUpdateSlice: {
      const size_t first = n.op == Op::kDynamicSlice ? 1 : 2;
      std::vector<std::string> xs;
      for (size_t k = first; k < n.args.size(); ++k) xs.push_back(var(n.args[k]));
      const std::string starts = absl::StrCat("{", absl::StrJoin(xs, ", "), "}");
      if (n.op == Op::kDynamicSlice)
        return absl::StrCat("tj::dynamic_slice(", a(0), ", ", starts, ", ", braced(n.shape), ")");
      return absl::StrCat("tj::dynamic_update_slice(", a(0), ", ", a(1), ", ", starts, ")");
    }
    case Op::kAtSet: case Op::kAtAdd: case Op::kAtMultiply: case Op::kAtMin: case Op::kAtMax: {
      const std::string row = n.static_index ? absl::StrCat(n.index) : a(1);
      const std::string v =
          n.scalar ? literal(p.nodes[static_cast<size_t>(n.args[0])].facts.dtype, *n.scalar)
                   : a(n.args.size() - 1);
      return absl::StrCat(a(0), ".at(", row, ").", op_name(n.op), "(", v, ")");
    }
    case Op::kTensordot:
      return absl::StrCat("tj::tensordot(", a(0), ", ", a(1), ", ", n.index, ")");
    case Op::kEinsum: {
      std::vector<std::string> xs;
      for (int x : n.args) xs.push_back(var(x));
      return absl::StrCat("tj::einsum(\"", kEinsumSpecs[n.index].spec, "\", ", absl::StrJoin(xs, ", "),
                          ")");
    }
    case Op::kAsType: case Op::kBitcast:
      return absl::StrCat("tj::", op_name(n.op), "(", a(0), ", ", dtype_expr(n.dtype), ")");
    case Op::kSum: case Op::kMean: case Op::kMax:
      return absl::StrCat("tj::", op_name(n.op), "(", a(0), n.all_axes ? "" : ", " + braced(n.axes),
                          ")");
    case Op::kRandomBits:
      return absl::StrCat("tj::random::bits(", a(0), ", ", braced(n.shape), ")");
    case Op::kUniform:
      return absl::StrCat("tj::random::uniform(", a(0), ", ", braced(n.shape), ", ",
                          dtype_expr(n.dtype), ", ", float_literal(kUniformBounds[n.index][0], 17),
                          ", ", float_literal(kUniformBounds[n.index][1], 17), ")");
    case Op::kNormal:
      return absl::StrCat("tj::random::normal(", a(0), ", ", braced(n.shape), ", ",
                          dtype_expr(n.dtype), ")");
    case Op::kSplit:
      return absl::StrCat("tj::random::split(", a(0), ", ", kSplitCount, ")[", n.index, "]");
    case Op::kFoldIn:
      return absl::StrCat("tj::random::fold_in(", a(0), ", ", static_cast<int64_t>(*n.scalar),
                          "u)");
    default: break;
  }
  if (is_binary(n.op)) {
    std::string x = a(0);
    std::string y =
        n.scalar ? literal(p.nodes[static_cast<size_t>(n.args[0])].facts.dtype, *n.scalar) : a(1);
    if (n.scalar && n.scalar_first) std::swap(x, y);
    if (const char* op = infix(n.op)) return absl::StrCat(x, " ", op, " ", y);
    return absl::StrCat("tj::", op_name(n.op), "(", x, ", ", y, ")");
  }
  std::vector<std::string> xs;
  for (int x : n.args) xs.push_back(var(x));
  return absl::StrCat("tj::", op_name(n.op), "(", absl::StrJoin(xs, ", "), ")");
}

std::string describe(const Facts& f) {
  return absl::StrFormat("%s%s in [%g, %g]%s%s%s", tj::type_str(f.dtype, f.shape),
                         f.weak ? " weak" : "", f.range.lo, f.range.hi, f.exact ? "" : " inexact",
                         f.varies ? " varies" : "", f.special ? " special" : "");
}

std::string slot_expr(const Slot& s, int position) {
  if (!s.key.empty()) return absl::StrCat("std::get<1>(x).at(\"", s.key, "\")");  // arg 0's map
  return absl::StrCat(s.arg == 0 ? "std::get<0>(x)" : "y", "[", position, "]");
}

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::kInput: return "input";
    case Op::kConst: return "const";
    case Op::kArange: return "arange";
    case Op::kFull: return "full";
    case Op::kNeg: return "neg";
    case Op::kExp: return "exp";
    case Op::kLog: return "log";
    case Op::kLog1p: return "log1p";
    case Op::kSin: return "sin";
    case Op::kCos: return "cos";
    case Op::kTanh: return "tanh";
    case Op::kSqrt: return "sqrt";
    case Op::kAbs: return "abs";
    case Op::kSign: return "sign";
    case Op::kSquare: return "square";
    case Op::kStopGradient: return "stop_gradient";
    case Op::kFloor: return "floor";
    case Op::kCeil: return "ceil";
    case Op::kRound: return "round";
    case Op::kAdd: return "add";
    case Op::kSub: return "sub";
    case Op::kMul: return "mul";
    case Op::kDiv: return "div";
    case Op::kPow: return "pow";
    case Op::kMaximum: return "maximum";
    case Op::kMinimum: return "minimum";
    case Op::kAnd: return "and";
    case Op::kOr: return "or";
    case Op::kXor: return "xor";
    case Op::kShl: return "shift_left";
    case Op::kShr: return "shift_right";
    case Op::kEq: return "eq";
    case Op::kNe: return "ne";
    case Op::kLt: return "lt";
    case Op::kLe: return "le";
    case Op::kGt: return "gt";
    case Op::kGe: return "ge";
    case Op::kWhere: return "where";
    case Op::kClip: return "clip";
    case Op::kSum: return "sum";
    case Op::kMean: return "mean";
    case Op::kMax: return "max";
    case Op::kArgmax: return "argmax";
    case Op::kArgmin: return "argmin";
    case Op::kReshape: return "reshape";
    case Op::kBroadcastTo: return "broadcast_to";
    case Op::kTranspose: return "transpose";
    case Op::kSlice: return "slice";
    case Op::kIndex: return "index";
    case Op::kConcatenate: return "concatenate";
    case Op::kStack: return "stack";
    case Op::kTake: return "take";
    case Op::kDynamicSlice: return "dynamic_slice";
    case Op::kDynamicUpdateSlice: return "dynamic_update_slice";
    case Op::kAtSet: return "set";
    case Op::kAtAdd: return "add";
    case Op::kAtMultiply: return "multiply";
    case Op::kAtMin: return "min";
    case Op::kAtMax: return "max";
    case Op::kMatmul: return "matmul";
    case Op::kDot: return "dot";
    case Op::kTensordot: return "tensordot";
    case Op::kEinsum: return "einsum";
    case Op::kAsType: return "astype";
    case Op::kBitcast: return "bitcast";
    case Op::kRandomBits: return "random_bits";
    case Op::kUniform: return "uniform";
    case Op::kNormal: return "normal";
    case Op::kSplit: return "split";
    case Op::kFoldIn: return "fold_in";
    case Op::kCond: return "cond";
    case Op::kWhile: return "while_loop";
    case Op::kFori: return "fori_loop";
    case Op::kScan: return "scan";
    case Op::kResult: return "result";
  }
  return "?";
}

std::vector<std::string> einsum_subscripts(const std::string& spec) {
  return absl::StrSplit(spec.substr(0, spec.find("->")), ',');
}

bool is_binary(Op op) { return op >= Op::kAdd && op <= Op::kGe; }
bool is_compare(Op op) { return op >= Op::kEq && op <= Op::kGe; }
bool is_control(Op op) { return op >= Op::kCond && op <= Op::kScan; }

int Program::num_ops() const {
  int n = 0;
  for_each_node(*this, [&](const Node& x) { n += x.op != Op::kInput; });
  return n;
}

void for_each_node(const Program& p, const std::function<void(const Node&)>& f) {
  for (const Node& n : p.nodes) {
    f(n);
    for (const Program& b : n.bodies) for_each_node(b, f);
  }
}

namespace {

// The listing of one program or body: `name` gives the C++ name of a node of this program,
// `outer` of the enclosing one (for captured values); `param` the expression of parameter k.
struct Lister {
  std::ostringstream& os;
  std::vector<std::pair<std::string, const Node*>> values;  // constants and inputs to print

  void body(const Program& p, const std::string& prefix, const std::string& indent,
            const std::function<std::string(int)>& outer, const Node& owner,
            const std::function<std::string(int64_t)>& param) {
    auto name = [&](int i) { return absl::StrCat(prefix, i); };
    for (size_t i = 0; i < p.nodes.size(); ++i) {
      const Node& n = p.nodes[i];
      std::string rhs;
      if (n.op == Op::kInput && n.slot.arg == kParam) {
        rhs = param(n.index);
      } else if (n.op == Op::kInput && n.slot.arg == kCapture) {
        rhs = absl::StrCat(outer(owner.args[static_cast<size_t>(owner.operands + n.index)]),
                           "  /* captured */");
      } else {
        rhs = node(p, n, static_cast<int>(i), name, indent);
        if (n.op == Op::kConst) values.emplace_back(name(static_cast<int>(i)), &n);
      }
      os << indent << "Array " << name(static_cast<int>(i)) << " = " << rhs << ";  // "
         << describe(n.facts) << "\n";
    }
  }

  // The right-hand side of node i; control flow prints its bodies on lines of their own.
  std::string node(const Program& p, const Node& n, int i,
                   const std::function<std::string(int)>& name, const std::string& indent) {
    if (n.op == Op::kResult)
      return absl::StrCat("r", name(n.args[0]), "[", n.index, "]");
    if (!is_control(n.op)) return expr(p, n, name);
    const std::string self = name(i), in = indent + "    ";
    auto list = [&](int from, int to) {
      std::vector<std::string> xs;
      for (int k = from; k < to; ++k) xs.push_back(name(n.args[static_cast<size_t>(k)]));
      return absl::StrCat("std::vector<Array>{", absl::StrJoin(xs, ", "), "}");
    };
    auto sub = [&](size_t b, const std::function<std::string(int64_t)>& param) {
      body(n.bodies[b], absl::StrCat(self, "b", b, "_"), in + "  ", name, n, param);
    };
    auto outs = [&](const Program& b, size_t from, size_t to) {
      std::vector<std::string> xs;
      for (size_t k = from; k < to && k < b.outputs.size(); ++k)
        xs.push_back(absl::StrCat(self, "b", &b - n.bodies.data(), "_", b.outputs[k]));
      return absl::StrCat("std::vector<Array>{", absl::StrJoin(xs, ", "), "}");
    };
    os << indent << "std::vector<Array> r" << self << ";\n";
    switch (n.op) {
      case Op::kCond: {
        os << indent << "r" << self << " = tj::cond(" << name(n.args[0]) << ",\n";
        for (size_t b : {size_t{1}, size_t{0}}) {
          os << in << "[&](const std::vector<Array>& o) {  // " << (b ? "true_fn" : "false_fn")
             << "\n";
          sub(b, [](int64_t k) { return absl::StrCat("o[", k, "]"); });
          os << in << "  return " << outs(n.bodies[b], 0, n.bodies[b].outputs.size()) << ";\n"
             << in << "},\n";
        }
        os << in << list(1, n.operands) << ");\n";
        break;
      }
      case Op::kWhile: {
        os << indent << "r" << self << " = tj::while_loop(\n" << in
           << "[&](const std::vector<Array>& c) {  // cond_fn\n";
        sub(0, [](int64_t k) { return absl::StrCat("c[", k, "]"); });
        os << in << "  return c[0] < " << name(n.args[1])
           << (n.bodies[0].outputs.empty()
                   ? std::string()
                   : absl::StrCat(" & ", self, "b0_", n.bodies[0].outputs[0]))
           << ";\n"
           << in << "},\n" << in << "[&](const std::vector<Array>& c) {  // body_fn\n";
        sub(1, [](int64_t k) { return absl::StrCat("c[", k, "]"); });
        std::string next = outs(n.bodies[1], 0, n.bodies[1].outputs.size());
        next.insert(next.find('{') + 1, n.bodies[1].outputs.empty() ? "c[0] + 1" : "c[0] + 1, ");
        os << in << "  return " << next << ";\n"
           << in << "},\n"
           << in << "std::vector<Array>{" << name(n.args[0])
           << (n.operands > 2 ? ", " : "")
           << list(2, n.operands).substr(std::string("std::vector<Array>{").size())
           << ", tj::WhileOptions{.max_iterations = " << n.max_iterations << "});\n";
        break;
      }
      case Op::kFori: {
        os << indent << "r" << self << " = tj::fori_loop(" << n.lower << ", " << n.upper
           << ",\n"
           << in << "[&](const Array& i, const std::vector<Array>& c) {\n";
        sub(0, [](int64_t k) { return k == 0 ? std::string("i") : absl::StrCat("c[", k - 1, "]"); });
        os << in << "  return " << outs(n.bodies[0], 0, n.bodies[0].outputs.size()) << ";\n"
           << in << "},\n"
           << in << list(0, n.operands) << ");\n";
        break;
      }
      case Op::kScan: {
        const size_t nc = static_cast<size_t>(n.carries);
        os << indent << "r" << self << " = concat(tj::scan(\n"
           << in << "[&](const std::vector<Array>& c, const std::vector<Array>& x) {\n";
        sub(0, [nc](int64_t k) {
          return static_cast<size_t>(k) < nc ? absl::StrCat("c[", k, "]")
                                             : absl::StrCat("x[", static_cast<size_t>(k) - nc, "]");
        });
        os << in << "  return std::pair{" << outs(n.bodies[0], 0, nc) << ", "
           << outs(n.bodies[0], nc, n.bodies[0].outputs.size()) << "};\n"
           << in << "},\n"
           << in << list(0, n.carries) << ", " << list(n.carries, n.operands)
           << ", tj::ScanOptions{.length = " << (n.operands > n.carries ? -1 : n.lower)
           << ", .reverse = " << (n.reverse ? "true" : "false") << ", .unroll = " << n.unroll
           << "}));  // carry, then ys\n";
        break;
      }
      default: break;
    }
    return absl::StrCat("r", self, "[0]");
  }
};

}  // namespace

std::string Program::listing() const {
  std::ostringstream os;
  os << "// program " << id << (smooth ? " (smooth: finite differences apply)" : "")
     << (threefry_original ? " (under tj::random::set_threefry_partitionable(false))" : "") << "\n"
     << "// x: std::tuple<std::vector<Array>, std::map<std::string, Array>> (differentiated), "
        "y: std::vector<Array>\n"
     << "auto f = [&](const auto& x, const auto& y) {\n";
  Lister lister{os, {}};
  auto name = [](int i) { return var(i); };
  int vector_pos[2] = {0, 0};
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    std::string rhs;
    if (n.op == Op::kInput) {
      rhs = slot_expr(n.slot, n.slot.key.empty() ? vector_pos[n.slot.arg]++ : 0);
      lister.values.emplace_back(var(static_cast<int>(i)), &n);
    } else if (n.op == Op::kConst) {
      rhs = absl::StrCat("c", i);
      lister.values.emplace_back(absl::StrCat("c", i), &n);
    } else {
      rhs = lister.node(*this, n, static_cast<int>(i), name, "  ");
    }
    os << "  Array " << var(static_cast<int>(i)) << " = " << rhs << ";  // " << describe(n.facts)
       << "\n";
  }
  std::vector<std::string> vec, map;
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (out_slots[k].key.empty())
      vec.push_back(var(outputs[k]));
    else
      map.push_back(absl::StrCat("{\"", out_slots[k].key, "\", ", var(outputs[k]), "}"));
  }
  os << "  return std::pair{std::vector<Array>{" << absl::StrJoin(vec, ", ")
     << "}, std::map<std::string, Array>{" << absl::StrJoin(map, ", ") << "}};\n};\n";
  for (const auto& [label, n] : lister.values) {
    os << "// " << label << " = ";
    if (n->value.size() <= kMaxListedElements)
      os << n->value;
    else
      os << "(" << n->value.size() << " elements)";
    os << "\n";
  }
  return os.str();
}

namespace {

// Drops the captured values that no body of `n` reads, renumbering the bodies' kCapture inputs.
void compact_captures(Node& n) {
  const size_t total = n.args.size() - static_cast<size_t>(n.operands);
  std::vector<bool> used(total, false);
  for (const Program& b : n.bodies)
    for (const Node& x : b.nodes)
      if (x.op == Op::kInput && x.slot.arg == kCapture && x.index >= 0 &&
          static_cast<size_t>(x.index) < total)
        used[static_cast<size_t>(x.index)] = true;
  std::vector<int64_t> renumber(total, -1);
  std::vector<int> args(n.args.begin(), n.args.begin() + n.operands);
  for (size_t k = 0; k < total; ++k)
    if (used[k]) {
      renumber[k] = static_cast<int64_t>(args.size()) - n.operands;
      args.push_back(n.args[static_cast<size_t>(n.operands) + k]);
    }
  n.args = std::move(args);
  for (Program& b : n.bodies)
    for (Node& x : b.nodes)
      if (x.op == Op::kInput && x.slot.arg == kCapture && x.index >= 0 &&
          static_cast<size_t>(x.index) < total)
        x.index = renumber[static_cast<size_t>(x.index)];
}

}  // namespace

void prune(Program& p) {
  for (Node& n : p.nodes) {
    if (!is_control(n.op)) continue;
    for (Program& b : n.bodies) prune(b);
    compact_captures(n);
  }
  std::vector<bool> live(p.nodes.size(), false);
  for (int o : p.outputs) live[static_cast<size_t>(o)] = true;
  for (size_t i = p.nodes.size(); i-- > 0;)
    if (live[i])
      for (int a : p.nodes[i].args) live[static_cast<size_t>(a)] = true;
  std::vector<int> renumber(p.nodes.size(), -1);
  std::vector<Node> kept;
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    if (!live[i]) continue;
    renumber[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(p.nodes[i]));
    for (int& a : kept.back().args) a = renumber[static_cast<size_t>(a)];
  }
  p.nodes = std::move(kept);
  for (int& o : p.outputs) o = renumber[static_cast<size_t>(o)];
}

}  // namespace difftest

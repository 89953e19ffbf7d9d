// Names, the C++-like listing of a program, and pruning of dead nodes.
#include "program.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

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

std::string expr(const Program& p, const Node& n) {
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
    case Op::kSum: return "sum";
    case Op::kMean: return "mean";
    case Op::kMax: return "max";
    case Op::kReshape: return "reshape";
    case Op::kBroadcastTo: return "broadcast_to";
    case Op::kTranspose: return "transpose";
    case Op::kSlice: return "slice";
    case Op::kIndex: return "index";
    case Op::kConcatenate: return "concatenate";
    case Op::kMatmul: return "matmul";
    case Op::kAsType: return "astype";
    case Op::kBitcast: return "bitcast";
    case Op::kRandomBits: return "random_bits";
    case Op::kUniform: return "uniform";
    case Op::kNormal: return "normal";
    case Op::kSplit: return "split";
    case Op::kFoldIn: return "fold_in";
  }
  return "?";
}

bool is_binary(Op op) { return op >= Op::kAdd && op <= Op::kGe; }
bool is_compare(Op op) { return op >= Op::kEq && op <= Op::kGe; }

int Program::num_ops() const {
  int n = 0;
  for (const Node& x : nodes) n += x.op != Op::kInput;
  return n;
}

std::string Program::listing() const {
  std::ostringstream os;
  os << "// program " << id << (smooth ? " (smooth: finite differences apply)" : "")
     << (threefry_original ? " (under tj::random::set_threefry_partitionable(false))" : "") << "\n"
     << "// x: std::tuple<std::vector<Array>, std::map<std::string, Array>> (differentiated), "
        "y: std::vector<Array>\n"
     << "auto f = [&](const auto& x, const auto& y) {\n";
  int vector_pos[2] = {0, 0};
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    std::string rhs = n.op == Op::kInput
                          ? slot_expr(n.slot, n.slot.key.empty() ? vector_pos[n.slot.arg]++ : 0)
                      : n.op == Op::kConst ? absl::StrCat("c", i)
                                           : expr(*this, n);
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
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.op != Op::kInput && n.op != Op::kConst) continue;
    os << "// " << (n.op == Op::kConst ? "c" : "v") << i << " = ";
    if (n.value.size() <= kMaxListedElements)
      os << n.value;
    else
      os << "(" << n.value.size() << " elements)";
    os << "\n";
  }
  return os.str();
}

void prune(Program& p) {
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

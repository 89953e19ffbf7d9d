// The one printer of the IR (grammar in ir.h), used by make_ir, dumps and tests. Variables are
// renamed a, b, ..., z, ba, bb, ... in order of appearance, as JAX prints jaxprs.
#include <charconv>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "ir/ir.h"

namespace tracejit::ir {
namespace {

// Python's tuple spelling: (), (3,), (128, 1).
template <class Seq>
std::string py_tuple(const Seq& xs) {
  if (xs.size() == 1) return absl::StrCat("(", *xs.begin(), ",)");
  return absl::StrCat("(", absl::StrJoin(xs, ", "), ")");
}

template <class T>
std::string shortest(T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";  // 2 -> 2.0, as Python prints
  return s;
}

// Every line of `text` prefixed with `prefix`.
std::string indent(std::string_view text, std::string_view prefix) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(detail::str_part(text), '\n'))
    absl::StrAppend(&out, out.empty() ? "" : "\n", detail::str_part(prefix), line);
  return out;
}

class Printer {
 public:
  explicit Printer(const Function& fn) : fn_(fn), names_(var_names(fn)) {}

  std::string print() const {
    std::string out = "{ lambda ";
    std::vector<std::string> header;
    for (VarId v : fn_.const_vars)
      if (!fn_.type(v).shape.empty()) header.push_back(binder(v));
    for (VarId v : fn_.captures) header.push_back(binder(v));
    absl::StrAppend(&out, absl::StrJoin(header, " "), header.empty() ? "; " : " ; ");
    std::vector<std::string> params;
    for (VarId v : fn_.inputs) params.push_back(binder(v));
    absl::StrAppend(&out, absl::StrJoin(params, " "), ". let\n");
    for (const Eqn& e : fn_.eqns) {
      absl::StrAppend(&out, "    ", eqn_str(fn_, e, names_), "\n");
      for (size_t r = 0; r < e.params.regions.size(); ++r)
        absl::StrAppend(&out, indent(absl::StrCat(region_name(e.prim, r, e.params.regions.size()), "=",
                                                  to_string(*e.params.regions[r])),
                                     "      "),
                        "\n");
    }
    std::vector<std::string> outs;
    for (VarId v : fn_.outputs) outs.push_back(names_[static_cast<size_t>(v)]);
    absl::StrAppend(&out, "  in ", fn_.outputs.size() == 1 ? absl::StrCat("(", outs[0], ",)")
                                                           : absl::StrCat("(", absl::StrJoin(outs, ", "), ")"),
                    " }");
    return out;
  }

 private:
  std::string binder(VarId v) const {
    return absl::StrCat(names_[static_cast<size_t>(v)], ":", type_str(fn_.type(v)));
  }

  const Function& fn_;
  std::vector<std::string> names_;
};

}  // namespace

std::string region_name(Prim prim, size_t index, size_t count) {
  if (prim == Prim::kCond && count == 2) return index == 0 ? "false_branch" : "true_branch";
  if (prim == Prim::kCond) return absl::StrCat("branch", index);
  if (prim == Prim::kWhile) return index == 0 ? "cond" : "body";
  if (prim == Prim::kScan) return "body";
  if (prim == Prim::kCustomVjp) return index == 0 ? "fn" : index == 1 ? "fwd" : "bwd";
  return "fn";
}

std::string var_name(int n) {
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('a' + n % 26));
    n /= 26;
  } while (n);
  return s;
}

std::string literal_str(const Type& type, const base::Buffer& value) {
  const void* p = value.data();
  std::string v;
  switch (type.dtype) {
    case DType::f32: v = shortest(*static_cast<const float*>(p)); break;
    case DType::f64: v = shortest(*static_cast<const double*>(p)); break;
    case DType::i32: v = absl::StrCat(*static_cast<const int32_t*>(p)); break;
    case DType::u32: v = absl::StrCat(*static_cast<const uint32_t*>(p)); break;
    case DType::bool_: v = *static_cast<const bool*>(p) ? "True" : "False"; break;
  }
  return absl::StrCat(v, ":", type_str(type));
}

std::string params_str(Prim prim, const Params& p) {
  switch (prim_info(prim).params) {
    case ParamLayout::None: return "";
    case ParamLayout::Dtype:
      return absl::StrCat("new_dtype=", detail::str_part(dtype_name(p.dtype)),
                          p.weak_type ? " weak_type=True" : "");
    case ParamLayout::Axes: return absl::StrCat("axes=", py_tuple(p.axes));
    case ParamLayout::Broadcast:
      return absl::StrCat("broadcast_dimensions=", py_tuple(p.axes), " shape=", py_tuple(p.shape));
    case ParamLayout::NewShape: return absl::StrCat("new_sizes=", py_tuple(p.shape));
    case ParamLayout::Perm: return absl::StrCat("permutation=", py_tuple(p.axes));
    case ParamLayout::Slice:
      return absl::StrCat("limit_indices=", py_tuple(p.limits), " start_indices=", py_tuple(p.axes));
    case ParamLayout::Axis: return absl::StrCat("dimension=", p.axis);
    case ParamLayout::Iota:
      return absl::StrCat("dimension=", p.axis, " dtype=", detail::str_part(dtype_name(p.dtype)),
                          " shape=", py_tuple(p.shape));
    case ParamLayout::Text: return absl::StrCat("fmt='", absl::CEscape(p.text), "'");
    case ParamLayout::Call: return absl::StrCat("name=", p.text);
    case ParamLayout::Cond: return absl::StrCat("branches=", p.regions.size());
    case ParamLayout::While:
      return absl::StrCat("body_nconsts=", p.groups.size() > 1 ? p.groups[1] : 0,
                          " cond_nconsts=", p.groups.empty() ? 0 : p.groups[0],
                          " max_iterations=", p.length, p.trajectory ? " trajectory=True" : "");
    case ParamLayout::Scan:
      return absl::StrCat("length=", p.length, " num_carry=", p.groups.size() > 1 ? p.groups[1] : 0,
                          " num_consts=", p.groups.empty() ? 0 : p.groups[0],
                          " reverse=", p.reverse ? "True" : "False");
  }
  return "";
}

std::vector<std::string> var_names(const Function& fn) {
  std::vector<std::string> names(static_cast<size_t>(fn.num_vars()));
  int next = 0;
  auto name = [&](VarId v) {
    std::string& n = names[static_cast<size_t>(v)];
    if (n.empty()) n = var_name(next++);
  };
  for (size_t i = 0; i < fn.const_vars.size(); ++i) {
    const Type& type = fn.type(fn.const_vars[i]);
    if (type.shape.empty())
      names[static_cast<size_t>(fn.const_vars[i])] = literal_str(type, *fn.const_values[i]);
  }
  for (VarId v : fn.const_vars) name(v);
  for (VarId v : fn.captures) name(v);
  for (VarId v : fn.inputs) name(v);
  for (const Eqn& e : fn.eqns)
    for (VarId v : e.out) name(v);
  return names;
}

std::string eqn_str(const Function& fn, const Eqn& e, std::span<const std::string> names) {
  std::vector<std::string> outs, ins;
  for (VarId v : e.out)
    outs.push_back(absl::StrCat(names[static_cast<size_t>(v)], ":", type_str(fn.type(v))));
  for (VarId v : e.in) ins.push_back(names[static_cast<size_t>(v)]);
  std::string ps = params_str(e.prim, e.params);
  return absl::StrCat(absl::StrJoin(outs, " "), outs.empty() ? "" : " = ",
                      detail::str_part(prim_name(e.prim)),
                      ps.empty() ? "" : absl::StrCat("[", ps, "]"), ins.empty() ? "" : " ",
                      absl::StrJoin(ins, " "));
}

std::string to_string(const Function& fn) { return Printer(fn).print(); }

}  // namespace tracejit::ir

// The verifier: SSA form and types re-derived by the shape rules. Run after tracing and after
// every pass, so a pass that breaks the IR is caught at the pass, not in generated code.
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "base/errors.h"
#include "ir/ir.h"

namespace tracejit::ir {
namespace {

// Where a region sits, innermost first: the message of a broken region names its equations.
struct RegionPath {
  const RegionPath* outer;
  size_t eqn;
  Prim prim;
};

[[noreturn]] void broken(std::string_view stage, const RegionPath* path, std::string_view what,
                         const Function& fn) {
  std::string at;
  for (; path; path = path->outer)
    absl::StrAppend(&at, ", in a region of equation ", path->eqn, " (",
                    detail::str_part(prim_name(path->prim)), ")");
  throw InternalError(detail::cat("[verify] IR after '", stage, "'", at, " is invalid: ", what,
                                   " (this is a tracejit bug)\n", to_string(fn)));
}

// A name given as text, or as a function that builds it.
template <class T>
std::string name_of(const T& name) {
  if constexpr (std::is_invocable_v<const T&>) return name();
  else return std::string(name);
}

// Strings are built only on failure: one per equation would cost more than the checks do.
void check(const Function& fn, std::string_view stage, const RegionPath* path, bool regions) {
  std::vector<bool> defined(static_cast<size_t>(fn.num_vars()), false);
  auto define = [&](VarId v, auto&& role) {
    if (v < 0 || v >= fn.num_vars()) broken(stage, path, detail::cat(name_of(role), " var ", v, " has no type"), fn);
    if (defined[static_cast<size_t>(v)])
      broken(stage, path, detail::cat(name_of(role), " var ", v, " is defined twice"), fn);
    defined[static_cast<size_t>(v)] = true;
  };
  auto require = [&](VarId v, auto&& where) {
    if (v < 0 || v >= fn.num_vars() || !defined[static_cast<size_t>(v)])
      broken(stage, path, detail::cat("var ", v, " is used by ", name_of(where), " before it is defined"), fn);
  };
  if (fn.const_vars.size() != fn.const_values.size())
    broken(stage, path, "const_vars and const_values differ in length", fn);
  for (size_t i = 0; i < fn.const_vars.size(); ++i) {
    define(fn.const_vars[i], "const");
    const auto& c = fn.const_values[i];
    const Type& t = fn.type(fn.const_vars[i]);
    if (!c || c->bytes() != t.size() * dtype_size(t.dtype))
      broken(stage, path, detail::cat("const var ", fn.const_vars[i], " does not hold a concrete ",
                                 type_str(t)), fn);
  }
  for (VarId v : fn.captures) define(v, "capture");
  for (VarId v : fn.inputs) define(v, "input");
  for (size_t i = 0; i < fn.eqns.size(); ++i) {
    const Eqn& e = fn.eqns[i];
    auto where = [&] { return detail::cat("equation ", i, " (", detail::str_part(prim_name(e.prim)), ")"); };
    for (const auto& r : e.params.regions) {
      if (!r) broken(stage, path, detail::cat(where(), " has a null region"), fn);
      if (!r->captures.empty())
        broken(stage, path, detail::cat(where(), " has a region that captures values: regions are closed"), fn);
      const RegionPath inner{path, i, e.prim};
      if (regions) check(*r, stage, &inner, true);
    }
    std::vector<Type> in;
    for (VarId v : e.in) {
      require(v, where);
      in.push_back(fn.type(v));
    }
    std::vector<Type> expect;
    try {
      expect = infer_types(e.prim, in, e.params);
    } catch (const Error& err) {
      broken(stage, path, detail::cat(where(), " is ill-typed: ", err.what()), fn);
    }
    if (expect.size() != e.out.size())
      broken(stage, path, detail::cat(where(), " has ", e.out.size(), " results, expected ", expect.size()), fn);
    for (size_t k = 0; k < e.out.size(); ++k) {
      define(e.out[k], where);
      if (fn.type(e.out[k]) != expect[k])
        broken(stage, path, detail::cat(where(), " result ", k, " is recorded as ",
                                   type_str(fn.type(e.out[k])), " but its operands give ",
                                   type_str(expect[k])), fn);
    }
  }
  for (VarId v : fn.outputs) require(v, "the function's outputs");
}

}  // namespace

void verify(const Function& fn, std::string_view stage, bool regions) { check(fn, stage, nullptr, regions); }

}  // namespace tracejit::ir

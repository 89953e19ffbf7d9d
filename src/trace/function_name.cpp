#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "base/errors.h"
#include "tracejit/detail/trace_fn.h"

namespace tracejit::detail {

namespace {

// The template arguments of `s`, which begins with `prefix` (ending in '<'), split at the
// commas of depth 0.
std::vector<std::string> template_args(const std::string& s, size_t prefix) {
  std::vector<std::string> args(1);
  int depth = 0;
  for (size_t i = prefix; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '<' || c == '(' || c == '{' || c == '[') ++depth;
    if (c == '>' || c == ')' || c == '}' || c == ']') {
      if (depth == 0) break;
      --depth;
    }
    if (c == ',' && depth == 0) {
      args.emplace_back();
      continue;
    }
    if (!(c == ' ' && args.back().empty())) args.back() += c;
  }
  return args;
}

// Lambdas demangle to e.g. "main::{lambda(tracejit::Array)#1}" (named "main_lambda_1");
// function pointers to their signature. Only letters, digits and '_' survive, so the name is safe in file names. The
// callables grad and value_and_grad return are named after what they differentiate
// ("grad_main_lambda"), not after the library's class.
std::string readable_name(const std::string& full) {
  constexpr std::string_view kGrad = "tracejit::detail::GradFn<";
  if (full.starts_with(kGrad)) {
    std::vector<std::string> args = template_args(full, kGrad.size());
    // GradFn<F, kWithValue, kHasAux, kArgs...>.
    const bool with_value = args.size() >= 2 && args[1] == "true";
    return (with_value ? "value_and_grad_" : "grad_") + readable_name(args[0]);
  }
  // Parenthesized parts (parameter lists, "(anonymous namespace)") say nothing useful.
  std::string name;
  int parens = 0;
  for (char c : full) {
    if (c == '(' || c == ')') {
      parens += c == '(' ? 1 : -1;
      continue;
    }
    if (parens > 0) continue;
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') name += c;
    else if (!name.empty() && name.back() != '_') name += '_';
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  return name.empty() ? "fn" : name;
}

}  // namespace

std::string default_function_name(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return readable_name(status == 0 && demangled ? demangled.get() : mangled);
}

void raise_scalar_parameter(const std::string& fn_name, size_t arg, const Array& leaf) {
  raise<ConcretizationError>("trace", "argument ", arg, " of '", fn_name,
                             "' is passed to a parameter that takes C++ arithmetic values, but "
                             "tracing gives it a tracer ",
                             type_str(leaf.dtype(), leaf.shape()),
                             ", whose value exists only when the compiled code runs. Take a "
                             "tj::Array parameter instead, or capture the value in the lambda to "
                             "bake it in as a constant");
}

}  // namespace tracejit::detail

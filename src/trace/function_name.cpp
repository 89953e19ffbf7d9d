#include <cxxabi.h>

#include <cstdlib>
#include <memory>

#include "frontend/errors.h"
#include "tracejit/detail/trace_fn.h"

namespace tracejit::detail {

// Lambdas demangle to e.g. "main::{lambda(tracejit::Array)#1}"; function pointers to their
// signature. Only letters, digits and '_' survive, so the name is safe in file names.
std::string default_function_name(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  std::string full = status == 0 && demangled ? demangled.get() : mangled;
  std::string name;
  for (char c : full.substr(0, full.find('('))) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') name += c;
    else if (!name.empty() && name.back() != '_') name += '_';
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  return name.empty() ? "fn" : name;
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

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

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

}  // namespace tracejit::detail

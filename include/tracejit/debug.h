#pragma once
// Printing from inside traced code, as JAX's jax.debug.print.
#include <array>
#include <span>
#include <string_view>

#include "tracejit/array.h"

namespace tracejit::debug {

/// Prints `fmt` with each "{}" replaced by the next argument as `<<` prints it (JAX's str of an
/// array; "{{" and "}}" print literal braces), then a newline, on stdout, flushed. Works the same
/// eagerly and inside make_ir, jit, grad and their compositions: inside compiled code it prints
/// each time the code runs (not when it is traced), in program order, before the call returns,
/// and changes no computed value. Under grad it prints the primal values once and takes no part
/// in the gradient. Throws tj::Error "[debug.print] ..." when the placeholders and arguments
/// differ in number.
void print_arrays(std::string_view fmt, std::span<const Array> args);

/// print_arrays over arrays or scalars: tj::debug::print("step {} loss {}", step, loss).
template <class... Args>
void print(std::string_view fmt, const Args&... args) {
  const std::array<Array, sizeof...(Args)> arrays{Array(args)...};
  print_arrays(fmt, arrays);
}

}  // namespace tracejit::debug

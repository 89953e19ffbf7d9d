#pragma once
// The formatting behind tj::debug::print, shared by its eager evaluation, its shape rule and the
// compiled runtime's host step, so that every mode prints the same text.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tracejit/array.h"

namespace tracejit::detail {

/// The number of "{}" placeholders in `fmt` ("{{" and "}}" are literal braces).
int64_t count_placeholders(std::string_view fmt);

/// `fmt` with the i-th placeholder replaced by args[i] as `<<` prints it (JAX's str); the
/// arrays must be concrete and as many as the placeholders.
std::string format_debug(std::string_view fmt, std::span<const Array> args);

/// Writes format_debug(fmt, args) and a newline to stdout, flushed. Serialized across threads.
void emit_debug(std::string_view fmt, std::span<const Array> args);

}  // namespace tracejit::detail

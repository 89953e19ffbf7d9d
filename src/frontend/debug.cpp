// tj::debug::print: checks the format against its arguments, then binds debug_print (printed at
// once when eager, recorded as an effect when traced); and the formatting every mode shares.
#include <iostream>
#include <mutex>

#include "frontend/debug_format.h"
#include "frontend/errors.h"
#include "trace/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/debug.h"

namespace tracejit {
namespace detail {
namespace {

// Walks `fmt`, calling text(piece) for literal text and hole(i) for the i-th placeholder.
template <class Text, class Hole>
int64_t scan(std::string_view fmt, Text&& text, Hole&& hole) {
  int64_t n = 0;
  size_t start = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if ((c != '{' && c != '}') || i + 1 >= fmt.size()) continue;
    const char next = fmt[i + 1];
    if (c == '{' && next == '}') {
      text(fmt.substr(start, i - start));
      hole(n++);
    } else if (next == c) {  // "{{" or "}}"
      text(fmt.substr(start, i - start + 1));
    } else {
      continue;
    }
    start = ++i + 1;
  }
  text(fmt.substr(start));
  return n;
}

}  // namespace

int64_t count_placeholders(std::string_view fmt) {
  return scan(fmt, [](std::string_view) {}, [](int64_t) {});
}

std::string format_debug(std::string_view fmt, std::span<const Array> args) {
  std::string out;
  scan(fmt, [&](std::string_view piece) { out.append(piece); },
       [&](int64_t i) {
         TJ_CHECK(static_cast<size_t>(i) < args.size(), "debug_print: too few operands");
         out += args[static_cast<size_t>(i)].str();
       });
  return out;
}

void emit_debug(std::string_view fmt, std::span<const Array> args) {
  static std::mutex mutex;
  std::string line = format_debug(fmt, args);
  line += '\n';
  std::lock_guard<std::mutex> lock(mutex);
  std::cout << line << std::flush;
}

}  // namespace detail

namespace debug {

void print_arrays(std::string_view fmt, std::span<const Array> args) {
  const int64_t holes = detail::count_placeholders(fmt);
  if (holes != static_cast<int64_t>(args.size()))
    detail::raise<Error>("debug.print", "the format '", fmt, "' has ", holes,
                         holes == 1 ? " placeholder" : " placeholders", " but ", args.size(),
                         args.size() == 1 ? " argument was" : " arguments were",
                         " given; write one {} per argument ({{ and }} for literal braces)");
  for (const Array& a : args) detail::impl_of(a, "debug.print");
  detail::bind(ir::Prim::kDebugPrint, args, ir::Params{.text = std::string(fmt)});
}

}  // namespace debug
}  // namespace tracejit

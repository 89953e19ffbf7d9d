// The formatting of tj::debug::print, shared by every mode (see debug_format.h).
#include "base/debug_format.h"

#include <iostream>
#include <mutex>

#include "base/errors.h"

namespace tracejit::detail {
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

}  // namespace tracejit::detail

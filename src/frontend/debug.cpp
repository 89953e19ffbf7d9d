// tj::debug::print: checks the format against its arguments, then binds debug_print (printed at
// once when eager, recorded as an effect when traced).
#include "base/debug_format.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/debug.h"

namespace tracejit {

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

#include "frontend/errors.h"

namespace tracejit::detail {

void fail_internal(const char* file, int line, std::string_view what) {
  throw InternalError(absl::StrCat("[internal] tracejit invariant broken at ", file, ":", line,
                                   ": ", str_part(what), " (this is a tracejit bug; please report it)"));
}

}  // namespace tracejit::detail

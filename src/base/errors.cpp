#include "base/errors.h"

namespace tracejit::detail {

void fail_internal(const char* file, int line, std::string_view what) {
  throw InternalError(absl::StrCat("[internal] tracejit invariant broken at ", file, ":", line,
                                   ": ", str_part(what), " (this is a tracejit bug; please report it)"));
}

void check_dims_non_negative(std::string_view op, const Shape& shape) {
  for (int64_t d : shape)
    if (d < 0)
      raise<ShapeError>(op, "negative dimension in shape ", shape_str(shape),
                        "; every dimension must be 0 or more");
}

}  // namespace tracejit::detail

#include "base/errors.h"

#include <algorithm>

namespace tracejit::detail {

void fail_internal(const char* file, int line, std::string_view what) {
  throw InternalError(absl::StrCat("[internal] tracejit invariant broken at ", file, ":", line,
                                   ": ", str_part(what), " (this is a tracejit bug; please report it)"));
}

void check_shape(std::string_view op, const Shape& shape) {
  for (int64_t d : shape)
    if (d < 0)
      raise<ShapeError>(op, "negative dimension in shape ", shape_str(shape),
                        "; every dimension must be 0 or more");
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return;  // size 0, whatever else
  // The element count, and the bytes of the widest dtype, must fit in int64_t: beyond that a
  // product wraps around (to 0 or to a small size) and every later step computes nonsense.
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      raise<ShapeError>(op, "shape ", shape_str(shape), " has more elements than tracejit can "
                        "address (at most 2^60, ", kMaxElements, "); use a smaller shape");
}

}  // namespace tracejit::detail

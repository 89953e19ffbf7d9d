#pragma once
// Printing of array values, matching JAX's str() of an array (which is NumPy's str() with the
// default print options: precision 8, floatmode 'maxprec', suppress off, threshold 1000 with
// edgeitems 3, linewidth 75).
#include <string>

#include "tracejit/dtype.h"

namespace tracejit::detail {

/// NumPy's str() of a row-major array of `dtype` with `shape`, elements at `data` (f32 float,
/// f64 double, i32 int32_t, u32 uint32_t, bool_ one byte per element). A 0-d array prints like
/// the scalar it holds ("1.0", "True"); a size-0 array prints "[]".
std::string format_array(DType dtype, const Shape& shape, const void* data);

}  // namespace tracejit::detail

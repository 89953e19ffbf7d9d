#pragma once
#include <span>
#include <vector>

#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::detail {

/// Evaluates one primitive on concrete host arrays: tracejit's reference semantics, which
/// compiled code is tested against. `out_types` come from ir::infer_types.
std::vector<Array> eval_eager(ir::Prim prim, std::span<const Array> in, const ir::Params& params,
                              std::span<const ir::Type> out_types);

/// The higher-order primitives (call, cond, while, scan): their regions replayed through bind.
std::vector<Array> eval_region(ir::Prim prim, std::span<const Array> in, const ir::Params& params,
                               std::span<const ir::Type> out_types);

/// Row-major strides, in elements, of `shape`.
std::vector<int64_t> row_major_strides(const Shape& shape);

}  // namespace tracejit::detail

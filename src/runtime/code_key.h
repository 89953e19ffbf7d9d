#pragma once
// What compiled code depends on, as bytes: the key under which code is shared between jit
// objects in a process (code_cache.h) and stored on disk (disk_cache.h).
#include <string>

#include "ir/ir.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

/// The optimized function `fn` (every equation, parameter, type and constant's bytes, regions
/// nested, variables renumbered in order of appearance so that equal programs give equal bytes)
/// and each setting that changes its code: JitOptions::fast_math, the backend's optimization
/// level, and the tracing modes (dtype promotion, threefry scheme) for good measure. Two
/// functions with equal keys compile to interchangeable code; the function's name is not part
/// of it.
std::string code_key(const ir::Function& fn, const JitOptions& options);

}  // namespace tracejit::detail

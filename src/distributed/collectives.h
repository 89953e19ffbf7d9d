#pragma once
// The runtime's side of tj::distributed: the one reduction that eager evaluation and compiled
// host steps both call. MPI is confined to collectives.cpp.
#include "base/type.h"

namespace tracejit::detail {

/// Sums `type`'s elements at `in` over every rank of the group into `out` (which may equal
/// `in`). First exchanges the dtype and shape among the ranks and throws ShapeError on every
/// rank, naming both types, when they differ. A group of one copies.
void all_sum_buffer(const void* in, void* out, const base::Type& type);

}  // namespace tracejit::detail

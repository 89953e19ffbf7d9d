#pragma once
// The inverse error function exactly as XLA lowers CHLO erf_inv (stablehlo's
// ChloLegalizeToStablehlo.cpp, erfInv32 / erfInv64: Giles' polynomials), built from public ops
// so that jax.random.normal's values come out bit for bit.
#include "tracejit/array.h"

namespace tracejit::detail {

/// erf_inv of an f32 or f64 array; erf_inv(+-1) = +-inf, NaN outside [-1, 1].
Array erf_inv(const Array& x);

}  // namespace tracejit::detail

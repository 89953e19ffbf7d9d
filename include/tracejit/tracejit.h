#pragma once
// tracejit: a tracing JIT compiler for C++ in the spirit of JAX. This umbrella header is the
// whole public API (see API.md): arrays and their operations, pytrees, transformations
// (make_ir, grad, vjp, value_and_grad, jit), random numbers and diagnostics.
#include "tracejit/array.h"
#include "tracejit/dtype.h"
#include "tracejit/error.h"
#include "tracejit/ops.h"
#include "tracejit/pytree.h"
#include "tracejit/transforms.h"
#include "tracejit/jit.h"
#include "tracejit/ad.h"
#include "tracejit/jvp.h"
#include "tracejit/vmap.h"
#include "tracejit/jacobian.h"
#include "tracejit/custom_vjp.h"
#include "tracejit/random.h"
#include "tracejit/debug.h"
#include "tracejit/control_flow.h"
#include "tracejit/nn.h"
#include "tracejit/check_grads.h"
#include "tracejit/distributed.h"

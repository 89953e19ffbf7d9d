#pragma once
// The seed tutorial's model, shared by the tests that exercise it.
#include "tracejit/tracejit.h"

namespace seed {

struct Params {
  tracejit::Array weight;
  tracejit::Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

/// The least-squares loss of the linear model on (x, y).
inline tracejit::Array loss(const Params& p, const tracejit::Array& x, const tracejit::Array& y) {
  tracejit::Array pred = p.weight * x + p.bias;
  return tracejit::mean(tracejit::square(pred - y));
}

}  // namespace seed

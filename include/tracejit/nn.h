#pragma once
// tj::nn: the activations and normalisers of jax.nn (and jax.scipy.special.logsumexp), written
// with public ops, so every transform handles them. Each is stable at large inputs: softmax of
// +-1e4 and logsumexp of 1000s give finite values and finite gradients. Integer and bool
// inputs compute in f32 (relu keeps its dtype), as jax.nn does.
#include "tracejit/array.h"
#include "tracejit/ops.h"

namespace tracejit::nn {

/// max(x, 0); its derivative at 0 is 0, as jax.nn.relu's.
Array relu(const Array& x);
/// 1 / (1 + exp(-x)), accurate in both tails (JAX's logistic).
Array sigmoid(const Array& x);
/// log(1 + exp(x)) = jnp.logaddexp(x, 0); its derivative is sigmoid(x).
Array softplus(const Array& x);
/// jax.nn.gelu: with `approximate` (the default) the tanh form
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); else x Phi(x) with Phi through a rational
/// erf approximation (absolute error below 2e-7).
Array gelu(const Array& x, bool approximate = true);
/// exp(x - max) / sum(exp(x - max)) along `axis`.
Array softmax(const Array& x, int64_t axis = -1);
/// x - logsumexp(x, axis), keeping the axis.
Array log_softmax(const Array& x, int64_t axis = -1);
/// log(sum(exp(x), axes)) computed around the maximum (which gets no gradient, as in JAX);
/// without axes over all of x.
Array logsumexp(const Array& x);
Array logsumexp(const Array& x, const Axes& axes);

}  // namespace tracejit::nn

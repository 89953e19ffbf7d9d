// tj::nn as compositions of public ops: no primitive of its own, so no rule anywhere else.
// Stability comes from the forms chosen: exponentials only of non-positive arguments, maxima
// held by stop_gradient, and selects whose both sides stay finite (so that a zero cotangent on
// the side not taken never meets an infinity).
#include "tracejit/nn.h"

#include <cmath>

#include "base/errors.h"
#include "base/array_impl.h"

namespace tracejit::nn {
namespace {

Array as_float(const Array& x) {
  detail::impl_of(x, "nn");
  return is_float(x.dtype()) ? x : astype(x, DType::f32);
}

// -|x| whose derivative is -1 at 0 (abs has derivative 0 there), so that the branches below
// differentiate to sigmoid's value at 0.
Array neg_abs(const Array& x) { return where(x >= 0, -x, x); }

// Every axis, or the axis list normalised against x's rank (an axis out of range throws
// IndexError naming `op`).
Axes axes_or_all(std::string_view op, const Array& x, const Axes* axes) {
  Axes out;
  if (axes == nullptr) {
    for (int64_t i = 0; i < x.ndim(); ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : *axes) {
    const int64_t n = a < 0 ? a + x.ndim() : a;
    if (n < 0 || n >= x.ndim())
      detail::raise<IndexError>(op, "axis ", a, " is out of range for an array of rank ", x.ndim(),
                                "; valid axes run from ", -x.ndim(), " to ", x.ndim() - 1);
    out.push_back(n);
  }
  return out;
}

// x's shape with the reduced axes kept as size 1.
Shape kept_shape(const Array& x, const Axes& axes) {
  Shape s = x.shape();
  for (int64_t a : axes)
    s[static_cast<size_t>(a)] = 1;
  return s;
}

// The maximum over `axes`, kept as size-1 axes, with no gradient and infinities replaced by 0
// (so that x - m stays finite when a whole slice is -inf).
Array shift_of(const Array& x, const Axes& axes) {
  Array m = reshape(stop_gradient(max(x, axes)), kept_shape(x, axes));
  return where(m - m == 0, m, 0);
}

Array lse(const Array& x_in, const Axes* axes_in) {
  Array x = as_float(x_in);
  Axes axes = axes_or_all("logsumexp", x, axes_in);
  Array m = shift_of(x, axes);
  Array s = log(sum(exp(x - m), axes));
  return s + reshape(m, s.shape());
}

}  // namespace

Array relu(const Array& x) {
  detail::impl_of(x, "relu");
  if (x.dtype() == DType::bool_) return x;
  // The value of maximum(x, 0) (NaN stays NaN), the derivative of the select: 1 where x > 0.
  return where(x > 0, x, stop_gradient(maximum(x, 0)));
}

Array sigmoid(const Array& x_in) {
  Array x = as_float(x_in);
  Array e = exp(neg_abs(x));  // in (0, 1]: never overflows
  return where(x >= 0, 1 / (1 + e), e / (1 + e));
}

Array softplus(const Array& x_in) {
  Array x = as_float(x_in);
  return log1p(exp(neg_abs(x))) + where(x >= 0, x, 0);
}

Array gelu(const Array& x_in, bool approximate) {
  Array x = as_float(x_in);
  if (approximate) {
    const double c = std::sqrt(2.0 / M_PI);
    return x * 0.5 * (1 + tanh(c * (x + 0.044715 * (x * x * x))));
  }
  // Phi(x) = (1 + erf(x / sqrt 2)) / 2 with erf from Abramowitz and Stegun 7.1.26.
  Array z = x * (1 / std::sqrt(2.0));
  Array az = abs(z);
  Array t = 1 / (1 + 0.3275911 * az);
  Array poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  Array erf_abs = 1 - poly * exp(-(az * az));
  Array erf = where(z >= 0, erf_abs, -erf_abs);
  return x * 0.5 * (1 + erf);
}

Array softmax(const Array& x_in, int64_t axis) {
  Array x = as_float(x_in);
  const Axes one{axis};
  Axes axes = axes_or_all("softmax", x, &one);
  Array u = exp(x - shift_of(x, axes));
  return u / reshape(sum(u, axes), kept_shape(x, axes));
}

Array log_softmax(const Array& x_in, int64_t axis) {
  Array x = as_float(x_in);
  const Axes one{axis};
  Axes axes = axes_or_all("log_softmax", x, &one);
  Array shifted = x - shift_of(x, axes);
  return shifted - reshape(log(sum(exp(shifted), axes)), kept_shape(x, axes));
}

Array logsumexp(const Array& x) { return lse(x, nullptr); }
Array logsumexp(const Array& x, const Axes& axes) { return lse(x, &axes); }

}  // namespace tracejit::nn

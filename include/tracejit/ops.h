#pragma once
// Array operations, as in jax.numpy. Each checks its arguments, inserts explicit broadcasts and
// dtype conversions of weakly typed scalars, and binds primitives: evaluated at once outside a
// trace, recorded as IR equations inside one. All are differentiable where the maths is.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tracejit/array.h"

namespace tracejit {

/// Axes or a permutation; negative entries count from the end.
using Axes = std::vector<int64_t>;

// Constructors.
Array zeros(const Shape& shape, DType dtype = DType::f32);
Array ones(const Shape& shape, DType dtype = DType::f32);
Array full(const Shape& shape, double value, DType dtype);
Array arange(int64_t n, DType dtype = DType::i32);
Array zeros_like(const Array& a);
Array ones_like(const Array& a);

// Arithmetic and comparisons, with NumPy broadcasting.
Array operator+(const Array& a, const Array& b);
Array operator-(const Array& a, const Array& b);
Array operator*(const Array& a, const Array& b);
Array operator/(const Array& a, const Array& b);
Array operator-(const Array& a);
Array operator==(const Array& a, const Array& b);
Array operator!=(const Array& a, const Array& b);
Array operator<(const Array& a, const Array& b);
Array operator<=(const Array& a, const Array& b);
Array operator>(const Array& a, const Array& b);
Array operator>=(const Array& a, const Array& b);
/// Bitwise on u32/i32, logical on bool.
Array operator&(const Array& a, const Array& b);
Array operator|(const Array& a, const Array& b);
Array operator^(const Array& a, const Array& b);
/// Shifts of u32/i32 by an array of the same dtype; >> is logical for u32, arithmetic for i32.
/// Shifting by the bit width or more gives 0 (or the sign for i32 >>), as in XLA.
Array operator<<(const Array& a, const Array& b);
Array operator>>(const Array& a, const Array& b);

// Elementwise maths.
Array exp(const Array& a);
Array log(const Array& a);
Array log1p(const Array& a);
Array sin(const Array& a);
Array cos(const Array& a);
Array tanh(const Array& a);
Array sqrt(const Array& a);
Array abs(const Array& a);
Array sign(const Array& a);
Array square(const Array& a);
Array pow(const Array& a, const Array& b);
Array maximum(const Array& a, const Array& b);
Array minimum(const Array& a, const Array& b);
Array where(const Array& cond, const Array& a, const Array& b);

// Reductions; without axes they reduce over all axes.
Array sum(const Array& a);
Array sum(const Array& a, const Axes& axes);
Array mean(const Array& a);
Array mean(const Array& a, const Axes& axes);
Array max(const Array& a);
Array max(const Array& a, const Axes& axes);

// Shapes.
Array reshape(const Array& a, const Shape& shape);
Array broadcast_to(const Array& a, const Shape& shape);
Array transpose(const Array& a, const Axes& perm);
/// NumPy matmul for 1-d and 2-d operands.
Array matmul(const Array& a, const Array& b);
/// The half-open box [starts, limits) of `a`.
Array slice(const Array& a, const Axes& starts, const Axes& limits);
Array concatenate(const std::vector<Array>& arrays, int64_t axis = 0);

// The wider jnp surface (API.md, "The wider surface that ports of JAX code meet first"). All
// are compositions of the primitives above, differentiable where jnp's are.

/// jnp.stack: the arrays (one shape, dtypes promoted) along a new axis.
Array stack(const std::vector<Array>& arrays, int64_t axis = 0);
/// The n x n identity matrix.
Array eye(int64_t n, DType dtype = DType::f32);
/// Rounding to integral values, half to even (jnp.round); the identity on integer arrays.
/// Their derivative is zero, as in JAX.
Array round(const Array& a);
Array floor(const Array& a);
Array ceil(const Array& a);
/// minimum(maximum(a, lo), hi).
Array clip(const Array& a, const Array& lo, const Array& hi);
/// The minimum over `axes` (every axis without them).
Array min(const Array& a);
Array min(const Array& a, const Axes& axes);
/// i32 index of the first maximum (minimum) along `axis`, NaN counting as the maximum (and the
/// minimum), as jnp; without an axis, of the flattened array.
Array argmax(const Array& a, int64_t axis);
Array argmax(const Array& a);
Array argmin(const Array& a, int64_t axis);
Array argmin(const Array& a);
/// jnp.dot: the product of scalars, the inner product of vectors, matmul of matrices, and
/// for N-d the sum over a's last axis and b's second to last.
Array dot(const Array& a, const Array& b);
/// jnp.tensordot: contracts a's last n axes with b's first n.
Array tensordot(const Array& a, const Array& b, int n = 2);
/// jnp.tensordot with explicit axis lists: a's axes.first[i] with b's axes.second[i].
Array tensordot(const Array& a, const Array& b, const std::pair<Axes, Axes>& axes);
/// jnp.einsum over any number of operands, in the explicit ("ij,jk->ik") or implicit ("ij,jk")
/// form; pairs are contracted left to right, as matmuls where no label is shared and kept.
Array einsum(std::string_view spec, const std::vector<Array>& operands);
template <class... Arrays>
Array einsum(std::string_view spec, const Array& a, const Arrays&... rest) {
  return einsum(spec, std::vector<Array>{a, Array(rest)...});
}
/// Elements start, start + step, ... below stop along `axis` (static; negative start and stop
/// count from the end, and both are clamped into range as Python slices are; step >= 1).
Array slice(const Array& a, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
/// Elements of `a` at integer `indices` along `axis`: the result has a's shape with that axis
/// replaced by indices' shape. Out-of-range indices are clamped (jnp's mode='clip').
Array take(const Array& a, const Array& indices, int64_t axis);
/// A window of `sizes` at `starts` (one i32 scalar per axis, traced or not; C++ ints convert),
/// each start clamped so that the window fits, as lax.dynamic_slice.
Array dynamic_slice(const Array& a, const std::vector<Array>& starts, const Shape& sizes);
/// `a` with `update` written at `starts` (clamped so that it fits), as lax.dynamic_update_slice.
Array dynamic_update_slice(const Array& a, const Array& update, const std::vector<Array>& starts);

// Types.
Array astype(const Array& a, DType dtype);
/// Reinterprets the bits of each element as another dtype of the same size (u32 <-> f32...).
Array bitcast(const Array& a, DType dtype);
/// The identity whose derivative is zero.
Array stop_gradient(const Array& a);

}  // namespace tracejit

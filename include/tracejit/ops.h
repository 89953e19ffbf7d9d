#pragma once
// Array operations, as in jax.numpy. Each checks its arguments, inserts explicit broadcasts and
// dtype conversions of weakly typed scalars, and binds primitives: evaluated at once outside a
// trace, recorded as IR equations inside one. All are differentiable where the maths is.
#include <cstdint>
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

// Types.
Array astype(const Array& a, DType dtype);
/// Reinterprets the bits of each element as another dtype of the same size (u32 <-> f32...).
Array bitcast(const Array& a, DType dtype);
/// The identity whose derivative is zero.
Array stop_gradient(const Array& a);

}  // namespace tracejit

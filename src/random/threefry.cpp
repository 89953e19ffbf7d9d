// JAX's threefry2x32 PRNG from u32 primitives only (wrapping +, ^, |, shifts, iota, slices), so
// the same code evaluates eagerly and stages into IR under jit. Mirrors
// jax/_src/random/threefry2x32.py function by function.
#include "random/threefry.h"

#include <array>

#include "tracejit/ops.h"

namespace tracejit::detail {
namespace {

// Threefish's key-schedule parity constant.
constexpr uint32_t kParity = 0x1BD11BDA;
// Rotation distances of the 4-round groups, which alternate between the two rows.
constexpr std::array<std::array<uint32_t, 4>, 2> kRotations = {{{13, 15, 26, 6}, {17, 29, 16, 24}}};
constexpr int kGroups = 5;  // 5 groups of 4 rounds: Threefry-2x32-20

Array u32(uint32_t v) { return Array(v); }  // a weak u32 scalar: takes the other operand's type

// JAX's iota_2x32_shape: element i of `shape` (row-major) gets the counter (hi32(i), lo32(i)).
// Callers keep sizes below 2^32, so the high word is 0.
std::pair<Array, Array> iota_2x32(const Shape& shape) {
  return {zeros(shape, DType::u32), reshape(arange(shape_size(shape), DType::u32), shape)};
}

std::pair<Array, Array> hash_key(const Array& key, const Array& x0, const Array& x1) {
  return threefry2x32(key[0], key[1], x0, x1);
}

}  // namespace

std::pair<Array, Array> threefry2x32(const Array& k0, const Array& k1, const Array& x0,
                                     const Array& x1) {
  // Constants are broadcast once up front: eagerly, each implicit broadcast of a scalar
  // operand costs a full-size pass (under jit, CSE makes this moot).
  const Shape& shape = x0.shape();
  auto splat = [&](const Array& s) { return broadcast_to(s, shape); };
  const Array key_words[3] = {k0, k1, k0 ^ k1 ^ u32(kParity)};
  const Array ks[3] = {splat(key_words[0]), splat(key_words[1]), splat(key_words[2])};
  Array left[2][4], right[2][4];
  for (int row = 0; row < 2; ++row)
    for (int j = 0; j < 4; ++j) {
      left[row][j] = splat(u32(kRotations[row][j]));
      right[row][j] = splat(u32(32 - kRotations[row][j]));
    }
  Array a = x0 + ks[0];
  Array b = x1 + ks[1];
  for (int g = 0; g < kGroups; ++g) {
    for (int j = 0; j < 4; ++j) {
      a = a + b;
      b = ((b << left[g % 2][j]) | (b >> right[g % 2][j])) ^ a;  // rotl(b, r) ^ a
    }
    // Key injection. JAX adds b + ks + (g + 1); u32 addition wraps, so the constant can be
    // summed first.
    a = a + ks[(g + 1) % 3];
    b = b + splat(key_words[(g + 2) % 3] + u32(static_cast<uint32_t>(g + 1)));
  }
  return {a, b};
}

Array threefry_2x32(const Array& key, const Array& count) {
  const int64_t n = count.size();
  if (n == 0) return count;
  Array flat = reshape(count, {n});
  if (n % 2 == 1) flat = concatenate({flat, zeros({1}, DType::u32)});
  const int64_t half = (n + 1) / 2;
  auto [y0, y1] = hash_key(key, slice(flat, {0}, {half}), slice(flat, {half}, {2 * half}));
  Array out = concatenate({y0, y1});
  if (n % 2 == 1) out = slice(out, {0}, {n});
  return reshape(out, count.shape());
}

Array threefry_split(const Array& key, int64_t num, bool partitionable) {
  if (!partitionable) return reshape(threefry_2x32(key, arange(2 * num, DType::u32)), {num, 2});
  auto [hi, lo] = iota_2x32({num});
  auto [b1, b2] = hash_key(key, hi, lo);
  return concatenate({reshape(b1, {num, 1}), reshape(b2, {num, 1})}, 1);
}

Array threefry_fold_in(const Array& key, uint32_t data) {
  // threefry_seed(data) for a 32-bit datum is [data >> 32, data] = [0, data].
  return threefry_2x32(key, array<uint32_t>({0u, data}, {2}));
}

Array threefry_bits32(const Array& key, const Shape& shape, bool partitionable) {
  const int64_t n = shape_size(shape);
  if (n == 0) return zeros(shape, DType::u32);
  if (!partitionable) return reshape(threefry_2x32(key, arange(n, DType::u32)), shape);
  auto [hi, lo] = iota_2x32(shape);
  auto [b1, b2] = hash_key(key, hi, lo);
  return b1 ^ b2;
}

std::pair<Array, Array> threefry_bits64(const Array& key, const Shape& shape, bool partitionable) {
  const int64_t n = shape_size(shape);
  if (n == 0) return {zeros(shape, DType::u32), zeros(shape, DType::u32)};
  if (partitionable) {
    auto [hi, lo] = iota_2x32(shape);
    return hash_key(key, hi, lo);
  }
  // The original scheme draws 2n words: the first n are the high halves, the last n the low.
  Array words = threefry_2x32(key, arange(2 * n, DType::u32));
  return {reshape(slice(words, {0}, {n}), shape), reshape(slice(words, {n}, {2 * n}), shape)};
}

}  // namespace tracejit::detail

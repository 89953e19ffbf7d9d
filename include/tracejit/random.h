#pragma once
// Random numbers as jax.random, bit for bit: JAX's threefry2x32 PRNG built from traceable
// primitives, so every function here works eagerly and inside jit alike.
//
// A key is plain data, a u32[2] array (jax.random.key_data of a threefry key); keys are never
// mutated: derive fresh ones with split or fold_in and use each key once.
//
//   tj::Array key = tj::random::key(0);
//   tj::Array keys = tj::random::split(key);          // u32[2,2]
//   tj::Array x = tj::random::normal(keys[1], {3});   // f32[3]
#include <cstdint>

#include "tracejit/array.h"
#include "tracejit/dtype.h"

namespace tracejit::random {

/// The key of `seed`, as jax.random.PRNGKey(seed): u32[2] holding [seed >> 32, seed & 0xFFFFFFFF].
/// A negative int64 seed converts to its two's complement, as JAX with x64 enabled does
/// (without x64 JAX takes a 32-bit seed: key(-1) there is [0, 0xFFFFFFFF]).
Array key(uint64_t seed);

/// `num` new keys derived from `key`, as u32[num, 2]; take one with `keys[i]`. num >= 1.
Array split(const Array& key, int num = 2);

/// A new key derived from `key` and `data`, the same in both schemes.
Array fold_in(const Array& key, uint32_t data);

/// Uniformly distributed u32 bits of `shape`, as jax.random.bits.
Array bits(const Array& key, const Shape& shape);

/// Floats uniform in [minval, maxval) of `shape`; dtype f32 or f64 (f64 draws 64-bit words, as
/// JAX with x64 enabled). The bounds are rounded to dtype first. As in JAX, minval >= maxval is
/// not an error: every element is then minval.
Array uniform(const Array& key, const Shape& shape, DType dtype = DType::f32, double minval = 0,
              double maxval = 1);

/// Standard normal floats of `shape` (f32 or f64), as jax.random.normal: sqrt(2) * erf_inv(u)
/// with u uniform in (-1, 1).
Array normal(const Array& key, const Shape& shape, DType dtype = DType::f32);

/// Selects the threefry scheme, as the jax_threefry_partitionable flag: true (the default
/// since jax 0.5.0) counts each element's own 64-bit index; false is the original scheme of
/// jax < 0.5.0. split and bits (and so uniform and normal) differ between them; key and
/// fold_in do not. Process-wide; jit keys its cache on it.
void set_threefry_partitionable(bool enabled);
bool threefry_partitionable();

}  // namespace tracejit::random

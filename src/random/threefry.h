#pragma once
// JAX's threefry2x32 PRNG (jax/_src/random/threefry2x32.py) in traceable primitives: the hash
// itself and the two schemes' counter layouts for split and bits. Arguments are checked by
// the public layer (random.cpp); everything here is u32 and trusts its inputs.
#include <atomic>
#include <cstdint>
#include <utility>

#include "tracejit/array.h"

namespace tracejit::detail {

/// Which scheme tj::random::set_threefry_partitionable chose (tj::random::threefry_partitionable
/// returns it); read inline on every jitted call (a signature holds it).
extern std::atomic<bool> g_partitionable;
inline bool partitionable_now() { return g_partitionable.load(); }

/// Threefry-2x32 with 20 rounds, elementwise: hashes the counter pairs (x0[i], x1[i]) under
/// the key (k0, k1). All u32; k0 and k1 broadcast against x0 and x1, which share a shape.
std::pair<Array, Array> threefry2x32(const Array& k0, const Array& k1, const Array& x0,
                                     const Array& x1);

/// JAX's threefry_2x32(keypair, count): flattens `count` (padding an odd length with one 0),
/// hashes first half against second half and returns concat(y0, y1), truncated, in the
/// shape of `count`. `key` is u32[2].
Array threefry_2x32(const Array& key, const Array& count);

/// split(key, num) as u32[num, 2], in either scheme.
Array threefry_split(const Array& key, int64_t num, bool partitionable);

/// fold_in(key, data): threefry_2x32(key, [0, data]), the same in both schemes.
Array threefry_fold_in(const Array& key, uint32_t data);

/// 32-bit random bits of `shape`, in either scheme.
Array threefry_bits32(const Array& key, const Shape& shape, bool partitionable);

/// 64-bit random bits of `shape` as their (high, low) u32 words, in either scheme; the value
/// is (high << 32) | low.
std::pair<Array, Array> threefry_bits64(const Array& key, const Shape& shape, bool partitionable);

}  // namespace tracejit::detail

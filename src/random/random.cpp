// The public jax.random layer: checks keys, shapes and dtypes, reads the scheme flag, and turns
// threefry's bits into floats as jax/_src/random/core.py does.
#include "tracejit/random.h"

#include <atomic>
#include <cmath>
#include <string_view>

#include "base/errors.h"
#include "random/erf_inv.h"
#include "random/threefry.h"
#include "tracejit/ops.h"

namespace tracejit::detail {
std::atomic<bool> g_partitionable{true};  // jax_threefry_partitionable, True since jax 0.5.0
}  // namespace tracejit::detail

namespace tracejit::random {
namespace {

using tracejit::detail::raise;


// JAX counts words with a u32 iota and splits longer draws into blocks of 2^32 - 1 words; we
// reject them instead (a 16 GiB draw) so that one counter always suffices.
constexpr int64_t kMaxWords = 0xFFFFFFFE;

constexpr std::string_view kMakeKeys = "make keys with tj::random::key(seed)";

void check_key(std::string_view op, const Array& key) {
  if (!key.valid()) raise<TypeError>(op, "got an empty tj::Array as key; ", kMakeKeys);
  const std::string type = type_str(key.dtype(), key.shape());
  if (key.dtype() != DType::u32)
    raise<TypeError>(op, "expected a key of type u32[2], got ", type, "; ", kMakeKeys);
  if (key.shape() != Shape{2})
    raise<ShapeError>(op, "expected a key of type u32[2], got ", type, "; ",
                      key.ndim() == 2 ? "take one key of a split with keys[i], or " : "",
                      kMakeKeys);
}

// Checks `shape` and that `words_per_element` u32 words per element fit one counter.
void check_shape(std::string_view op, const Shape& shape, int64_t words_per_element) {
  tracejit::detail::check_shape(op, shape);
  int64_t words = words_per_element;
  for (int64_t d : shape) {
    if (d == 0) return;
    if (words > kMaxWords / d)
      raise<ShapeError>(op, "cannot draw shape ", shape_str(shape),
                        ": it needs 2^32 or more 32-bit words; draw it in pieces from split keys");
    words *= d;
  }
}

DType check_float(std::string_view op, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::f64)
    raise<TypeError>(op, "dtype must be f32 or f64, got ", dtype_name(dtype),
                     "; draw integers with tj::random::bits");
  return dtype;
}

// jax.random.uniform's _uniform: the top mantissa bits of random words under the exponent of
// 1.0 give a float in [1, 2); minus 1, scaled and shifted.
Array uniform_in(std::string_view op, const Array& key, const Shape& shape, DType dtype,
                 double minval, double maxval) {
  check_key(op, key);
  check_float(op, dtype);
  const bool part = threefry_partitionable();
  Array floats;
  if (dtype == DType::f32) {
    check_shape(op, shape, 1);
    Array words = tracejit::detail::threefry_bits32(key, shape, part);
    floats = bitcast((words >> Array(9u)) | Array(0x3F800000u), DType::f32) - Array(1.0f);
  } else {
    // 64-bit words (hi, lo): JAX computes bitcast((w >> 12) | bits(1.0)) - 1 = (w >> 12) / 2^52.
    // Without 64-bit integers, build that same value from the words: hi / 2^32 + (lo >> 12) / 2^52
    // holds 52 significant bits, so every step is exact and the result is identical.
    check_shape(op, shape, part ? 1 : 2);
    auto [hi, lo] = tracejit::detail::threefry_bits64(key, shape, part);
    floats = astype(hi, DType::f64) * Array(0x1p-32) +
             astype(lo >> Array(12u), DType::f64) * Array(0x1p-52);
  }
  // As JAX: the bounds are rounded to dtype, and the range is computed in dtype.
  const Array lo = Array::scalar(dtype, minval, /*weak=*/false);
  const Array hi = Array::scalar(dtype, maxval, /*weak=*/false);
  return maximum(lo, floats * (hi - lo) + lo);
}

}  // namespace

Array key(uint64_t seed) {
  return array<uint32_t>({static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(seed)}, {2});
}

Array split(const Array& key, int num) {
  constexpr std::string_view op = "random.split";
  check_key(op, key);
  if (num < 1)
    raise<ShapeError>(op, "needs num >= 1, got ", num, " for key ",
                      type_str(key.dtype(), key.shape()), "; ask for at least one key");
  check_shape(op, {num}, threefry_partitionable() ? 1 : 2);
  return tracejit::detail::threefry_split(key, num, threefry_partitionable());
}

Array fold_in(const Array& key, uint32_t data) {
  check_key("random.fold_in", key);
  return tracejit::detail::threefry_fold_in(key, data);
}

Array bits(const Array& key, const Shape& shape) {
  constexpr std::string_view op = "random.bits";
  check_key(op, key);
  check_shape(op, shape, 1);
  return tracejit::detail::threefry_bits32(key, shape, threefry_partitionable());
}

Array uniform(const Array& key, const Shape& shape, DType dtype, double minval, double maxval) {
  return uniform_in("random.uniform", key, shape, dtype, minval, maxval);
}

Array normal(const Array& key, const Shape& shape, DType dtype) {
  constexpr std::string_view op = "random.normal";
  check_float(op, dtype);
  // u in (-1, 1): the lower bound is the float just above -1 (f32 0xBF7FFFFF).
  const double lo =
      dtype == DType::f32 ? double{std::nextafter(-1.0f, 0.0f)} : std::nextafter(-1.0, 0.0);
  const Array u = uniform_in(op, key, shape, dtype, lo, 1.0);
  return Array::scalar(dtype, std::sqrt(2.0), /*weak=*/false) * tracejit::detail::erf_inv(u);
}

void set_threefry_partitionable(bool enabled) { tracejit::detail::g_partitionable.store(enabled); }
bool threefry_partitionable() { return tracejit::detail::partitionable_now(); }

}  // namespace tracejit::random

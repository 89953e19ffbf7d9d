#pragma once
// Element types and shapes.
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace tracejit {

/// Element types. Storage: f32 float, f64 double, i32 int32_t, u32 uint32_t, bool_ one byte.
enum class DType : uint8_t { f32, f64, i32, u32, bool_ };

/// "f32", "f64", "i32", "u32", "bool".
std::string_view dtype_name(DType d);
/// Bytes per element.
int64_t dtype_size(DType d);
bool is_float(DType d);
bool is_integer(DType d);  // i32 and u32
std::ostream& operator<<(std::ostream& os, DType d);

/// How operations that take several arrays treat different dtypes (JAX's
/// jax_numpy_dtype_promotion). standard: they promote as jnp.promote_types does (bool < u32,
/// i32 < f32 < f64; an integer with a float gives the float; i32 with u32 gives i32, as JAX
/// without x64). strict: two arrays of different dtypes are a TypeError that says to use
/// tj::astype. In both, a C++ scalar takes the array's dtype unless its kind is higher.
enum class DTypePromotion : uint8_t { standard, strict };
/// Sets the mode for every thread; part of jit's cache key, so jitted functions follow it.
void set_dtype_promotion(DTypePromotion mode);
DTypePromotion dtype_promotion();
/// jnp.promote_types: the dtype two arrays of these dtypes promote to in standard mode.
DType promote_types(DType a, DType b);

/// Dimensions of an array, outermost first; `{}` is a scalar.
using Shape = absl::InlinedVector<int64_t, 4>;

/// Number of elements (1 for a scalar).
int64_t shape_size(const Shape& s);
/// "[128,1]", "[]".
std::string shape_str(const Shape& s);
/// "f32[128,1]".
std::string type_str(DType d, const Shape& s);

/// The C++ element type of a dtype, and back.
template <DType D> struct dtype_ctype;
template <> struct dtype_ctype<DType::f32> { using type = float; };
template <> struct dtype_ctype<DType::f64> { using type = double; };
template <> struct dtype_ctype<DType::i32> { using type = int32_t; };
template <> struct dtype_ctype<DType::u32> { using type = uint32_t; };
template <> struct dtype_ctype<DType::bool_> { using type = bool; };

/// The dtype a C++ arithmetic type maps to: float→f32, other floating→f64, bool→bool_,
/// unsigned integers→u32, other integers→i32.
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, bool>) return DType::bool_;
  else if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_floating_point_v<T>) return DType::f64;
  else if constexpr (std::is_unsigned_v<T>) return DType::u32;
  else return DType::i32;
}

}  // namespace tracejit

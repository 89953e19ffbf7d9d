#pragma once
// The two error verbs. `raise<E>(op, ...)` reports a user's misuse as a tj::Error subclass whose
// message starts with the operation in brackets; TJ_CHECK guards tracejit's own invariants.
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "tracejit/dtype.h"
#include "tracejit/error.h"

namespace tracejit::detail {

/// Debian's abseil has its own string_view type, distinct from std::string_view: pass
/// std::string_view (and anything convertible to it but not to absl's) to absl::StrCat through this.
template <class T>
decltype(auto) str_part(const T& x) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                !std::is_convertible_v<const T&, absl::string_view>) {
    std::string_view v(x);
    return absl::string_view(v.data(), v.size());
  } else {
    return (x);
  }
}

/// absl::StrCat that also takes std::string_view.
template <class... Parts>
std::string cat(const Parts&... parts) {
  return absl::StrCat(str_part(parts)...);
}

/// The most elements one array may have: 2^60, so that its bytes (8 per element at most) and
/// any index into it fit in int64_t with room to spare.
inline constexpr int64_t kMaxElements = int64_t{1} << 60;

/// Throws ShapeError naming `op` and the shape (with the fix) when a dimension of `shape` is
/// below 0 or its element count passes kMaxElements: the one check every shape goes through
/// (constructors, and every primitive's results, in ir::infer_types).
void check_shape(std::string_view op, const Shape& shape);

template <class E, class... Parts>
[[noreturn]] void raise(std::string_view op, const Parts&... parts) {
  throw E(absl::StrCat("[", str_part(op), "] ", str_part(parts)...));
}

[[noreturn]] void fail_internal(const char* file, int line, std::string_view what);

}  // namespace tracejit::detail

#define TJ_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::tracejit::detail::fail_internal(__FILE__, __LINE__,                              \
                                        ::tracejit::detail::cat(#cond " " __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

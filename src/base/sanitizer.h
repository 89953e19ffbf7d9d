#pragma once
// Which sanitizer instruments this build: allocators of our own step aside for theirs.

#if defined(__has_feature)
#define TRACEJIT_DETAIL_HAS_FEATURE(x) __has_feature(x)
#else
#define TRACEJIT_DETAIL_HAS_FEATURE(x) 0
#endif

namespace tracejit::base {

#if defined(__SANITIZE_ADDRESS__) || TRACEJIT_DETAIL_HAS_FEATURE(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__) || TRACEJIT_DETAIL_HAS_FEATURE(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif

}  // namespace tracejit::base

#pragma once
// Compiled code shared by every jit object in the process, keyed by code_key(): a tj::jit(f)
// created afresh for each call traces each time but compiles once. Bounded: the least recently
// used executables beyond kMaxSharedExecutables or kMaxSharedBytes (keys and machine code) are
// dropped from it (jit objects holding them keep them).
#include <cstddef>
#include <memory>
#include <string>

#include "backend/compile.h"

namespace tracejit::detail {

inline constexpr size_t kMaxSharedExecutables = 128;
inline constexpr size_t kMaxSharedBytes = size_t{32} << 20;

/// The executable compiled for `key`, or null; a hit makes it the most recently used.
std::shared_ptr<const backend::Executable> find_shared_code(const std::string& key);
/// Offers `exe`, compiled for `key`, to later jit objects; `code_bytes` is its machine code's size.
void share_code(std::string key, std::shared_ptr<const backend::Executable> exe, size_t code_bytes);
/// Empties the cache (for tests that must compile).
void clear_shared_code();

}  // namespace tracejit::detail

#pragma once
// A stable 64-bit hash of bytes (MurmurHash64A): the same in every process and on every run,
// unlike absl::Hash, which is seeded per process. For cache file names and entry checksums,
// which other processes read back; not a cryptographic hash.
#include <cstdint>
#include <string_view>

namespace tracejit::base {

uint64_t fingerprint64(std::string_view bytes, uint64_t seed = 0);

}  // namespace tracejit::base

#include "base/fingerprint.h"

#include <cstring>

namespace tracejit::base {

uint64_t fingerprint64(std::string_view bytes, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ull;
  constexpr int r = 47;
  const size_t n = bytes.size();
  uint64_t h = seed ^ (n * m);
  const char* p = bytes.data();
  for (size_t i = 0; i + 8 <= n; i += 8, p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);  // little-endian hosts only read the same words; the key names the CPU
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  if (const size_t tail = n & 7) {
    uint64_t k = 0;
    for (size_t i = 0; i < tail; ++i) k |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    h ^= k;
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

}  // namespace tracejit::base

#pragma once
// The type of a value, concrete or traced: what an array holds and what an IR variable stands for.
#include <string>

#include "absl/hash/hash.h"
#include "tracejit/dtype.h"

namespace tracejit::base {

/// a == b, by hand: std::equal (the InlinedVector's ==) calls memcmp, and a cache hit compares
/// every leaf's shape.
inline bool same_shape(const Shape& a, const Shape& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

/// Dtype, shape and JAX's weak-type bit.
struct Type {
  DType dtype = DType::f32;
  Shape shape;
  bool weak = false;
  int64_t size() const { return shape_size(shape); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  bool operator==(const Type& o) const { return dtype == o.dtype && weak == o.weak && same_shape(shape, o.shape); }
  template <typename H>
  friend H AbslHashValue(H h, const Type& t) {
    return H::combine(std::move(h), t.dtype, t.shape, t.weak);
  }
};

/// "f32[128,1]" (weak types print the same).
inline std::string type_str(const Type& t) { return tracejit::type_str(t.dtype, t.shape); }

}  // namespace tracejit::base

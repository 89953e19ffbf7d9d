#include "tracejit/dtype.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tracejit {

std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::u32: return "u32";
    case DType::bool_: return "bool";
  }
  return "?";
}

int64_t dtype_size(DType d) {
  switch (d) {
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::f64: return 8;
    case DType::bool_: return 1;
  }
  return 0;
}

bool is_float(DType d) { return d == DType::f32 || d == DType::f64; }
bool is_integer(DType d) { return d == DType::i32 || d == DType::u32; }

std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }

int64_t shape_size(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) { return absl::StrCat("[", absl::StrJoin(s, ","), "]"); }

std::string type_str(DType d, const Shape& s) {
  return absl::StrCat(std::string(dtype_name(d)), shape_str(s));
}

}  // namespace tracejit

#pragma once
// Calls a generic lambda with the C++ storage type of a dtype: dispatch(d, [&]<class T>() {...}).
#include "base/errors.h"
#include "tracejit/dtype.h"

namespace tracejit::detail {

template <class F>
decltype(auto) dispatch(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::u32: return f.template operator()<uint32_t>();
    case DType::bool_: return f.template operator()<bool>();
  }
  fail_internal(__FILE__, __LINE__, "unknown dtype");
}

}  // namespace tracejit::detail

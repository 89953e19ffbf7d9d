#pragma once
// tj::Array: an immutable n-d array. Outside a trace it owns a host buffer (copies share it);
// inside a trace it is a tracer: a typed placeholder whose operations are recorded as IR.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "tracejit/dtype.h"

namespace tracejit {

namespace detail {
struct ArrayImpl;
}

class ArrayAt;

class Array {
 public:
  /// An empty handle (as in a default-constructed struct field); any operation on it throws.
  Array();
  Array(const Array&) = default;
  Array(Array&&) noexcept = default;
  /// Assignment rebinds a named array only: `x[0] = 123` (an assignment to a temporary, which
  /// would change nothing) does not compile. Use x.at(0).set(123) for a functional update.
  Array& operator=(const Array&) & = default;
  Array& operator=(Array&&) & noexcept = default;
  ~Array() = default;
  /// A 0-d array from a C++ scalar: float→f32, double→f64, int→i32, uint32_t→u32, bool→bool.
  /// Such arrays are weakly typed, as Python scalars are in JAX: combined with an array they
  /// take its dtype (`x * 2` stays f32, `n + 1` on an i32 stays i32).
  template <class T>
    requires std::is_arithmetic_v<T>
  Array(T value)  // NOLINT: implicit on purpose, like JAX's scalars.
      : Array(scalar(dtype_of<T>(), static_cast<double>(value), /*weak=*/true)) {}

  const Shape& shape() const;
  int64_t ndim() const;
  int64_t size() const;
  DType dtype() const;
  /// True for a C++ scalar and values computed only from such scalars (JAX's weak type).
  bool weak_type() const;
  /// True inside a trace: the value exists only when the compiled code runs.
  bool is_tracer() const;
  /// False for a default-constructed Array.
  bool valid() const { return impl_ != nullptr; }

  /// The single element converted to T. Throws ConcretizationError on a tracer and
  /// ShapeError unless size() == 1.
  template <class T>
    requires std::is_arithmetic_v<T>
  T item() const {
    // Read as the dtype's own storage type, then convert: T may be narrower or wider.
    typename dtype_ctype<dtype_of<T>()>::type out{};
    read_elements(dtype_of<T>(), &out, 1, "item");
    return static_cast<T>(out);
  }
  /// All elements in row-major order, converted to T. Throws ConcretizationError on a tracer.
  template <class T>
    requires std::is_arithmetic_v<T>
  std::vector<T> to_vector() const {
    using Storage = typename dtype_ctype<dtype_of<T>()>::type;
    if constexpr (std::is_same_v<Storage, T> && !std::is_same_v<T, bool>) {
      std::vector<T> out(static_cast<size_t>(size()));
      read_elements(dtype_of<T>(), out.data(), -1, "to_vector");
      return out;
    } else {
      auto tmp = std::make_unique<Storage[]>(static_cast<size_t>(size()));
      read_elements(dtype_of<T>(), tmp.get(), -1, "to_vector");
      std::vector<T> out;
      out.reserve(static_cast<size_t>(size()));
      for (int64_t i = 0; i < size(); ++i) out.push_back(static_cast<T>(tmp[i]));
      return out;
    }
  }
  /// Truth value of a size-1 array. On a tracer (an `if` on a traced value) it throws
  /// ConcretizationError: use tj::where instead.
  explicit operator bool() const;

  /// Row i along axis 0 (negative counts from the end); throws IndexError when out of range.
  Array operator[](int64_t i) const;
  /// JAX's x.at[i]: functional updates of row i along axis 0 (`x.at(1).set(0)` returns a new
  /// array; x is unchanged). i is an int or an i32 Array, negative counting from the end; an
  /// index out of range updates nothing, as JAX's default mode.
  ArrayAt at(const Array& index) const;

  /// Returns the array: calls are synchronous, so there is nothing to wait for (eases ports of
  /// JAX code, where x.block_until_ready() is common).
  Array block_until_ready() const { return *this; }

  /// JAX's str(): NumPy formatting, e.g. `[0.5 1.  2. ]`.
  std::string str() const;

  // For tracejit's own layers.
  static Array scalar(DType dtype, double value, bool weak);
  explicit Array(std::shared_ptr<detail::ArrayImpl> impl) : impl_(std::move(impl)) {}
  const std::shared_ptr<detail::ArrayImpl>& impl() const { return impl_; }

 private:
  // Copies elements converted to `as` into `out`; count -1 means all (else must equal size()).
  void read_elements(DType as, void* out, int64_t count, const char* op) const;
  std::shared_ptr<detail::ArrayImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Array& a);

/// What Array::at returns: each method gives the updated array.
class ArrayAt {
 public:
  ArrayAt(Array array, Array index) : array_(std::move(array)), index_(std::move(index)) {}
  /// Row i replaced by v (broadcast to the row's shape, converted to the array's dtype).
  Array set(const Array& v) const;
  Array add(const Array& v) const;
  Array multiply(const Array& v) const;
  Array min(const Array& v) const;
  Array max(const Array& v) const;
  /// Row i itself (x.at[i].get()).
  Array get() const;

 private:
  Array array_, index_;
};

namespace detail {
Array array_from_data(DType dtype, const void* data, int64_t count, const Shape& shape);
}

/// An array from row-major values; values.size() must equal the shape's size.
template <class T>
  requires(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
           std::is_same_v<T, uint32_t> || std::is_same_v<T, bool>)
Array array(const std::vector<T>& values, const Shape& shape) {
  if constexpr (std::is_same_v<T, bool>) {
    auto tmp = std::make_unique<bool[]>(values.size());
    for (size_t i = 0; i < values.size(); ++i) tmp[i] = values[i];
    return detail::array_from_data(DType::bool_, tmp.get(), static_cast<int64_t>(values.size()),
                                   shape);
  } else {
    return detail::array_from_data(dtype_of<T>(), values.data(),
                                   static_cast<int64_t>(values.size()), shape);
  }
}
/// `tj::array({1.f, 2.f, 3.f, 4.f}, {2, 2})`.
template <class T>
Array array(std::initializer_list<T> values, const Shape& shape) {
  return array(std::vector<T>(values), shape);
}
/// `tj::array({1.f, 2.f, 3.f})`: a 1-d array.
template <class T>
Array array(std::initializer_list<T> values) {
  return array(std::vector<T>(values), Shape{static_cast<int64_t>(values.size())});
}
/// A 1-d array of the values.
template <class T>
Array array(const std::vector<T>& values) {
  return array(values, Shape{static_cast<int64_t>(values.size())});
}

}  // namespace tracejit

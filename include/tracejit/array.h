#pragma once
// tj::Array: an immutable n-d array. Outside a trace it owns a host buffer (copies share it);
// inside a trace it is a tracer: a typed placeholder whose operations are recorded as IR.
#include <atomic>
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
/// The reference count at the front of every ArrayImpl: Array holds it intrusively, so a copy
/// is one increment and the last release frees the block with one direct call (a shared_ptr's
/// control block took two virtual calls). A copy of an impl starts a count of its own.
struct Counted {
  Counted() = default;
  Counted(const Counted&) noexcept {}
  Counted& operator=(const Counted&) noexcept { return *this; }
  std::atomic<int32_t> refs{1};
  uint8_t block = 0;  ///< which kind of block holds it, for destroy() (array_impl.cpp)
};
/// Destroys `impl` and frees its block; called when its last Array goes.
void destroy(Counted* impl) noexcept;
}  // namespace detail

class ArrayAt;

class Array {
 public:
  /// An empty handle (as in a default-constructed struct field); any operation on it throws.
  Array() noexcept = default;
  Array(const Array& other) noexcept : ref_(other.ref_) {
    if (ref_ != nullptr) ref_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  Array(Array&& other) noexcept : ref_(other.ref_) { other.ref_ = nullptr; }
  /// Assignment rebinds a named array only: `x[0] = 123` (an assignment to a temporary, which
  /// would change nothing) does not compile. Use x.at(0).set(123) for a functional update.
  Array& operator=(const Array& other) & noexcept {
    if (other.ref_ != nullptr) other.ref_->refs.fetch_add(1, std::memory_order_relaxed);
    rebind(other.ref_);
    return *this;
  }
  Array& operator=(Array&& other) & noexcept {
    if (this != &other) {
      detail::Counted* taken = other.ref_;
      other.ref_ = nullptr;
      rebind(taken);
    }
    return *this;
  }
  ~Array() { release(ref_); }
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
  bool valid() const { return ref_ != nullptr; }

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
  /// Takes over the one reference a new impl starts with.
  explicit Array(detail::Counted* adopted) noexcept : ref_(adopted) {}
  /// The implementation (null when !valid()); a template only so that the cast is compiled
  /// where ArrayImpl is complete.
  template <class Impl = detail::ArrayImpl>
  Impl* impl() const {
    return static_cast<Impl*>(ref_);
  }

 private:
  static void release(detail::Counted* p) noexcept {
    // The only holder needs no locked instruction: no one else can take a reference meanwhile.
    if (p != nullptr && (p->refs.load(std::memory_order_acquire) == 1 ||
                         p->refs.fetch_sub(1, std::memory_order_acq_rel) == 1))
      detail::destroy(p);
  }
  void rebind(detail::Counted* p) noexcept {
    detail::Counted* old = ref_;
    ref_ = p;
    release(old);
  }
  // Copies elements converted to `as` into `out`; count -1 means all (else must equal size()).
  void read_elements(DType as, void* out, int64_t count, const char* op) const;
  detail::Counted* ref_ = nullptr;
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

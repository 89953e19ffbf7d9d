#include "frontend/format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tracejit::detail {
namespace {

// NumPy's default print options.
constexpr int kPrecision = 8;
constexpr int64_t kThreshold = 1000;
constexpr int64_t kEdgeItems = 3;
constexpr int64_t kLineWidth = 75;

using ElementFormatter = std::function<std::string(int64_t offset)>;

std::string pad_left(absl::string_view s, size_t width) {
  if (s.size() >= width) return std::string(s);
  return absl::StrCat(std::string(width - s.size(), ' '), s);
}

std::string pad_right(absl::string_view s, size_t width) {
  if (s.size() >= width) return std::string(s);
  return absl::StrCat(s, std::string(width - s.size(), ' '));
}

void trim_trailing_zeros(std::string& s) {
  while (!s.empty() && s.back() == '0') s.pop_back();
}

// ---------------------------------------------------------------------------------------------
// Decimal digits. NumPy prints with Dragon4: the shortest digits that identify the value in its
// own type, cut off at `precision` digits where the cut rounds the exact binary value (ties to
// even). std::to_chars gives both: the shortest form without a precision, the exactly rounded
// one with it.

// A finite non-negative value as d0.d1d2... × 10^exp.
struct Decimal {
  std::string digits;
  int exp = 0;
  int frac_digits() const { return static_cast<int>(digits.size()) - 1; }
};

// Parses to_chars' scientific form "d[.ddd]e±XX".
Decimal parse_scientific(absl::string_view s) {
  Decimal d;
  const size_t e = s.find('e');
  for (char c : s.substr(0, e))
    if (c != '.') d.digits.push_back(c);
  const char* first = s.data() + e + 1;
  if (*first == '+') ++first;  // from_chars takes '-' but not '+'
  std::from_chars(first, s.data() + s.size(), d.exp);
  return d;
}

// The shortest digits that identify a >= 0 among the values of T; Dragon4's unique mode, which
// numpy uses, yields the same digits.
template <class T>
Decimal shortest_decimal(T a) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), a, std::chars_format::scientific);
  return parse_scientific(absl::string_view(buf, r.ptr - buf));
}

// `frac` digits after the mantissa's point. Going through double is exact for float.
Decimal rounded_decimal(double v, int frac) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific, frac);
  return parse_scientific(absl::string_view(buf, r.ptr - buf));
}

struct Positional {
  std::string int_part;
  std::string frac_part;
};

Positional to_positional(const Decimal& d) {
  const int n = static_cast<int>(d.digits.size());
  const int point = d.exp + 1;  // digits before the decimal point
  if (point <= 0) return {"0", absl::StrCat(std::string(-point, '0'), d.digits)};
  if (point >= n) return {absl::StrCat(d.digits, std::string(point - n, '0')), ""};
  return {d.digits.substr(0, point), d.digits.substr(point)};
}

// `a` in fixed notation rounded to `frac` digits after the point, split there.
Positional rounded_positional(double a, int frac) {
  char buf[400];  // enough for any value below 1e16, which is all that prints positionally
  auto r = std::to_chars(buf, buf + sizeof(buf), a, std::chars_format::fixed, frac);
  absl::string_view s(buf, r.ptr - buf);
  const size_t dot = s.find('.');
  if (dot == absl::string_view::npos) return {std::string(s), ""};
  return {std::string(s.substr(0, dot)), std::string(s.substr(dot + 1))};
}

// Positional digits of |v| in unique mode with at most kPrecision fractional digits (trailing
// zeros of a cut-off value trimmed, as floatmode 'maxprec' does). With `to_units`, digits run at
// least down to the units place, as when numpy prints an element (min_digits=0) rather than
// sizing the columns: a float32 97007632 prints so, though its shortest form is 97007630.
template <class T>
Positional positional_digits(T a, bool to_units) {
  const Decimal d = shortest_decimal(a);
  if (to_units && d.exp + 1 > static_cast<int>(d.digits.size()))
    return rounded_positional(static_cast<double>(a), 0);
  Positional p = to_positional(d);
  if (p.frac_part.size() <= static_cast<size_t>(kPrecision)) return p;
  p = rounded_positional(static_cast<double>(a), kPrecision);
  trim_trailing_zeros(p.frac_part);
  return p;
}

// Scientific digits of |v| in unique mode with at most kPrecision digits after the mantissa's
// point, trailing zeros trimmed: the first pass that sizes the columns.
template <class T>
Decimal scientific_digits(T a) {
  Decimal d = shortest_decimal(a);
  if (d.frac_digits() <= kPrecision) return d;
  d = rounded_decimal(static_cast<double>(a), kPrecision);
  trim_trailing_zeros(d.digits);
  if (d.digits.empty()) d.digits = "0";
  return d;
}

std::string exponent_str(int exp, int min_digits) {
  std::string digits = absl::StrCat(exp < 0 ? -static_cast<int64_t>(exp) : exp);
  const int zeros = std::max(0, min_digits - static_cast<int>(digits.size()));
  return absl::StrCat(exp < 0 ? "-" : "+", std::string(zeros, '0'), digits);
}

// ---------------------------------------------------------------------------------------------
// Element formatters. Each is sized from a sample of the elements (all of them, or only the
// corners that a summarized array shows) and then pads every element to the common layout.

template <class T>
class FloatFormat {
 public:
  FloatFormat(const T* data, const std::vector<int64_t>& sample) {
    std::vector<T> finite;
    bool any_nonfinite = false, any_neginf = false;
    for (int64_t i : sample) {
      const T v = data[i];
      if (std::isfinite(v)) {
        finite.push_back(v);
      } else {
        any_nonfinite = true;
        any_neginf |= std::isinf(v) && v < 0;
      }
    }

    // Scientific when the nonzero magnitudes are huge, tiny, or spread out. The ratio is taken in
    // T like numpy does (it matters for float32 near the 1000 boundary); the comparisons in double.
    T max_abs = 0, min_abs = std::numeric_limits<T>::infinity();
    bool any_nonzero = false;
    for (T v : finite) {
      if (v == 0) continue;
      any_nonzero = true;
      max_abs = std::max(max_abs, std::abs(v));
      min_abs = std::min(min_abs, std::abs(v));
    }
    if (any_nonzero) {
      const T ratio = max_abs / min_abs;
      exp_format_ = static_cast<double>(max_abs) >= 1e8 || static_cast<double>(min_abs) < 1e-4 ||
                    static_cast<double>(ratio) > 1000.0;
    }

    if (finite.empty()) {
      pad_left_ = pad_right_ = 0;
    } else if (exp_format_) {
      for (T v : finite) {
        const Decimal d = scientific_digits(std::abs(v));
        precision_ = std::max(precision_, d.frac_digits());
        exp_size_ = std::max(exp_size_, static_cast<int>(exponent_str(d.exp, 2).size()) - 1);
        pad_left_ = std::max(pad_left_, std::signbit(v) ? 2 : 1);
      }
      pad_right_ = exp_size_ + 2 + precision_;
    } else {
      for (T v : finite) {
        const Positional p = positional_digits(std::abs(v), /*to_units=*/false);
        const int int_width = static_cast<int>(p.int_part.size()) + (std::signbit(v) ? 1 : 0);
        pad_left_ = std::max(pad_left_, int_width);
        pad_right_ = std::max(pad_right_, static_cast<int>(p.frac_part.size()));
      }
    }

    // nan and inf are right-aligned over the whole column; widen it if they do not fit.
    if (any_nonfinite) {
      const int offset = pad_right_ + 1;
      pad_left_ = std::max({pad_left_, 3 - offset, 3 + (any_neginf ? 1 : 0) - offset});
    }
  }

  std::string operator()(T v) const {
    const size_t width = pad_left_ + pad_right_ + 1;
    if (std::isnan(v)) return pad_left("nan", width);
    if (std::isinf(v)) return pad_left(v < 0 ? "-inf" : "inf", width);
    const absl::string_view sign = std::signbit(v) ? "-" : "";
    const T a = std::abs(v);
    if (exp_format_) {
      // Every element gets precision_ mantissa digits: the shortest ones where they have exactly
      // that many, else the exact value rounded there (numpy's min_digits goes past the shortest).
      Decimal d = shortest_decimal(a);
      if (d.frac_digits() != precision_) d = rounded_decimal(static_cast<double>(a), precision_);
      return absl::StrCat(pad_left(absl::StrCat(sign, d.digits.substr(0, 1)), pad_left_), ".",
                          d.digits.substr(1), "e", exponent_str(d.exp, exp_size_));
    }
    const Positional p = positional_digits(a, /*to_units=*/true);
    return absl::StrCat(pad_left(absl::StrCat(sign, p.int_part), pad_left_), ".",
                        pad_right(p.frac_part, pad_right_));
  }

 private:
  bool exp_format_ = false;
  int pad_left_ = 0;   // characters before the point, sign included
  int pad_right_ = 0;  // characters after the point (in scientific, mantissa digits and exponent)
  int precision_ = 0;  // scientific: digits after the mantissa's point
  int exp_size_ = 0;   // scientific: exponent digits
};

template <class T>
class IntegerFormat {
 public:
  IntegerFormat(const T* data, const std::vector<int64_t>& sample) {
    if (sample.empty()) return;
    T lo = data[sample[0]], hi = lo;
    for (int64_t i : sample) {
      lo = std::min(lo, data[i]);
      hi = std::max(hi, data[i]);
    }
    width_ = std::max(absl::StrCat(lo).size(), absl::StrCat(hi).size());
  }
  std::string operator()(T v) const { return pad_left(absl::StrCat(v), width_); }

 private:
  size_t width_ = 0;
};

// The flat offsets of the elements numpy sizes its columns from: all of them, or when summarizing
// only the first and last kEdgeItems along every long axis.
void collect_sample(const Shape& shape, const std::vector<int64_t>& strides, bool summarize,
                    size_t axis, int64_t offset, std::vector<int64_t>& out) {
  if (axis == shape.size()) {
    out.push_back(offset);
    return;
  }
  const int64_t n = shape[axis];
  const bool cut = summarize && n > 2 * kEdgeItems;
  for (int64_t i = 0; i < n; ++i) {
    if (cut && i == kEdgeItems) i = n - kEdgeItems;
    collect_sample(shape, strides, summarize, axis + 1, offset + i * strides[axis], out);
  }
}

template <class T>
std::string format_float_scalar(T v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  const absl::string_view sign = std::signbit(v) ? "-" : "";
  const T a = std::abs(v);
  const Decimal d = shortest_decimal(a);
  // A numpy float scalar's str(): positional between 1e-4 and 1e16 (compared in long double, as
  // numpy does), keeping one zero after the point; otherwise scientific without trailing zeros.
  const long double la = a;
  if (a == 0 || (la >= 1e-4L && la < 1e16L)) {
    const Positional p = to_positional(d);
    return absl::StrCat(sign, p.int_part, ".", p.frac_part.empty() ? "0" : p.frac_part);
  }
  return absl::StrCat(sign, d.digits.substr(0, 1), d.digits.size() > 1 ? "." : "",
                      d.digits.substr(1), "e", exponent_str(d.exp, 2));
}

std::string format_scalar(DType dtype, const void* data) {
  switch (dtype) {
    case DType::f32:
      return format_float_scalar(*static_cast<const float*>(data));
    case DType::f64:
      return format_float_scalar(*static_cast<const double*>(data));
    case DType::i32:
      return absl::StrCat(*static_cast<const int32_t*>(data));
    case DType::u32:
      return absl::StrCat(*static_cast<const uint32_t*>(data));
    case DType::bool_:
      return *static_cast<const uint8_t*>(data) ? "True" : "False";
  }
  return "?";
}

ElementFormatter make_formatter(DType dtype, const void* data, const std::vector<int64_t>& sample) {
  switch (dtype) {
    case DType::f32: {
      const auto* p = static_cast<const float*>(data);
      return [p, f = FloatFormat<float>(p, sample)](int64_t i) { return f(p[i]); };
    }
    case DType::f64: {
      const auto* p = static_cast<const double*>(data);
      return [p, f = FloatFormat<double>(p, sample)](int64_t i) { return f(p[i]); };
    }
    case DType::i32: {
      const auto* p = static_cast<const int32_t*>(data);
      return [p, f = IntegerFormat<int32_t>(p, sample)](int64_t i) { return f(p[i]); };
    }
    case DType::u32: {
      const auto* p = static_cast<const uint32_t*>(data);
      return [p, f = IntegerFormat<uint32_t>(p, sample)](int64_t i) { return f(p[i]); };
    }
    case DType::bool_: {
      // In arrays True gets a leading space so that it lines up with False.
      const auto* p = static_cast<const uint8_t*>(data);
      return [p](int64_t i) -> std::string { return p[i] ? " True" : "False"; };
    }
  }
  return [](int64_t) { return std::string("?"); };
}

// ---------------------------------------------------------------------------------------------
// Layout: nested brackets, rows wrapped at the line width, blank lines between blocks of rank 3
// and up, and "..." in place of the middle of long axes when summarizing.

class Printer {
 public:
  Printer(const Shape& shape, std::vector<int64_t> strides, bool summarize, ElementFormatter fmt)
      : shape_(shape), strides_(std::move(strides)), summarize_(summarize), fmt_(std::move(fmt)) {}

  // The block at `axis` starting at `offset`; `hanging` is the indent of its continuation lines,
  // `width` the columns left for it (each nesting level gives one up to its closing bracket).
  std::string block(size_t axis, int64_t offset, const std::string& hanging, int64_t width) const {
    if (axis == shape_.size()) return fmt_(offset);
    const std::string next_hanging = absl::StrCat(hanging, " ");
    const int64_t next_width = width - 1;
    const int64_t n = shape_[axis];
    const bool show_summary = summarize_ && n > 2 * kEdgeItems;
    const int64_t leading = show_summary ? kEdgeItems : 0;
    const int64_t trailing = show_summary ? kEdgeItems : n;
    auto child = [&](int64_t i) {
      return block(axis + 1, offset + i * strides_[axis], next_hanging, next_width);
    };

    std::string s;
    if (axis + 1 == shape_.size()) {
      // Innermost axis: elements separated by spaces, wrapped so that the row and its ']' fit.
      const int64_t elem_width = width - 1;
      std::string line = hanging;
      auto extend = [&](absl::string_view word) {
        // Wrapping a line that holds nothing yet would not help.
        if (static_cast<int64_t>(line.size() + word.size()) > elem_width &&
            line.size() > hanging.size()) {
          absl::StrAppend(&s, absl::StripTrailingAsciiWhitespace(line), "\n");
          line = hanging;
        }
        absl::StrAppend(&line, word);
      };
      for (int64_t i = 0; i < leading; ++i) {
        extend(child(i));
        line += ' ';
      }
      if (show_summary) {
        extend("...");
        line += ' ';
      }
      for (int64_t i = n - trailing; i < n - 1; ++i) {
        extend(child(i));
        line += ' ';
      }
      extend(child(n - 1));
      s += line;
    } else {
      // Outer axes: one sub-block per line, with (rank - 1) newlines between them.
      const std::string line_sep(shape_.size() - axis - 1, '\n');
      for (int64_t i = 0; i < leading; ++i) absl::StrAppend(&s, hanging, child(i), line_sep);
      if (show_summary) absl::StrAppend(&s, hanging, "...", line_sep);
      for (int64_t i = n - trailing; i < n - 1; ++i)
        absl::StrAppend(&s, hanging, child(i), line_sep);
      absl::StrAppend(&s, hanging, child(n - 1));
    }
    return absl::StrCat("[", absl::string_view(s).substr(hanging.size()), "]");
  }

 private:
  const Shape& shape_;
  std::vector<int64_t> strides_;
  bool summarize_;
  ElementFormatter fmt_;
};

}  // namespace

std::string format_array(DType dtype, const Shape& shape, const void* data) {
  if (shape.empty()) return format_scalar(dtype, data);
  const int64_t size = shape_size(shape);
  if (size == 0) return "[]";
  const bool summarize = size > kThreshold;

  std::vector<int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  std::vector<int64_t> sample;
  collect_sample(shape, strides, summarize, 0, 0, sample);

  const Printer printer(shape, std::move(strides), summarize, make_formatter(dtype, data, sample));
  return printer.block(0, 0, " ", kLineWidth);
}

}  // namespace tracejit::detail

// Contractions built from matmul, transpose, reshape, broadcasting and reduce_sum: dot,
// tensordot and einsum (no primitive of their own).
#include <algorithm>
#include <map>
#include <string>

#include "base/array_impl.h"
#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit {
namespace {

using detail::raise;

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

}  // namespace

Array tensordot(const Array& a, const Array& b, const std::pair<Axes, Axes>& axes) {
  detail::impl_of(a, "tensordot");
  detail::impl_of(b, "tensordot");
  const auto& [ax_a, ax_b] = axes;
  if (ax_a.size() != ax_b.size())
    raise<ShapeError>("tensordot", "needs as many axes of a as of b, got ", ax_a.size(), " and ", ax_b.size());
  auto norm = [](const Array& x, int64_t ax, const char* which) {
    const int64_t n = ax < 0 ? ax + x.ndim() : ax;
    if (n < 0 || n >= x.ndim())
      raise<IndexError>("tensordot", "axis ", ax, " of ", which, " is out of range for ",
                        type_str(x.dtype(), x.shape()));
    return n;
  };
  Axes ca, cb;
  for (size_t i = 0; i < ax_a.size(); ++i) {
    ca.push_back(norm(a, ax_a[i], "a"));
    cb.push_back(norm(b, ax_b[i], "b"));
    if (a.shape()[static_cast<size_t>(ca.back())] != b.shape()[static_cast<size_t>(cb.back())])
      raise<ShapeError>("tensordot", "contracted axes ", ax_a[i], " of ", type_str(a.dtype(), a.shape()),
                        " and ", ax_b[i], " of ", type_str(b.dtype(), b.shape()), " differ in size");
  }
  // a as [free, contracted], b as [contracted, free], one matmul between them.
  Axes pa, pb;
  Shape out;
  for (int64_t i = 0; i < a.ndim(); ++i)
    if (std::find(ca.begin(), ca.end(), i) == ca.end()) pa.push_back(i), out.push_back(a.shape()[static_cast<size_t>(i)]);
  const size_t free_a = pa.size();
  pa.insert(pa.end(), ca.begin(), ca.end());
  pb = cb;
  for (int64_t i = 0; i < b.ndim(); ++i)
    if (std::find(cb.begin(), cb.end(), i) == cb.end()) pb.push_back(i), out.push_back(b.shape()[static_cast<size_t>(i)]);
  Array ta = transpose(a, pa), tb = transpose(b, pb);
  const int64_t m = product(ta.shape(), 0, free_a), k = product(ta.shape(), free_a, ta.shape().size());
  const int64_t n = product(tb.shape(), cb.size(), tb.shape().size());
  return reshape(matmul(reshape(ta, {m, k}), reshape(tb, {k, n})), out);
}

Array tensordot(const Array& a, const Array& b, int n) {
  detail::impl_of(a, "tensordot");
  detail::impl_of(b, "tensordot");
  if (n < 0 || n > a.ndim() || n > b.ndim())
    raise<ShapeError>("tensordot", "cannot contract ", n, " axes of ", type_str(a.dtype(), a.shape()),
                      " and ", type_str(b.dtype(), b.shape()));
  Axes ax_a, ax_b;
  for (int i = 0; i < n; ++i) {
    ax_a.push_back(a.ndim() - n + i);
    ax_b.push_back(i);
  }
  return tensordot(a, b, {ax_a, ax_b});
}

Array dot(const Array& a, const Array& b) {
  detail::impl_of(a, "dot");
  detail::impl_of(b, "dot");
  if (a.ndim() == 0 || b.ndim() == 0) return a * b;
  if (a.ndim() <= 2 && b.ndim() <= 2) return matmul(a, b);
  return tensordot(a, b, {{a.ndim() - 1}, {b.ndim() == 1 ? 0 : b.ndim() - 2}});
}

namespace {

// One einsum operand: its array and one label per axis.
struct Term {
  Array x;
  std::string labels;
};

[[noreturn]] void bad_spec(std::string_view spec, const std::string& why) {
  raise<ShapeError>("einsum", "bad subscripts '", spec, "': ", why);
}

// Sums axes whose labels are in neither `keep` nor... (only `keep` is kept).
Term sum_except(Term t, const std::string& keep) {
  Axes axes;
  std::string labels;
  for (size_t i = 0; i < t.labels.size(); ++i) {
    if (keep.find(t.labels[i]) == std::string::npos) axes.push_back(static_cast<int64_t>(i));
    else labels += t.labels[i];
  }
  if (axes.empty()) return t;
  return {sum(t.x, axes), labels};
}

// A repeated label within one operand takes the diagonal: x[..i..i..] -> x[..i..].
Term take_diagonals(Term t) {
  for (size_t p = 0; p < t.labels.size(); ++p) {
    size_t q = t.labels.find(t.labels[p], p + 1);
    while (q != std::string::npos) {
      const int64_t n = t.x.shape()[p];
      Shape sp(t.labels.size(), 1), sq(t.labels.size(), 1);
      sp[p] = n;
      sq[q] = n;
      Array mask = reshape(arange(n), sp) == reshape(arange(n), sq);
      t.x = sum(where(mask, t.x, Array::scalar(t.x.dtype(), 0, t.x.weak_type())),
                {static_cast<int64_t>(q)});
      t.labels.erase(q, 1);
      q = t.labels.find(t.labels[p], p + 1);
    }
  }
  return t;
}

// The product of two terms, keeping the labels in `keep`: a matmul (tensordot) when no kept
// label is shared, else a broadcast product summed over the contracted labels.
Term contract(const Term& a0, const Term& b0, const std::string& keep) {
  std::string keep_a = keep + b0.labels, keep_b = keep + a0.labels;
  Term a = sum_except(a0, keep_a), b = sum_except(b0, keep_b);
  std::string shared, batch;
  for (char c : a.labels)
    if (b.labels.find(c) != std::string::npos) (keep.find(c) != std::string::npos ? batch : shared) += c;
  if (batch.empty()) {
    Axes ax_a, ax_b;
    for (char c : shared) {
      ax_a.push_back(static_cast<int64_t>(a.labels.find(c)));
      ax_b.push_back(static_cast<int64_t>(b.labels.find(c)));
    }
    std::string labels;
    for (char c : a.labels) if (shared.find(c) == std::string::npos) labels += c;
    for (char c : b.labels) if (shared.find(c) == std::string::npos) labels += c;
    return {tensordot(a.x, b.x, {ax_a, ax_b}), labels};
  }
  // Align both to the labels of a then b's own, broadcasting where a label is missing.
  std::string all = a.labels;
  for (char c : b.labels) if (all.find(c) == std::string::npos) all += c;
  auto align = [&](const Term& t) {
    Axes perm;
    Shape s;
    for (char c : all) {
      size_t i = t.labels.find(c);
      if (i != std::string::npos) perm.push_back(static_cast<int64_t>(i));
    }
    for (char c : all) {
      size_t i = t.labels.find(c);
      s.push_back(i == std::string::npos ? 1 : t.x.shape()[i]);
    }
    return reshape(transpose(t.x, perm), s);
  };
  return sum_except({align(a) * align(b), all}, keep);
}

}  // namespace

Array einsum(std::string_view spec, const std::vector<Array>& operands) {
  std::string lhs(spec), out;
  lhs.erase(std::remove(lhs.begin(), lhs.end(), ' '), lhs.end());
  const size_t arrow = lhs.find("->");
  const bool explicit_form = arrow != std::string::npos;
  if (explicit_form) {
    out = lhs.substr(arrow + 2);
    lhs = lhs.substr(0, arrow);
  }
  std::vector<std::string> subs;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    subs.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (const std::string& s : subs)
    for (char c : s)
      if (!std::isalpha(static_cast<unsigned char>(c)))
        bad_spec(spec, detail::cat("subscript '", std::string(1, c), "' is not a letter",
                                   c == '.' ? "; ellipses are not supported: name the batch axes "
                                              "with letters, as in 'bij,bjk->bik'"
                                            : "; label each axis with a letter a-z or A-Z"));
  if (subs.size() != operands.size())
    bad_spec(spec, detail::cat(subs.size(), " operand subscripts for ", operands.size(),
                               " operands; give one comma-separated subscript per operand"));
  std::map<char, int64_t> sizes;
  std::map<char, int> counts;
  std::vector<Term> terms;
  for (size_t k = 0; k < subs.size(); ++k) {
    const Array& x = operands[k];
    detail::impl_of(x, "einsum");
    if (static_cast<int64_t>(subs[k].size()) != x.ndim())
      bad_spec(spec, detail::cat("operand ", k, " has subscripts '", subs[k], "' for ",
                                 type_str(x.dtype(), x.shape()), " of rank ", x.ndim(),
                                 "; give one letter per axis"));
    for (size_t i = 0; i < subs[k].size(); ++i) {
      const char c = subs[k][i];
      const int64_t d = x.shape()[i];
      auto [it, fresh] = sizes.emplace(c, d);
      if (!fresh && it->second != d)
        bad_spec(spec, detail::cat("subscript '", std::string(1, c), "' has size ", it->second,
                                   " and size ", d, " (operand ", k, ", ", type_str(x.dtype(), x.shape()),
                                   "); the axes one letter labels must have one size"));
      ++counts[c];
    }
    terms.push_back(take_diagonals({x, subs[k]}));
  }
  if (!explicit_form) {
    for (const auto& [c, n] : counts) if (n == 1) out += c;  // std::map: alphabetical
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isalpha(static_cast<unsigned char>(out[i])))
      bad_spec(spec, detail::cat("output subscript '", std::string(1, out[i]), "' is not a letter",
                                 out[i] == '.' ? "; ellipses are not supported: name the batch axes "
                                                 "with letters, as in 'bij,bjk->bik'"
                                               : "; label each axis with a letter a-z or A-Z"));
    if (!sizes.contains(out[i]))
      bad_spec(spec, detail::cat("output subscript '", std::string(1, out[i]),
                                 "' appears in no operand; every output letter must label an axis of an "
                                 "operand"));
    if (out.find(out[i], i + 1) != std::string::npos)
      bad_spec(spec, detail::cat("output subscript '", std::string(1, out[i]),
                                 "' is repeated; name each output axis once"));
  }
  Term acc = terms[0];
  for (size_t k = 1; k < terms.size(); ++k) {
    std::string keep = out;
    for (size_t j = k + 1; j < terms.size(); ++j) keep += terms[j].labels;
    acc = contract(acc, terms[k], keep);
  }
  acc = sum_except(acc, out);
  Axes perm;
  for (char c : out) perm.push_back(static_cast<int64_t>(acc.labels.find(c)));
  return transpose(acc.x, perm);
}

}  // namespace tracejit

// The array plumbing of jacfwd and jacrev: identity bases over a tree's elements, and the
// reshapes that turn stacked rows or columns into blocks of out_leaf.shape + in_leaf.shape.
#include "tracejit/jacobian.h"

#include "base/errors.h"
#include "tracejit/ops.h"

namespace tracejit::detail {
namespace {

// The n x n identity of `dtype`, [n, n].
Array identity(int64_t n, DType dtype) {
  const Array i = arange(n);
  return astype(reshape(i, {n, 1}) == i, dtype);
}

Shape concat_shapes(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

}  // namespace

void check_float_leaves(std::string_view op, const Flattened& tree, std::string_view what) {
  const std::vector<KeyPath> paths = leaf_key_paths(tree.def);
  for (size_t i = 0; i < tree.leaves.size(); ++i) {
    const DType d = tree.leaves[i].dtype();
    if (is_float(d)) continue;
    const std::string path = keystr(paths[i]);
    raise<TypeError>(op, what, path.empty() ? "" : " leaf ", path, " is ",
                     type_str(d, tree.leaves[i].shape()), "; ", op,
                     " needs float ", what == "the output" ? "outputs" : "arguments",
                     " (convert with tj::astype; pass integers that only select or count "
                     "through another argument)");
  }
}

std::vector<Array> basis_leaves(std::span<const Array> leaves) {
  int64_t total = 0;
  for (const Array& l : leaves) total += l.size();
  const Array eye = identity(total, DType::f64);
  std::vector<Array> out;
  int64_t offset = 0;
  for (const Array& l : leaves) {
    const Shape shape = concat_shapes({total}, l.shape());
    out.push_back(astype(reshape(slice(eye, {0, offset}, {total, offset + l.size()}), shape), l.dtype()));
    offset += l.size();
  }
  return out;
}

JacobianBlocks jacobian_blocks(std::span<const Array> stacked, std::span<const Array> in_leaves) {
  JacobianBlocks out;
  for (const Array& cols : stacked) {
    const Shape out_shape(cols.shape().begin() + 1, cols.shape().end());
    const int64_t total = cols.shape()[0], out_size = shape_size(out_shape);
    const Array rows = reshape(cols, {total, out_size});
    std::vector<Array>& per_in = out.emplace_back();
    int64_t offset = 0;
    for (const Array& l : in_leaves) {
      // Rows of this input leaf's elements, [n, out]; transposed to [out, n].
      const Array block = transpose(slice(rows, {offset, 0}, {offset + l.size(), out_size}), {1, 0});
      per_in.push_back(reshape(block, concat_shapes(out_shape, l.shape())));
      offset += l.size();
    }
  }
  return out;
}

JacobianBlocks unflatten_rows(std::span<const Array> rows, std::span<const Array> out_leaves,
                              std::span<const Array> in_leaves) {
  JacobianBlocks out(out_leaves.size());
  for (size_t i = 0; i < in_leaves.size(); ++i) {
    const Shape& in_shape = in_leaves[i].shape();
    const int64_t total = rows[i].shape()[0], in_size = in_leaves[i].size();
    const Array flat = reshape(rows[i], {total, in_size});
    int64_t offset = 0;
    for (size_t k = 0; k < out_leaves.size(); ++k) {
      // Output leaf k's cotangents are rows [offset, offset + its size) of the basis.
      const Array block = slice(flat, {offset, 0}, {offset + out_leaves[k].size(), in_size});
      out[k].push_back(reshape(block, concat_shapes(out_leaves[k].shape(), in_shape)));
      offset += out_leaves[k].size();
    }
  }
  return out;
}

}  // namespace tracejit::detail

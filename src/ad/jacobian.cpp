// The array plumbing of jacfwd and jacrev: identity bases over a tree's elements, and the
// reshapes that turn stacked rows or columns into blocks of out.shape + leaf.shape.
#include "tracejit/jacobian.h"

#include "tracejit/ops.h"

namespace tracejit::detail {

Array identity(int64_t n, DType dtype) {
  const Array i = arange(n);
  return astype(reshape(i, {n, 1}) == i, dtype);
}

std::vector<Array> basis_leaves(std::span<const Array> leaves) {
  int64_t total = 0;
  for (const Array& l : leaves) total += l.size();
  const Array eye = identity(total, DType::f64);
  std::vector<Array> out;
  int64_t offset = 0;
  for (const Array& l : leaves) {
    Shape shape{total};
    shape.insert(shape.end(), l.shape().begin(), l.shape().end());
    out.push_back(astype(reshape(slice(eye, {0, offset}, {total, offset + l.size()}), shape), l.dtype()));
    offset += l.size();
  }
  return out;
}

std::vector<Array> jacobian_blocks(const Array& stacked, std::span<const Array> leaves) {
  const Shape out_shape(stacked.shape().begin() + 1, stacked.shape().end());
  const int64_t total = stacked.shape()[0];
  const Array rows = reshape(stacked, {total, shape_size(out_shape)});
  std::vector<Array> out;
  int64_t offset = 0;
  for (const Array& l : leaves) {
    // Rows of this leaf's elements, [n, out]; transposed to [out, n].
    const Array block = transpose(slice(rows, {offset, 0}, {offset + l.size(), shape_size(out_shape)}), {1, 0});
    Shape shape = out_shape;
    shape.insert(shape.end(), l.shape().begin(), l.shape().end());
    out.push_back(reshape(block, shape));
    offset += l.size();
  }
  return out;
}

Array unflatten_rows(const Array& rows, const Shape& out_shape, const Shape& leaf_shape) {
  Shape shape = out_shape;
  shape.insert(shape.end(), leaf_shape.begin(), leaf_shape.end());
  return reshape(rows, shape);
}

}  // namespace tracejit::detail

// tj::distributed's array operations: all_sum binds the all_sum primitive (reduced at once when
// eager, a host step when compiled); average_gradients is written with public ops around it.
#include "tracejit/distributed.h"

#include <map>

#include "base/array_impl.h"
#include "base/errors.h"
#include "trace/trace_state.h"
#include "tracejit/ops.h"

namespace tracejit::distributed {

Array all_sum(const Array& x) {
  tracejit::detail::impl_of(x, "all_sum");
  init();
  return tracejit::detail::bind1(ir::Prim::kAllSum, {x});
}

namespace detail {

std::vector<Array> average_leaves(const std::vector<Array>& leaves) {
  const int size = init().size();
  // One flat buffer per dtype (usually one), in leaf order.
  std::map<DType, std::vector<size_t>> by_dtype;
  for (size_t i = 0; i < leaves.size(); ++i) {
    tracejit::detail::impl_of(leaves[i], "average_gradients");
    if (!is_float(leaves[i].dtype()))
      tracejit::detail::raise<TypeError>(
          "average_gradients", "leaf ", i, " is ", type_str(leaves[i].dtype(), leaves[i].shape()),
          "; gradients are f32 or f64 (use all_sum for integer counts)");
    by_dtype[leaves[i].dtype()].push_back(i);
  }
  std::vector<Array> out(leaves.size());
  for (const auto& [dtype, members] : by_dtype) {
    std::vector<Array> flat;
    for (size_t i : members) flat.push_back(reshape(leaves[i], {leaves[i].size()}));
    Array total =
        all_sum(flat.size() == 1 ? flat[0] : concatenate(flat)) / static_cast<float>(size);
    int64_t at = 0;
    for (size_t i : members) {
      const int64_t n = leaves[i].size();
      out[i] = reshape(slice(total, {at}, {at + n}), leaves[i].shape());
      at += n;
    }
  }
  return out;
}

}  // namespace detail
}  // namespace tracejit::distributed

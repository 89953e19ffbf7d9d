#pragma once
// Data parallelism over MPI (API.md, "Beyond one machine"), as jax.distributed and
// mx.distributed: the same program runs on every process of an `mpirun` job, each on its share
// of the data, and the gradients are summed or averaged across the processes.
//
//   auto group = tj::distributed::init();            // rank() in [0, size())
//   auto step = tj::jit([&](const Params& p, const Array& x, const Array& y) {
//     Params g = tj::distributed::average_gradients(tj::grad(loss)(p, x, y));
//     return tj::tree_map([&](const Array& v, const Array& d) { return v - d * lr; }, p, g);
//   });
//
// Without `mpirun` (or when tracejit was built without MPI) init() gives a group of size 1 and
// every collective is the identity, so one binary runs both ways.
//
// Failures: every rank must make the same collective calls in the same order with the same
// shapes and dtypes. A mismatch is detected before the reduction (the ranks first exchange the
// operand's dtype and shape, a few dozen bytes) and throws tj::ShapeError on every rank, naming
// both shapes. An exception that escapes main() on any rank prints its message with the rank
// and calls MPI_Abort, which ends the whole job instead of leaving the other ranks waiting in a
// collective forever.
#include <vector>

#include "tracejit/array.h"
#include "tracejit/pytree.h"

namespace tracejit::distributed {

/// This process's place in the job.
class Group {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  friend Group init();
  int rank_ = 0, size_ = 1;
};

/// Joins the MPI job that `mpirun` started (MPI_Init, once per process; MPI_Finalize at exit)
/// and returns this process's group; outside mpirun a group of size 1. Calling it again returns
/// the same group.
Group init();

/// The element-wise sum of `x` over every rank of the group (MPI_Allreduce), for f32, f64, i32
/// and u32 arrays. Eager, and inside jit a step of the compiled plan run on the host between
/// kernels, in program order, never removed or merged. Not differentiable: grad or jvp through
/// it throws tj::Error (differentiate the local loss, then sum or average the gradients).
/// Calls init() if it has not been called.
Array all_sum(const Array& x);

namespace detail {
/// The leaves averaged over the group: packed into one buffer per dtype, summed with one
/// all_sum each, divided by size() and unpacked.
std::vector<Array> average_leaves(const std::vector<Array>& leaves);
}  // namespace detail

/// `tree` averaged over the ranks, leaf by leaf: all leaves packed into one reduction.
template <class Tree>
Tree average_gradients(const Tree& tree) {
  auto [leaves, def] = tracejit::tree_flatten(tree);
  return tracejit::tree_unflatten<Tree>(def, detail::average_leaves(leaves));
}

}  // namespace tracejit::distributed

#pragma once
// The batching rule table (batch_rules.cpp, batch_control.cpp) and the batching replay
// (vmap.cpp) that applies it per equation. A batched value carries the mapped axis first; an
// unbatched value is the same for every lane and is broadcast only where a rule needs it.
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "ir/ir.h"
#include "tracejit/array.h"
#include "tracejit/detail/trace.h"

namespace tracejit::batch {

/// Which values of a group are batched (std::vector<bool> has no contiguous storage to span).
using Flags = absl::InlinedVector<bool, 8>;

/// What a batching rule sees of one equation: its operands (batched ones with the batch axis
/// first), which are batched (at least one), and the batch size.
struct BatchArgs {
  ir::Prim prim;
  const ir::Params& params;
  std::span<const Array> in;
  const Flags& batched;
  int64_t size;

  /// Operand k with the batch axis first, broadcast when it is unbatched.
  Array moved(size_t k) const;
};

/// A rule returns the equation's results and says which are batched.
using BatchRule = std::vector<Array> (*)(const BatchArgs& a, Flags& out_batched);

/// The rule of `p`, written with public ops and bind, so it is itself traceable.
BatchRule batch_rule(ir::Prim p);

/// The rules of the higher-order primitives (batch_control.cpp).
std::vector<Array> call_batch(const BatchArgs& a, Flags& out_batched);
std::vector<Array> cond_batch(const BatchArgs& a, Flags& out_batched);
std::vector<Array> while_batch(const BatchArgs& a, Flags& out_batched);
std::vector<Array> scan_batch(const BatchArgs& a, Flags& out_batched);
std::vector<Array> custom_vjp_batch(const BatchArgs& a, Flags& out_batched);

/// Replays `fn` on `inputs` (batched where `batched` says, with `size` lanes) and `captured`
/// (unbatched) through bind; returns the outputs and which are batched.
std::pair<std::vector<Array>, Flags> batch_replay(const ir::Function& fn,
                                                              std::span<const Array> inputs,
                                                              const Flags& batched,
                                                              std::span<const Array> captured,
                                                              int64_t size);

/// A conservative answer to "which outputs of fn are batched": those that depend on a batched
/// input. Loop rules use it to find their carries' fixed point before tracing a body.
Flags depends_on_batched(const ir::Function& fn, const Flags& batched);

/// `a` (unbatched) broadcast to `size` lanes along a new leading axis.
Array broadcast_lanes(const Array& a, int64_t size);
/// `a` with axis `from` moved to position `to` (the others keep their order).
Array move_axis(const Array& a, int64_t from, int64_t to);

}  // namespace tracejit::batch

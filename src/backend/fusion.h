#pragma once
// Fusion: partitions an optimized ir::Function into loop kernels, and decides every loop's shape
// (flat or nested, which range splits across threads), so that the LLVM lowering and the runtime
// read one plan. No LLVM here.
//
// Every value is either inline (elementwise ops, layout ops, iota, size-1 constants: recomputed
// at the index where a consumer needs it) or has a buffer. Buffers hold the function's inputs,
// its constants of more than one element, its outputs, the results of reductions, matmuls and
// concatenations, matmul operands, and values that would be too costly to recompute under an
// expanding broadcast. Kernels:
//   elementwise  one loop over a shape, writing one or more same-shape roots
//   reduce       one pass over an input shape, for one or more reductions over the same axes
//                (float sums may be reassociated, so their order is unspecified, as in XLA);
//                a large one that would run on one thread is cut into parts that threads
//                reduce apart, then combined in part order (Kernel::parts)
//   matmul       [m,k] x [k,n], i-k-j order, k summed in sequence (as the eager reference)
//   concatenate  one loop nest per operand, each writing its slab
//   region       a control-flow equation (cond, while, scan): no code of its own; the runtime
//                runs its sub-plans (one per region, planned like any function) as a loop or a
//                branch, with the loop's carries in buffers allocated once per call
//   host         an effect with a result (all_sum): no code of its own; the runtime performs
//                it on the host between kernels, from its operand's buffer into its result's,
//                and kernels reading the result come after it
//
// So a plan is a tree: kernels, host steps, and region steps whose sub-plans hold the same.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/ir.h"

namespace tracejit::backend {

/// Where a value lives while the program runs.
enum class Storage : uint8_t {
  kUnused,    // no output depends on it
  kInput,     // a function input: the caller's buffer
  kConstant,  // a constant of more than one element: the constant's buffer
  kLiteral,   // a constant of one element: an LLVM constant in the code
  kInline,    // recomputed by each consumer at the index it needs
  kComputed,  // an elementwise or layout result stored in a buffer (an output, a matmul operand,
              // or too costly to recompute): consumers in its own kernel recompute it, others load
  kResult,    // a reduction, matmul, concatenation or control-flow result: always loaded
};

enum class KernelKind : uint8_t { kElementwise, kReduce, kMatmul, kConcatenate, kRegion, kHost };

// A kernel call runs on several threads when its work (Kernel::work units, about 0.02-0.03 ns
// each once vectorized) reaches kParallelMinWork: about 10 microseconds, against a few to wake
// a worker.
inline constexpr int64_t kParallelMinWork = int64_t{1} << 19;

// A reduction of at least kParallelMinWork work whose range would not split (a flat one to fewer
// than kMaxReduceParts outputs, a row-major one over dimension 0) is cut into parts of at least
// kMinPartWork each, at most kMaxReduceParts: a number fixed by its shape, so that its result
// does not depend on how many threads run it. The partial results take at most
// 1/kMinPartialRatio of the input's elements.
inline constexpr int64_t kMaxReduceParts = 64;
inline constexpr int64_t kMinPartWork = int64_t{1} << 15;
inline constexpr int64_t kMinPartialRatio = 64;

struct FusionPlan;

/// How a kernel's loops run over [begin, end) of its outermost range; see Kernel.
enum class LoopScheme : uint8_t {
  kFlat,      // one loop over the row-major index of `domain` (elementwise), or over the kept
              // elements with an inner flat loop over the reduced ones (reduce, axes a suffix)
  kNest,      // a loop per dimension of `domain` larger than 1; the outermost is the range
  kSuffix,    // reduce: kept dimensions outside (the range), reduced ones inside, accumulating
              // in registers
  kRowMajor,  // reduce: the input in row-major order, accumulating into the output buffer
};

struct Kernel {
  KernelKind kind = KernelKind::kElementwise;
  LoopScheme scheme = LoopScheme::kNest;
  std::vector<ir::VarId> roots;  // the values it stores, one buffer each
  std::vector<int> eqns;         // the equations it evaluates, in program order (for printing)
  ir::Type domain;               // the type iterated: roots' (elementwise, concatenate, matmul
                                 // output) or the reduced input's
  std::vector<int64_t> axes;     // reduce: the reduced axes, sorted
  // The runtime calls kernel(buffers, begin, end) over [0, trip_count); when `splittable`, it may
  // cut that range into chunks on several threads. `work` estimates elements per range step.
  int64_t trip_count = 1;
  bool splittable = true;
  int64_t work = 1;
  // The buffers it reads, then writes (slot numbers), for the lowering's noalias arguments.
  std::vector<int> reads, writes;
  // A split reduction (parts > 0): each range step reduces one part of the elements into
  // partial results, which a second function combines in part order into the outputs. kFlat:
  // the range is outputs x parts, each step one slice of one output's elements; kRowMajor: the
  // range is the parts, each a slice of dimension 0 accumulated into a copy of all outputs.
  // Per root: the slot of its partial results, [parts, outputs] in the type they accumulate
  // in (kFlat: accumulator_dtype; kRowMajor: the output's), and that type; `writes` holds the
  // roots' slots, then these.
  int64_t parts = 0;
  std::vector<std::pair<int, ir::Type>> partials;
  // kRegion: the control-flow equation, and the plan of each of its regions. kHost: the effect.
  int eqn = -1;
  std::vector<std::shared_ptr<const FusionPlan>> regions;
  // kRegion, scan or while: the whole loop is one compiled function (a driver that sets the body's
  // buffers and calls its kernels each step) because the body is only small serial kernels,
  // or only flat elementwise kernels over one range that every carry fills (`chunked`): then
  // each thread runs every step over its own chunk of that range, and the threads are started
  // once per loop, not once per step.
  bool driven = false;
  bool chunked = false;
  /// False when the runtime skips the kernel: a region step, or nothing to store.
  bool runs = false;
  /// True when the runtime may split the kernel's range across threads.
  bool parallel() const { return splittable && trip_count * work >= kParallelMinWork; }
};

/// An effect without results (debug_print) the runtime performs on the host between kernels.
/// Its operands all have buffers; it runs after the kernels computing them and after the
/// previous effect (host step, kHost kernel or region step holding one), so effects keep
/// program order.
struct HostStep {
  int eqn = -1;    // the equation
  int after = -1;  // the kernel it follows; -1: before every kernel
};

struct FusionPlan {
  std::vector<Storage> storage;  // per VarId
  std::vector<int> slot;         // per VarId: index into the run's buffer array, or -1
  std::vector<ir::VarId> slots;  // per slot: its VarId (partial results: their reduction's)
  std::vector<int> producer;     // per VarId: the equation defining it, or -1
  std::vector<int> kernel_of;    // per VarId with a buffer computed by a kernel, else -1
  std::vector<Kernel> kernels;   // in execution order
  std::vector<HostStep> host_steps;  // in program order
  // Per output of the function: the slot a caller (a loop running this plan as its body) may
  // point at its own buffer before the plan runs, so that the output is written there directly;
  // -1 when the output must be copied out afterwards (an input, a constant, a repeated or empty
  // output, or a region step's result).
  std::vector<int> redirect;
};

struct FusionOptions {
  /// Store every layout result that moves elements (transposes, slices, expanding broadcasts,
  /// reshapes), so that no kernel recomputes a value at more than one index pattern. The
  /// backend retries with this when a kernel's inline code grows too large.
  bool materialize_layout = false;
};

/// Partitions `fn` (no captures) into kernels.
FusionPlan plan_fusion(const ir::Function& fn, const FusionOptions& options = {});

/// The fused program: `fn`'s header, its equations grouped by kernel (an equation recomputed by
/// two kernels appears in both), and its outputs. Variables are named as ir::to_string names them.
std::string fused_ir_str(const ir::Function& fn, const FusionPlan& plan);

/// How the fused program names plan.kernels[k]: "kernel 0 (reduce, 2 outputs, over f32[128,1])",
/// "region 1 (scan, one compiled loop)".
std::string kernel_title(const ir::Function& fn, const FusionPlan& plan, size_t k);

/// The fused program as a Graphviz digraph (ir/dot.h): a cluster per kernel holding the
/// equations it evaluates (each drawn once, in the first kernel that does), host steps as notes
/// between them, region steps as clusters nesting their regions' own plans.
std::string fused_dot(const ir::Function& fn, const FusionPlan& plan);

/// The type a reduction accumulates in: an f32 sum in f64 (as the eager reference: 16M values
/// then stay within 1e-6 of the exact sum, where f32 partials drift by 0.3%), else its own.
DType accumulator_dtype(ir::Prim prim, DType dtype);

/// "elementwise", "reduce", "matmul", "concatenate", "region", "host".
const char* kernel_kind_name(KernelKind kind);

}  // namespace tracejit::backend

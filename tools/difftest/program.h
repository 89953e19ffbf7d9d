#pragma once
// A generated program: a small DAG of public tracejit operations over typed values, with the
// static facts the generator tracks for every value (type, value range, whether compiled code
// must reproduce it bit for bit, whether it moves when finite differences perturb the inputs).
// The same description is run eagerly, under jit, under grad (evaluator.h), shrunk (shrink.h)
// and printed as a C++ listing.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tracejit/tracejit.h"

namespace difftest {

namespace tj = tracejit;
using tj::Array;
using tj::DType;
using tj::Shape;

/// The public operations a program is built from. Binary operations may take one operand as
/// a C++ scalar (Node::scalar), which exercises JAX's weak typing.
enum class Op : uint8_t {
  // Sources.
  kInput,
  kConst,
  kArange,
  kFull,
  // Elementwise unary.
  kNeg,
  kExp,
  kLog,
  kLog1p,
  kSin,
  kCos,
  kTanh,
  kSqrt,
  kAbs,
  kSign,
  kSquare,
  kStopGradient,
  kFloor,  // tj::floor, tj::ceil, tj::round (half to even): the identity on integers
  kCeil,
  kRound,
  // Elementwise binary, NumPy broadcasting.
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMaximum,
  kMinimum,
  kAnd,
  kOr,
  kXor,
  kShl,
  kShr,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kWhere,
  kClip,  // tj::clip(a, lo, hi): args {a, lo, hi}, or {a} with C++ scalars scalar and scalar_hi
  // Reductions over Node::axes (all axes when Node::all_axes).
  kSum,
  kMean,
  kMax,
  kArgmax,  // over axes[0]; all_axes: of the flattened array
  kArgmin,
  // Layout.
  kReshape,
  kBroadcastTo,
  kTranspose,
  kSlice,
  kIndex,
  kConcatenate,
  kStack,  // along Node::index
  // Indexing: take (args {a, indices}, axis Node::index), dynamic_slice (args {a, starts...},
  // sizes Node::shape), dynamic_update_slice (args {a, update, starts...}), and the x.at(i)
  // updates (args {a, i} or {a} with the C++ int Node::index, then the update or the C++ scalar
  // Node::scalar).
  kTake,
  kDynamicSlice,
  kDynamicUpdateSlice,
  kAtSet,
  kAtAdd,
  kAtMultiply,
  kAtMin,
  kAtMax,
  // Contractions: matmul; dot; tensordot over Node::index axes; einsum with the spec
  // kEinsumSpecs[Node::index].
  kMatmul,
  kDot,
  kTensordot,
  kEinsum,
  // Types.
  kAsType,
  kBitcast,
  // tj::random, from a u32[2] key operand.
  kRandomBits,
  kUniform,
  kNormal,
  kSplit,
  kFoldIn,
  // Structured control flow (tj::cond, tj::while_loop, tj::fori_loop, tj::scan). The node's
  // bodies are sub-programs (Node::bodies); it has several results (Node::results): the node
  // itself is result 0, a kResult node (Node::index) picks each of the others.
  kCond,
  kWhile,
  kFori,
  kScan,
  kResult,
};
const char* op_name(Op op);
bool is_binary(Op op);   // kAdd .. kGe: two operands, or one and a scalar
bool is_compare(Op op);  // kEq .. kGe
bool is_control(Op op);  // kCond .. kScan: nodes with bodies

/// Values have at most this many elements: large enough for kernels split across threads,
/// small enough that eager evaluation and error bounds stay quick.
inline constexpr int64_t kMaxElements = int64_t{1} << 18;

/// A closed range of real values; bool values are [0, 1].
struct Interval {
  double lo = 0, hi = 0;
  bool contains(double x) const { return lo <= x && x <= hi; }
  double max_abs() const;
  bool operator==(const Interval&) const = default;
};

/// Every value of dtype `d` (floats: everything, infinities included).
Interval full_range(DType d);
/// 0 for bool, 1 for integers, 2 for floats: operands of one operation share a kind.
int dtype_kind(DType d);

/// What the generator knows statically about a value.
struct Facts {
  DType dtype = DType::f32;
  Shape shape;
  bool weak = false;     // JAX's weak type (a C++ scalar, or computed from weak values only)
  Interval range;        // every element lies in it, for every input the program may be run on
  bool exact = true;     // compiled code must give the eager value bit for bit (see rules.cpp)
  bool varies = false;   // depends on a differentiated input (perturbed by finite differences)
  bool special = false;  // may hold NaN, infinities (range is then everything), -0.0, subnormals
  bool operator==(const Facts&) const = default;
};

/// Where an input leaf sits in the arguments, or an output leaf in the result:
/// arg 0 is std::tuple<std::vector<Array>, std::map<std::string, Array>> (the differentiated,
/// float leaves), arg 1 is std::vector<Array>; the result is
/// std::pair<std::vector<Array>, std::map<std::string, Array>>. An empty key means the vector.
struct Slot {
  int arg = 0;
  std::string key;
};
/// Inputs of a body (a sub-program of a control-flow node) read Slot::arg kParam or kCapture,
/// and Node::index: the body's k-th parameter (see Node::bodies), or the k-th captured value of
/// the enclosing program (the control-flow node's operand args[operands + k]).
inline constexpr int kParam = 2;
inline constexpr int kCapture = 3;

struct Program;

struct Node {
  Op op = Op::kInput;
  std::vector<int> args;  // earlier nodes
  // Parameters; each op reads the ones it needs.
  std::optional<double> scalar;  // binary ops: the second operand is this C++ scalar...
  bool scalar_first = false;     // ...or the first
  double scalar_hi = 0;          // kClip with scalar bounds: hi (scalar is lo)
  bool static_index = false;     // kAt*: the row is the C++ int Node::index
  std::vector<int64_t> axes;     // reductions, transpose permutation, slice starts
  std::vector<int64_t> limits;   // slice limits
  bool all_axes = false;         // reductions without axes
  Shape shape;                   // reshape, broadcast_to, full
  int64_t index = 0;             // kIndex, kSplit: the row; kConcatenate: the axis;
                                 // kArange: the count; kUniform: the bounds (kUniformBounds)
  DType dtype = DType::f32;      // kAsType, kBitcast, kArange, kFull
  Array value;                   // kInput and kConst: the concrete value; kFull: a 0-d value
  Slot slot;                     // kInput: where the leaf sits
  Facts facts;

  // Control flow. args = [operands..., captured values...]; bodies read the captured values
  // through their kCapture inputs. Operands and body parameters, by op:
  //   kCond  args [pred, ops...]; bodies {false_fn, true_fn}, each ops -> results
  //   kWhile args [i0, n, init...]; bodies {cond_fn, body_fn} over the carry (i, init...):
  //          cond_fn gives 0 or 1 bool[] conjoined with i < n; body_fn gives the new init
  //          leaves (i + 1 is added); results (i, carry...); WhileOptions{max_iterations}
  //   kFori  args [init...]; lower, upper: the static bounds; body (i, carry...) -> carry
  //   kScan  args [init (carries of them)..., xs...]; lower: the length when there are no
  //          xs; body (carry..., x slices...) -> (carry..., y slices...); results (carry...,
  //          ys...)
  std::vector<Program> bodies;
  std::vector<Facts> results;  // every result; facts is results[0]
  std::vector<Facts> carry;    // the loop invariant the generator declared, per init leaf
  int operands = 0;            // args[0, operands) are operands, the rest captured values
  int carries = 0;             // kScan: how many operands are carries
  int64_t lower = 0, upper = 0;
  int64_t max_iterations = -1;
  bool reverse = false;
  int unroll = 1;
};

/// kUniform's [minval, maxval), by Node::index.
inline constexpr double kUniformBounds[][2] = {{0, 1}, {-2, 2}, {0.5, 4}};
/// The einsum specs kEinsum draws from: matmul-like, batched, trace, transpose, outer, sums,
/// implicit forms and three operands.
/// `in_order`: tracejit contracts it with matmuls only, which sum each element's products in
/// order (compiled code reproduces them bit for bit).
struct EinsumSpec {
  const char* spec;
  bool in_order;
};
inline constexpr EinsumSpec kEinsumSpecs[] = {
    {"ij,jk->ik", true}, {"ij,jk", true},     {"bij,bjk->bik", false}, {"ii->", false},
    {"ii->i", false},    {"ij->ji", true},    {"i,j->ij", true},       {"ij->", false},
    {"ij,ij->i", false}, {"i,i", true},       {"ij,jk,kl->il", true},  {"ijk->kij", true},
    {"ij,j->i", true}};
/// The operands' subscripts of an einsum spec ("ij,jk->ik": {"ij", "jk"}).
std::vector<std::string> einsum_subscripts(const std::string& spec);
/// kSplit splits a key into this many.
inline constexpr int kSplitCount = 3;

struct Program {
  std::vector<Node> nodes;
  std::vector<int> outputs;  // node indices, in the order of out_slots
  std::vector<Slot> out_slots;
  bool smooth = false;             // every differentiated path is smooth: finite differences apply
  bool threefry_original = false;  // run under set_threefry_partitionable(false)
  uint64_t id = 0;                 // the program's number in the run, for messages

  /// Number of operations (nodes that are not inputs), those in bodies included.
  int num_ops() const;
  /// A C++-like listing: inputs with their ranges and values (abridged), one line per node.
  std::string listing() const;
};

/// The rules of rules.cpp: the facts of `n` applied to its operands' facts, or nullopt when
/// the operation does not apply (types, shapes, a value range leaving the op's domain, a kink
/// on a differentiated path of a smooth program). Special operands (NaN, infinities) are
/// accepted by every well-typed operation. Used by the generator and the shrinker.
std::optional<Facts> infer(const Program& p, const Node& n);

/// A control-flow node's rules: refreshes the facts of n's bodies (their parameters from n's
/// operands, the loop carry taken to a fixpoint: a range, exactness, weak type that every
/// iteration keeps; their captured inputs from the values captured), then n.results and
/// n.facts. False when n no longer applies. infer() of such a node runs it on a copy.
bool infer_control(const Program& p, Node& n);

/// Loops run at most this many steps (the rules refuse larger trip counts).
inline constexpr int64_t kMaxTrips = 16;

/// Rechecks every node of `p` with infer and refreshes its facts; false if any no longer holds.
bool recheck(Program& p);

/// Removes nodes that no output depends on (inputs included) and renumbers the rest; in
/// bodies too, where captured values no body reads are dropped from the operands.
void prune(Program& p);

/// Calls f on every node of p and of its bodies, recursively.
void for_each_node(const Program& p, const std::function<void(const Node&)>& f);

}  // namespace difftest

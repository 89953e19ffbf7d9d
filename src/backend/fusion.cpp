// Fusion: storage decisions, kernel formation (with multi-output merging), loop schemes, and the
// fused program's printed form.
#include "backend/fusion.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/array_impl.h"

namespace tracejit::backend {
namespace {

using ir::Eqn;
using ir::Prim;
using ir::VarId;

// An inline value consumed by a broadcast that at least doubles its size is stored instead of
// recomputed when its expression costs more than this (units: one add; see op_cost).
constexpr int64_t kMaxRecomputeCost = 4;
constexpr int64_t kCostCap = int64_t{1} << 30;
// Inline equations one kernel may evaluate. LLVM's optimizer is superlinear in the size of one
// loop body (a 100,000-op chain fused into one kernel took 34 s, 98% of it there), and the
// lowering and this planner walk an inline expression recursively, one level per operation; so
// expressions are cut into segments of this many equations (see cut_long_expressions), and a
// kernel takes no more roots once their expressions hold about this many.
constexpr int64_t kMaxFusedEqns = 512;
// Buffers one kernel reads or stores. Each is a noalias argument, and LLVM's scoped alias
// analysis compares scope lists that long at every memory access: a kernel of 512 equations over
// 257 buffers (a long chain's reverse sweep) took seconds to optimize.
constexpr size_t kMaxKernelBuffers = 64;

// Inline values are recomputed by their consumers; the others are a kernel's (or a region
// step's) stored result.
bool is_inline_prim(Prim p) {
  switch (p) {
    case Prim::kNeg: case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin:
    case Prim::kCos: case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign:
    case Prim::kStopGradient: case Prim::kConvert: case Prim::kBitcast: case Prim::kAdd:
    case Prim::kMul: case Prim::kDiv: case Prim::kPow: case Prim::kMax: case Prim::kMin:
    case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl: case Prim::kShr:
    case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe:
    case Prim::kSelect: case Prim::kBroadcast: case Prim::kReshape: case Prim::kTranspose:
    case Prim::kSlice: case Prim::kIota:
      return true;
    case Prim::kReduceSum: case Prim::kReduceMax: case Prim::kMatmul: case Prim::kConcatenate:
    case Prim::kDebugPrint: case Prim::kAllSum: case Prim::kCall: case Prim::kCond:
    case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
      return false;
  }
  return false;
}

// Rough cost of one evaluation, in vectorized adds: what recomputing a value under a broadcast
// repeats, and what decides whether a kernel is worth threads. exp, log, log1p and tanh are
// vectorized polynomials (for f32); sin, cos and pow are scalar libm calls.
int64_t op_cost(Prim p) {
  switch (p) {
    case Prim::kSin: case Prim::kCos: case Prim::kPow:
      return 40;
    case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kTanh:
      return 10;
    case Prim::kDiv: case Prim::kSqrt:
      return 4;
    case Prim::kBroadcast: case Prim::kReshape: case Prim::kTranspose: case Prim::kSlice:
    case Prim::kStopGradient:
      return 0;
    case Prim::kNeg: case Prim::kAbs: case Prim::kSign: case Prim::kConvert: case Prim::kBitcast:
    case Prim::kAdd: case Prim::kMul: case Prim::kMax: case Prim::kMin: case Prim::kAnd:
    case Prim::kOr: case Prim::kXor: case Prim::kShl: case Prim::kShr: case Prim::kEq:
    case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe:
    case Prim::kSelect: case Prim::kIota: case Prim::kReduceSum: case Prim::kReduceMax:
    case Prim::kMatmul: case Prim::kConcatenate:
      return 1;
    case Prim::kDebugPrint: case Prim::kAllSum: case Prim::kCall: case Prim::kCond:
    case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
      return 0;  // not part of a kernel's loop
  }
  return 1;
}

// The dimensions of `shape` larger than 1: the ones a loop nest iterates.
std::vector<int64_t> loop_dims(const Shape& shape) {
  std::vector<int64_t> dims;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) dims.push_back(static_cast<int64_t>(i));
  return dims;
}

// True when a reshape only inserts or removes dimensions of size 1.
bool reshape_keeps_dims(const Shape& from, const Shape& to) {
  Shape a, b;
  for (int64_t d : from)
    if (d != 1) a.push_back(d);
  for (int64_t d : to)
    if (d != 1) b.push_back(d);
  return a == b;
}

// True when a layout equation makes its operand's elements appear at a different index pattern.
bool moves_elements(const ir::Function& fn, const Eqn& e) {
  const Shape& in = fn.type(e.in[0]).shape;
  const Shape& out = fn.type(e.out[0]).shape;
  if (e.prim == Prim::kBroadcast) return shape_size(in) != shape_size(out);
  if (e.prim == Prim::kReshape) return !reshape_keeps_dims(in, out);
  return e.prim == Prim::kTranspose || e.prim == Prim::kSlice;
}

class Planner {
 public:
  Planner(const ir::Function& fn, const FusionOptions& options) : fn_(fn), options_(options) {
    TJ_CHECK(fn.captures.empty(), "the backend compiles functions without captures");
    const size_t n = static_cast<size_t>(fn.num_vars());
    plan_.storage.assign(n, Storage::kUnused);
    plan_.slot.assign(n, -1);
    plan_.producer.assign(n, -1);
    plan_.kernel_of.assign(n, -1);
    stamp_.assign(n, 0);
  }

  FusionPlan run() {
    assign_storage();
    form_kernels();
    place_host_steps();
    assign_slots();
    for (Kernel& k : plan_.kernels) describe(k);
    choose_redirects();
    for (Kernel& k : plan_.kernels) {
      k.chunked = chunkable(k);
      k.driven = k.chunked || drivable(k);
    }
    return std::move(plan_);
  }

 private:
  Storage& storage(VarId v) { return plan_.storage[static_cast<size_t>(v)]; }
  const Eqn& producer(VarId v) const {
    return fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(v)])];
  }
  bool has_buffer(VarId v) const {
    Storage s = plan_.storage[static_cast<size_t>(v)];
    return s == Storage::kInput || s == Storage::kConstant || s == Storage::kComputed ||
           s == Storage::kResult;
  }
  // Computed by a kernel (rather than supplied): a kernel ordering dependency.
  bool is_kernel_value(VarId v) const {
    Storage s = plan_.storage[static_cast<size_t>(v)];
    return s == Storage::kComputed || s == Storage::kResult;
  }
  int kernel_of(VarId v) const { return plan_.kernel_of[static_cast<size_t>(v)]; }

  void assign_storage() {
    for (size_t i = 0; i < fn_.eqns.size(); ++i)
      for (VarId v : fn_.eqns[i].out) plan_.producer[static_cast<size_t>(v)] = static_cast<int>(i);
    std::vector<bool> live(static_cast<size_t>(fn_.num_vars()), false);
    for (VarId v : fn_.outputs) live[static_cast<size_t>(v)] = true;
    for (size_t i = fn_.eqns.size(); i-- > 0;) {
      const Eqn& e = fn_.eqns[i];
      bool used = ir::has_effect(e) ||
                  std::any_of(e.out.begin(), e.out.end(),
                              [&](VarId v) { return live[static_cast<size_t>(v)]; });
      if (!used) continue;
      live_eqns_.push_back(static_cast<int>(i));
      for (VarId v : e.in) live[static_cast<size_t>(v)] = true;
    }
    std::reverse(live_eqns_.begin(), live_eqns_.end());

    for (VarId v : fn_.inputs) storage(v) = Storage::kInput;
    for (size_t i = 0; i < fn_.const_vars.size(); ++i) {
      VarId v = fn_.const_vars[i];
      TJ_CHECK(fn_.const_values[i] != nullptr,
               "constants of a compiled function must be concrete");
      if (!live[static_cast<size_t>(v)]) continue;
      storage(v) = fn_.type(v).size() == 1 ? Storage::kLiteral : Storage::kConstant;
    }
    for (int i : live_eqns_)
      for (VarId v : fn_.eqns[static_cast<size_t>(i)].out)
        storage(v) = is_inline_prim(fn_.eqns[static_cast<size_t>(i)].prim) ? Storage::kInline
                                                                            : Storage::kResult;
    for (VarId v : fn_.outputs)
      if (storage(v) == Storage::kInline) storage(v) = Storage::kComputed;
    for (int i : live_eqns_) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(i)];
      if (ir::has_effect(e.prim) || ir::has_regions(e.prim)) {  // read from buffers by the host
        for (VarId v : e.in)
          if (storage(v) == Storage::kInline) storage(v) = Storage::kComputed;
        continue;
      }
      if (e.prim == Prim::kMatmul)
        for (VarId v : e.in)
          if (storage(v) == Storage::kInline) storage(v) = Storage::kComputed;
      if (options_.materialize_layout && storage(e.out[0]) == Storage::kInline &&
          moves_elements(fn_, e))
        storage(e.out[0]) = Storage::kComputed;
    }

    // Store costly values rather than recompute them for every element of an expanding broadcast.
    std::vector<int64_t> cost(static_cast<size_t>(fn_.num_vars()), 0);
    for (int i : live_eqns_) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(i)];
      if (e.prim == Prim::kBroadcast) {
        VarId x = e.in[0];
        int64_t in_size = fn_.type(x).size(), out_size = fn_.type(e.out[0]).size();
        if (storage(x) == Storage::kInline && in_size > 1 && out_size >= 2 * in_size &&
            cost[static_cast<size_t>(x)] > kMaxRecomputeCost) {
          storage(x) = Storage::kComputed;
        }
      }
      int64_t c = op_cost(e.prim);
      for (VarId v : e.in)
        if (storage(v) == Storage::kInline) c = std::min(kCostCap, c + cost[static_cast<size_t>(v)]);
      for (VarId v : e.out) cost[static_cast<size_t>(v)] = c;
    }
    cut_long_expressions();
  }

  // Takes the inline equations in program order in segments of at most kMaxFusedEqns, each
  // reading at most kMaxKernelBuffers / 2 buffers, and stores every value that an equation of a
  // later segment reads (a cut): form_kernels puts its readers in a later kernel, which loads it.
  // No expression then reaches past its own segment, so none is longer than kMaxFusedEqns or
  // reads more than that many buffers, however long the program.
  void cut_long_expressions() {
    const size_t n = static_cast<size_t>(fn_.num_vars());
    cut_.assign(n, false);
    segment_of_.assign(n, -1);
    std::vector<int64_t> read_in(n, -1);  // the latest segment that counted it as a read
    int64_t segment = 0, eqns = 0;
    size_t reads = 0;
    auto external = [&](VarId u) {  // read from a buffer by an equation of this segment
      const int64_t su = segment_of_[static_cast<size_t>(u)];
      return su >= 0 ? su != segment : has_buffer(u);
    };
    auto new_reads = [&](const Eqn& e) {
      size_t k = 0;
      for (size_t j = 0; j < e.in.size(); ++j)
        k += external(e.in[j]) && read_in[static_cast<size_t>(e.in[j])] != segment &&
             std::find(e.in.begin(), e.in.begin() + static_cast<ptrdiff_t>(j), e.in[j]) ==
                 e.in.begin() + static_cast<ptrdiff_t>(j);
      return k;
    };
    for (int i : live_eqns_) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(i)];
      if (!is_inline_prim(e.prim)) continue;
      if (eqns + 1 > kMaxFusedEqns || reads + new_reads(e) > kMaxKernelBuffers / 2)
        ++segment, eqns = 0, reads = 0;
      ++eqns;
      for (VarId u : e.in) {
        if (!external(u) || read_in[static_cast<size_t>(u)] == segment) continue;
        read_in[static_cast<size_t>(u)] = segment;
        ++reads;
        if (segment_of_[static_cast<size_t>(u)] < 0) continue;
        storage(u) = Storage::kComputed;
        cut_[static_cast<size_t>(u)] = true;
      }
      for (VarId v : e.out) segment_of_[static_cast<size_t>(v)] = segment;
    }
  }

  // Buffers computed by kernels that `v`'s inline expression reads (v itself when it has one);
  // counts the expression's inline equations and the buffers it reads into `cone_`.
  void collect_deps(VarId v, std::vector<VarId>& deps) {
    if (stamp_[static_cast<size_t>(v)] == epoch_) return;
    stamp_[static_cast<size_t>(v)] = epoch_;
    if (is_kernel_value(v)) {
      deps.push_back(v);
      cone_.buffers.push_back(v);
    } else if (storage(v) == Storage::kInline) {
      ++cone_.eqns;
      for (VarId u : producer(v).in) collect_deps(u, deps);
    } else if (has_buffer(v)) {
      cone_.buffers.push_back(v);
    }
  }

  // What a kernel's roots evaluate so far (or what one more root would add): inline equations
  // (counted once per root that reaches them) and buffers, against kMaxFusedEqns and
  // kMaxKernelBuffers.
  struct Budget {
    int64_t eqns = 0;
    std::vector<VarId> buffers;
  };
  bool fits(const Budget& kernel) const {
    size_t added = 0;
    for (VarId b : cone_.buffers)
      added += std::find(kernel.buffers.begin(), kernel.buffers.end(), b) == kernel.buffers.end();
    return kernel.eqns + cone_.eqns <= kMaxFusedEqns &&
           kernel.buffers.size() + added <= kMaxKernelBuffers;
  }
  void charge(Budget& kernel) const {
    kernel.eqns += cone_.eqns;
    for (VarId b : cone_.buffers)
      if (std::find(kernel.buffers.begin(), kernel.buffers.end(), b) == kernel.buffers.end())
        kernel.buffers.push_back(b);
  }

  bool compatible(const Kernel& k, KernelKind kind, const Shape& domain,
                  const std::vector<int64_t>& axes) const {
    if (k.kind != kind || k.domain.shape != domain) return false;
    if (kind == KernelKind::kElementwise) return true;
    return kind == KernelKind::kReduce && k.axes == axes;
  }

  // A region or host step: it owns the results of equation `e` and takes no other roots.
  void add_own_step(Kernel k, const Eqn& e) {
    for (VarId v : e.out) {
      k.roots.push_back(v);
      plan_.kernel_of[static_cast<size_t>(v)] = static_cast<int>(plan_.kernels.size());
    }
    plan_.kernels.push_back(std::move(k));
    budgets_.push_back({kMaxFusedEqns, {}});  // full, so nothing joins it
  }

  void form_kernels() {
    for (int i : live_eqns_) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(i)];
      if (ir::has_regions(e.prim)) {  // a step of its own, after everything it reads
        Kernel k;
        k.kind = KernelKind::kRegion;
        k.eqn = i;
        k.splittable = false;
        for (const auto& r : e.params.regions)
          k.regions.push_back(std::make_shared<const FusionPlan>(plan_fusion(*r, options_)));
        add_own_step(std::move(k), e);
        continue;
      }
      if (e.out.empty()) continue;  // an effect without results: a host step
      if (ir::has_effect(e.prim)) {  // with results: a step of its own, after what it reads
        Kernel k;
        k.kind = KernelKind::kHost;
        k.domain = fn_.type(e.out[0]);
        k.eqn = i;
        k.splittable = false;
        add_own_step(std::move(k), e);
        continue;
      }
      VarId v = e.out[0];
      if (!is_kernel_value(v)) continue;
      KernelKind kind = KernelKind::kElementwise;
      ir::Type domain = fn_.type(v);
      std::vector<int64_t> axes;
      if (storage(v) == Storage::kResult) {
        if (e.prim == Prim::kReduceSum || e.prim == Prim::kReduceMax) {
          kind = KernelKind::kReduce;
          domain = fn_.type(e.in[0]);
          axes = e.params.axes;
          std::sort(axes.begin(), axes.end());
        } else if (e.prim == Prim::kMatmul) {
          kind = KernelKind::kMatmul;
        } else {
          TJ_CHECK(e.prim == Prim::kConcatenate, "unexpected result primitive ", ir::prim_name(e.prim));
          kind = KernelKind::kConcatenate;
        }
      }
      ++epoch_;
      std::vector<VarId> deps;
      cone_ = {1, {v}};
      for (VarId u : e.in) collect_deps(u, deps);

      // Join the first compatible kernel that runs after everything `v` reads; an elementwise
      // kernel may also hold values `v` reads, which it then recomputes in the same loop.
      int chosen = -1;
      if (kind == KernelKind::kElementwise || kind == KernelKind::kReduce) {
        for (size_t k = 0; k < plan_.kernels.size() && chosen < 0; ++k) {
          const Kernel& kernel = plan_.kernels[k];
          if (!compatible(kernel, kind, domain.shape, axes) || !fits(budgets_[k])) continue;
          // A cut is loaded by readers of later segments, so they run in a later kernel than
          // the one storing it (the walks then never pass a segment's start).
          bool ok = std::all_of(deps.begin(), deps.end(), [&](VarId d) {
            int kd = kernel_of(d);
            return kd < static_cast<int>(k) ||
                   (kd == static_cast<int>(k) && kind == KernelKind::kElementwise &&
                    !(cut_[static_cast<size_t>(d)] &&
                      segment_of_[static_cast<size_t>(d)] != segment_of_[static_cast<size_t>(v)]));
          });
          if (ok) chosen = static_cast<int>(k);
        }
      }
      if (chosen < 0) {
        chosen = static_cast<int>(plan_.kernels.size());
        Kernel k;
        k.kind = kind;
        k.domain = domain;
        k.axes = axes;
        plan_.kernels.push_back(std::move(k));
        budgets_.emplace_back();
      }
      charge(budgets_[static_cast<size_t>(chosen)]);
      plan_.kernels[static_cast<size_t>(chosen)].roots.push_back(v);
      plan_.kernel_of[static_cast<size_t>(v)] = chosen;
    }
  }

  void place_host_steps() {
    // Host steps keep program order with each other and with region steps that hold effects.
    int after = -1;
    for (int i : live_eqns_) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(i)];
      if ((ir::has_regions(e.prim) && ir::has_effect(e)) ||
          (ir::has_effect(e.prim) && !e.out.empty())) {
        for (size_t k = 0; k < plan_.kernels.size(); ++k)
          if (plan_.kernels[k].eqn == i) after = std::max(after, static_cast<int>(k));
        continue;
      }
      if (!ir::has_effect(e.prim)) continue;
      for (VarId v : e.in)
        if (is_kernel_value(v)) after = std::max(after, kernel_of(v));
      plan_.host_steps.push_back({i, after});
    }
  }

  void choose_redirects() {
    for (VarId v : fn_.outputs) {
      const int slot = plan_.slot[static_cast<size_t>(v)];
      const int k = kernel_of(v);
      const bool ok = (storage(v) == Storage::kComputed || storage(v) == Storage::kResult) &&
                      k >= 0 && plan_.kernels[static_cast<size_t>(k)].kind != KernelKind::kRegion &&
                      plan_.kernels[static_cast<size_t>(k)].kind != KernelKind::kHost &&
                      std::count(fn_.outputs.begin(), fn_.outputs.end(), v) == 1 &&
                      fn_.type(v).size() > 0;
      plan_.redirect.push_back(ok ? slot : -1);
    }
  }

  // A scan or while loop whose regions are small serial kernels only: no host steps, no loops
  // or branches, no kernel big enough for threads.
  bool drivable(const Kernel& k) const {
    if (k.kind != KernelKind::kRegion) return false;
    const Prim p = fn_.eqns[static_cast<size_t>(k.eqn)].prim;
    if (p != Prim::kScan && p != Prim::kWhile) return false;
    return std::all_of(k.regions.begin(), k.regions.end(), [](const auto& plan) {
      return plan->host_steps.empty() &&
             std::none_of(plan->kernels.begin(), plan->kernels.end(), [](const Kernel& b) {
               return b.kind == KernelKind::kRegion || b.kind == KernelKind::kHost || b.parallel();
             });
    });
  }

  // A scan with no xs or ys whose body is flat elementwise kernels over one range, each carry
  // written in place by one of them: element j of every carry then depends only on element j of
  // the carries and consts (and on scalars), so the steps can run chunk by chunk.
  bool chunkable(const Kernel& k) const {
    if (k.kind != KernelKind::kRegion) return false;
    const Eqn& e = fn_.eqns[static_cast<size_t>(k.eqn)];
    if (e.prim != Prim::kScan) return false;
    const ir::Function& body = *e.params.regions[0];
    const FusionPlan& plan = *k.regions[0];
    const size_t nc = static_cast<size_t>(e.params.groups[1]);
    if (body.outputs.size() != nc || body.inputs.size() != static_cast<size_t>(e.params.groups[0]) + nc ||
        !plan.host_steps.empty() || plan.kernels.empty())
      return false;
    const int64_t n = plan.kernels[0].trip_count;
    for (const Kernel& b : plan.kernels)
      if (b.kind != KernelKind::kElementwise || b.scheme != LoopScheme::kFlat || !b.splittable ||
          b.trip_count != n)
        return false;
    for (size_t o = 0; o < nc; ++o)
      if (plan.redirect[o] < 0 || body.type(body.outputs[o]).size() != n) return false;
    // No element may read another through a layout op (c + c[0] reads element 0 everywhere):
    // nothing that depends on a carry is broadcast from a smaller size, sliced or transposed.
    std::vector<bool> dep(static_cast<size_t>(body.num_vars()), false);
    for (size_t k = 0; k < nc; ++k) dep[static_cast<size_t>(body.inputs[body.inputs.size() - nc + k])] = true;
    for (const Eqn& q : body.eqns) {
      bool d = std::any_of(q.in.begin(), q.in.end(), [&](VarId v) { return dep[static_cast<size_t>(v)]; });
      if (d && (q.prim == Prim::kSlice || q.prim == Prim::kTranspose ||
                (q.prim == Prim::kBroadcast && body.type(q.in[0]).size() != body.type(q.out[0]).size()) ||
                (q.prim == Prim::kReshape && body.type(q.in[0]).size() != n)))
        return false;
      for (VarId v : q.out) dep[static_cast<size_t>(v)] = d;
    }
    return n > 1;
  }

  void add_slot(VarId v) {
    if (plan_.slot[static_cast<size_t>(v)] >= 0) return;
    plan_.slot[static_cast<size_t>(v)] = static_cast<int>(plan_.slots.size());
    plan_.slots.push_back(v);
  }

  void assign_slots() {
    for (VarId v : fn_.inputs) add_slot(v);
    for (VarId v : fn_.const_vars)
      if (storage(v) == Storage::kConstant) add_slot(v);
    for (const Kernel& k : plan_.kernels)
      for (VarId v : k.roots) add_slot(v);
  }

  // True when `v` is evaluated inline by kernel `k` (rather than loaded from a buffer).
  bool inline_in(VarId v, int k) const {
    Storage s = plan_.storage[static_cast<size_t>(v)];
    return s == Storage::kInline ||
           (s == Storage::kComputed && kernel_of(v) == k &&
            plan_.kernels[static_cast<size_t>(k)].kind == KernelKind::kElementwise);
  }

  // Collects the equations kernel `k` evaluates for `v`, and the buffers it reads.
  void walk(VarId v, int k, std::vector<int>& eqns, std::vector<int>& reads) {
    if (stamp_[static_cast<size_t>(v)] == epoch_) return;
    stamp_[static_cast<size_t>(v)] = epoch_;
    if (inline_in(v, k)) {
      eqns.push_back(plan_.producer[static_cast<size_t>(v)]);
      for (VarId u : producer(v).in) walk(u, k, eqns, reads);
    } else if (has_buffer(v)) {
      reads.push_back(plan_.slot[static_cast<size_t>(v)]);
    }
  }

  // True when `v` can be evaluated at a row-major index of its own shape with no division:
  // elementwise ops, reshapes, and broadcasts of one element or that keep the size.
  bool flat_ok(VarId v, int k) {
    if (!inline_in(v, k)) return true;
    int8_t& memo = flat_memo_[static_cast<size_t>(v)];
    if (memo) return memo > 0;
    const Eqn& e = producer(v);
    bool ok = true;
    if (ir::is_elementwise(e.prim)) {  // flat when every operand is
      for (VarId u : e.in) ok = ok && flat_ok(u, k);
    } else if (e.prim == Prim::kBroadcast) {
      int64_t in_size = fn_.type(e.in[0]).size();
      ok = in_size == 1 || (in_size == fn_.type(v).size() && flat_ok(e.in[0], k));
    } else if (e.prim == Prim::kReshape) {
      ok = flat_ok(e.in[0], k);
    } else if (e.prim == Prim::kIota) {
      std::vector<int64_t> dims = loop_dims(fn_.type(v).shape);
      ok = dims.empty() || (dims.size() == 1 && dims[0] == e.params.axis);
    } else {  // transpose and slice move elements; nothing else is ever inline
      TJ_CHECK(e.prim == Prim::kTranspose || e.prim == Prim::kSlice, "flat_ok: ",
               ir::prim_name(e.prim), " is never inline");
      ok = false;
    }
    memo = ok ? 1 : -1;
    return ok;
  }

  void describe(Kernel& kernel) {
    const int k = static_cast<int>(&kernel - plan_.kernels.data());
    ++epoch_;
    if (kernel.kind == KernelKind::kRegion || kernel.kind == KernelKind::kHost) {
      for (VarId u : fn_.eqns[static_cast<size_t>(kernel.eqn)].in)
        if (has_buffer(u)) kernel.reads.push_back(plan_.slot[static_cast<size_t>(u)]);
      for (VarId r : kernel.roots) kernel.writes.push_back(plan_.slot[static_cast<size_t>(r)]);
      kernel.eqns = {kernel.eqn};
      return;
    }
    for (VarId r : kernel.roots) {
      if (kernel.kind == KernelKind::kElementwise) {
        walk(r, k, kernel.eqns, kernel.reads);
      } else {
        stamp_[static_cast<size_t>(r)] = epoch_;
        kernel.eqns.push_back(plan_.producer[static_cast<size_t>(r)]);
        for (VarId u : producer(r).in) walk(u, k, kernel.eqns, kernel.reads);
      }
      kernel.writes.push_back(plan_.slot[static_cast<size_t>(r)]);
    }
    std::sort(kernel.eqns.begin(), kernel.eqns.end());
    std::sort(kernel.reads.begin(), kernel.reads.end());
    kernel.reads.erase(std::unique(kernel.reads.begin(), kernel.reads.end()), kernel.reads.end());

    flat_memo_.assign(static_cast<size_t>(fn_.num_vars()), 0);
    const Shape& shape = kernel.domain.shape;
    const int64_t size = shape_size(shape);
    std::vector<int64_t> dims = loop_dims(shape);
    auto nest_range = [&] {
      kernel.trip_count = dims.empty() ? 1 : shape[static_cast<size_t>(dims[0])];
      kernel.work = kernel.trip_count > 0 ? size / kernel.trip_count : 0;
    };
    switch (kernel.kind) {
      case KernelKind::kElementwise: {
        bool flat = std::all_of(kernel.roots.begin(), kernel.roots.end(),
                                [&](VarId r) { return flat_ok(r, k); });
        kernel.scheme = flat ? LoopScheme::kFlat : LoopScheme::kNest;
        if (flat) {
          kernel.trip_count = size;
          kernel.work = 1;
        } else {
          nest_range();
        }
        break;
      }
      case KernelKind::kReduce: {
        std::vector<int64_t> kept, reduced;
        for (int64_t d : dims)
          (std::binary_search(kernel.axes.begin(), kernel.axes.end(), d) ? reduced : kept)
              .push_back(d);
        bool suffix = kept.empty() || reduced.empty() || kept.back() < reduced.front();
        bool flat = std::all_of(kernel.roots.begin(), kernel.roots.end(),
                                [&](VarId r) { return flat_ok(producer(r).in[0], k); });
        int64_t out_size = fn_.type(kernel.roots[0]).size();
        if (suffix) {
          kernel.scheme = flat ? LoopScheme::kFlat : LoopScheme::kSuffix;
          kernel.trip_count = flat ? out_size
                              : kept.empty() ? 1
                                             : shape[static_cast<size_t>(kept[0])];
        } else {
          kernel.scheme = LoopScheme::kRowMajor;
          // Chunks split the outermost dimension; two chunks must not accumulate into one output.
          kernel.splittable = !std::binary_search(kernel.axes.begin(), kernel.axes.end(), dims[0]);
          kernel.trip_count = kernel.splittable ? shape[static_cast<size_t>(dims[0])] : 1;
        }
        kernel.work = kernel.trip_count > 0 ? size / kernel.trip_count : 0;
        break;
      }
      case KernelKind::kMatmul: {
        const Eqn& e = producer(kernel.roots[0]);
        const Shape& a = fn_.type(e.in[0]).shape;
        const Shape& b = fn_.type(e.in[1]).shape;
        // One iteration per row of a over all batches ([..., m, k] rows are contiguous).
        kernel.scheme = LoopScheme::kNest;
        kernel.trip_count = shape_size(Shape(a.begin(), a.end() - 1));
        kernel.work = std::max<int64_t>(1, a.back() * b.back());
        break;
      }
      case KernelKind::kRegion: case KernelKind::kHost:
        break;  // described above
      case KernelKind::kConcatenate: {
        const Eqn& e = producer(kernel.roots[0]);
        kernel.scheme = LoopScheme::kNest;
        if (!dims.empty() && dims[0] != e.params.axis) {
          nest_range();
        } else {
          kernel.splittable = false;
          kernel.trip_count = 1;
          kernel.work = size;
        }
        break;
      }
    }
    kernel.runs = kernel.trip_count > 0 &&
                  std::any_of(kernel.roots.begin(), kernel.roots.end(),
                              [&](VarId r) { return fn_.type(r).size() > 0; });
    // Work per element: one for the memory traffic plus the inline operations' costs.
    if (kernel.kind != KernelKind::kMatmul) {
      int64_t per_element = 1;
      for (int i : kernel.eqns) per_element += op_cost(fn_.eqns[static_cast<size_t>(i)].prim);
      kernel.work *= per_element;
    }
    if (kernel.kind == KernelKind::kReduce) split(kernel);
  }

  // Cuts a reduction whose range would run on one thread (see kMaxReduceParts) into parts.
  void split(Kernel& kernel) {
    const int64_t total = kernel.trip_count * kernel.work;
    const int64_t outputs = fn_.type(kernel.roots[0]).size();
    const int64_t size = shape_size(kernel.domain.shape);
    if (total < kParallelMinWork || outputs <= 0) return;
    int64_t parts = 0;
    if (kernel.scheme == LoopScheme::kFlat && outputs < kMaxReduceParts) {
      parts = std::min(kMaxReduceParts / outputs, size / outputs);
    } else if (kernel.scheme == LoopScheme::kRowMajor && !kernel.splittable) {
      const Shape& shape = kernel.domain.shape;
      const int64_t rows = shape[static_cast<size_t>(loop_dims(shape)[0])];
      parts = std::min({kMaxReduceParts, rows, size / (outputs * kMinPartialRatio)});
    }
    const int64_t steps_per_part = kernel.scheme == LoopScheme::kFlat ? outputs : 1;
    parts = std::min(parts, total / (kMinPartWork * steps_per_part));
    if (parts < 2) return;
    kernel.parts = parts;
    kernel.splittable = true;
    kernel.trip_count = kernel.scheme == LoopScheme::kFlat ? outputs * parts : parts;
    kernel.work = (total + kernel.trip_count - 1) / kernel.trip_count;
    for (VarId r : kernel.roots) {
      // A row-major reduction accumulates in memory, in the output's type, split or not.
      const DType d = fn_.type(r).dtype;
      const DType acc =
          kernel.scheme == LoopScheme::kFlat ? accumulator_dtype(producer(r).prim, d) : d;
      const ir::Type partial{acc, {parts, outputs}};
      const int slot = static_cast<int>(plan_.slots.size());
      plan_.slots.push_back(r);
      kernel.partials.emplace_back(slot, partial);
      kernel.writes.push_back(slot);
    }
  }

  const ir::Function& fn_;
  FusionOptions options_;
  FusionPlan plan_;
  std::vector<int> live_eqns_;
  std::vector<bool> cut_;                // per VarId: stored by cut_long_expressions
  std::vector<int64_t> segment_of_;      // per VarId of an inline primitive: its segment
  std::vector<Budget> budgets_;          // per kernel, while forming them
  Budget cone_;                          // of the root being placed
  std::vector<uint32_t> stamp_;
  uint32_t epoch_ = 0;
  std::vector<int8_t> flat_memo_;
};

// Printing. Names follow ir::to_string: constants, captures, inputs, then equation results, in
// order, as a, b, ..., z, ba, ...

class FusedPrinter {
 public:
  FusedPrinter(const ir::Function& fn, const FusionPlan& plan)
      : fn_(fn), plan_(plan), names_(ir::var_names(fn)) {
    for (VarId v : fn.const_vars)
      if (!fn.type(v).shape.empty()) header_.push_back(v);
    for (VarId v : fn.captures) header_.push_back(v);
  }

  std::string print() const {
    std::vector<std::string> header, params;
    for (VarId v : header_) header.push_back(binder(v));
    for (VarId v : fn_.inputs) params.push_back(binder(v));
    std::string out = absl::StrCat("{ lambda ", absl::StrJoin(header, " "),
                                   header.empty() ? "; " : " ; ", absl::StrJoin(params, " "),
                                   ". let\n");
    size_t h = 0;
    auto host_steps_after = [&](int k) {
      for (; h < plan_.host_steps.size() && plan_.host_steps[h].after == k; ++h) {
        absl::StrAppend(&out, "    host: ",
                        equation(fn_.eqns[static_cast<size_t>(plan_.host_steps[h].eqn)]), "\n");
      }
    };
    host_steps_after(-1);
    for (size_t k = 0; k < plan_.kernels.size(); ++k) {
      const Kernel& kernel = plan_.kernels[k];
      if (kernel.kind == KernelKind::kHost) {
        absl::StrAppend(&out, "    host: ", equation(fn_.eqns[static_cast<size_t>(kernel.eqn)]),
                        "\n");
        host_steps_after(static_cast<int>(k));
        continue;
      }
      if (kernel.kind == KernelKind::kRegion) {  // the equation, then each region's own plan
        const Eqn& e = fn_.eqns[static_cast<size_t>(kernel.eqn)];
        absl::StrAppend(&out, "    ", kernel_title(fn_, plan_, k), ":\n      ", equation(e), "\n");
        for (size_t r = 0; r < kernel.regions.size(); ++r) {
          std::string sub = absl::StrCat(ir::region_name(e.prim, r, kernel.regions.size()), "=",
                                         fused_ir_str(*e.params.regions[r], *kernel.regions[r]));
          for (absl::string_view line : absl::StrSplit(sub, '\n'))
            absl::StrAppend(&out, "        ", line, "\n");
        }
        host_steps_after(static_cast<int>(k));
        continue;
      }
      absl::StrAppend(&out, "    ", kernel_title(fn_, plan_, k), ":\n");
      for (int i : kernel.eqns)
        absl::StrAppend(&out, "      ", equation(fn_.eqns[static_cast<size_t>(i)]), "\n");
      host_steps_after(static_cast<int>(k));
    }
    std::vector<std::string> outs;
    for (VarId v : fn_.outputs) outs.push_back(names_[static_cast<size_t>(v)]);
    absl::StrAppend(&out, "  in ",
                    outs.size() == 1 ? absl::StrCat("(", outs[0], ",)")
                                     : absl::StrCat("(", absl::StrJoin(outs, ", "), ")"),
                    " }");
    return out;
  }

 private:
  std::string binder(VarId v) const {
    return absl::StrCat(names_[static_cast<size_t>(v)], ":", ir::type_str(fn_.type(v)));
  }
  std::string equation(const Eqn& e) const { return ir::eqn_str(fn_, e, names_); }

  const ir::Function& fn_;
  const FusionPlan& plan_;
  std::vector<std::string> names_;
  std::vector<VarId> header_;
};

}  // namespace

FusionPlan plan_fusion(const ir::Function& fn, const FusionOptions& options) {
  return Planner(fn, options).run();
}

std::string fused_ir_str(const ir::Function& fn, const FusionPlan& plan) {
  return FusedPrinter(fn, plan).print();
}

std::string kernel_title(const ir::Function& fn, const FusionPlan& plan, size_t k) {
  const Kernel& kernel = plan.kernels[k];
  if (kernel.kind == KernelKind::kHost)
    return absl::StrCat(
        "host ", k, " (",
        detail::str_part(ir::prim_name(fn.eqns[static_cast<size_t>(kernel.eqn)].prim)), ")");
  if (kernel.kind == KernelKind::kRegion) {
    const char* how = kernel.chunked  ? "one compiled loop, each thread all steps on a chunk"
                      : kernel.driven ? "one compiled loop"
                                      : "driven step by step by the runtime";
    return absl::StrCat(
        "region ", k, " (",
        detail::str_part(ir::prim_name(fn.eqns[static_cast<size_t>(kernel.eqn)].prim)), ", ", how,
        ")");
  }
  return absl::StrCat(
      "kernel ", k, " (", kernel_kind_name(kernel.kind),
      kernel.roots.size() > 1 ? absl::StrCat(", ", kernel.roots.size(), " outputs") : "", ", over ",
      ir::type_str(kernel.domain),
      kernel.parts > 0 ? absl::StrCat(", in ", kernel.parts, " parts") : "", ")");
}

DType accumulator_dtype(Prim prim, DType dtype) {
  return prim == Prim::kReduceSum && dtype == DType::f32 ? DType::f64 : dtype;
}

const char* kernel_kind_name(KernelKind kind) {
  switch (kind) {
    case KernelKind::kElementwise: return "elementwise";
    case KernelKind::kReduce: return "reduce";
    case KernelKind::kMatmul: return "matmul";
    case KernelKind::kConcatenate: return "concatenate";
    case KernelKind::kRegion: return "region";
    case KernelKind::kHost: return "host";
  }
  return "?";
}

}  // namespace tracejit::backend

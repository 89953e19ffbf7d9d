// Constant folding and algebraic simplification. Every rewrite here is exact under IEEE
// arithmetic (x*1 -> x holds for NaN and -0; x+0 -> x does not for x = -0, so it is applied to
// integers only), and a value is replaced only by one of identical type, weak bit included, so
// the verifier's re-derived types never change.
#include <algorithm>
#include <cstring>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "passes/pipeline.h"
#include "passes/rewrite.h"
#include "base/array_impl.h"
#include "trace/eager.h"

namespace tracejit::passes {
namespace {

using ir::Prim;

// Results up to this many elements are folded into constants. Broadcasts and iotas are never
// folded: computed inline by a fused kernel they cost nothing, while a folded copy is memory.
constexpr int64_t kMaxFoldElements = 64;

class Simplifier {
 public:
  explicit Simplifier(ir::Function& fn) : fn_(fn), def_(static_cast<size_t>(fn.num_vars()), -1) {
    for (size_t i = 0; i < fn.const_vars.size(); ++i)
      const_of_[fn.const_vars[i]] = detail::array_over(fn.type(fn.const_vars[i]), fn.const_values[i]);
  }

  // The kept equations are compacted in place, at the front of fn_.eqns.
  bool run() {
    bool changed = false;
    for (size_t i = 0; i < fn_.eqns.size(); ++i) {
      ir::Eqn& e = fn_.eqns[i];
      subst_.apply(e);
      changed = select_branch(e) || changed;
      // Effects have no result to fold or forward; loops and branches are not run at compile
      // time (their regions were optimized on their own): both are kept in place.
      const bool opaque = ir::has_effect(e) || ir::has_regions(e.prim);
      if (!opaque && (fold(e) || rewrite(e))) {
        changed = true;
        continue;
      }
      if (!opaque) def_[static_cast<size_t>(e.out[0])] = static_cast<int>(kept_);
      if (kept_ != i) fn_.eqns[kept_] = std::move(e);
      ++kept_;
    }
    fn_.eqns.erase(fn_.eqns.begin() + static_cast<std::ptrdiff_t>(kept_), fn_.eqns.end());
    subst_.apply_outputs(fn_);
    return changed;
  }

 private:
  // A cond whose index is a constant becomes a call of the branch it takes (clamped, as at run
  // time), which the pipeline then inlines; not when the branch's result types differ from the
  // cond's (a weak bit that another branch made strong).
  bool select_branch(ir::Eqn& e) {
    if (e.prim != Prim::kCond) return false;
    auto it = const_of_.find(e.in[0]);
    if (it == const_of_.end()) return false;
    const auto n = static_cast<int64_t>(e.params.regions.size());
    const int64_t index = std::clamp<int64_t>(it->second.item<int32_t>(), 0, n - 1);
    std::shared_ptr<const ir::Function> branch = e.params.regions[static_cast<size_t>(index)];
    for (size_t k = 0; k < e.out.size(); ++k)
      if (branch->type(branch->outputs[k]) != fn_.type(e.out[k])) return false;
    e.prim = Prim::kCall;
    e.in.erase(e.in.begin());
    e.params = ir::Params{.text = "cond branch " + std::to_string(index)};
    e.params.regions = {std::move(branch)};
    return true;
  }

  // Replaces e's single result by `v` when the types agree exactly.
  bool forward(const ir::Eqn& e, ir::VarId v) {
    if (e.out.size() != 1 || fn_.type(v) != fn_.type(e.out[0])) return false;
    subst_.replace(e.out[0], v);
    return true;
  }

  bool fold(const ir::Eqn& e) {
    if (e.prim == Prim::kBroadcast || e.prim == Prim::kIota || e.out.size() != 1) return false;
    if (fn_.type(e.out[0]).size() > kMaxFoldElements) return false;
    std::vector<Array> in;
    for (ir::VarId v : e.in) {
      auto it = const_of_.find(v);
      if (it == const_of_.end()) return false;
      in.push_back(it->second);
    }
    if (in.empty()) return false;
    ir::Type t = fn_.type(e.out[0]);
    Array value = detail::eval_eager(e.prim, in, e.params, {&t, 1})[0];
    ir::VarId c = fn_.new_var(t);
    fn_.const_vars.push_back(c);
    fn_.const_values.push_back(detail::shared_buffer(*value.impl()));
    const_of_[c] = value;
    subst_.replace(e.out[0], c);
    return true;
  }

  // True when v is a constant (possibly broadcast) whose every element equals `x`.
  bool is_splat(ir::VarId v, double x) const {
    const ir::Eqn* d = producer(v);
    if (d && d->prim == Prim::kBroadcast) return is_splat(d->in[0], x);
    auto it = const_of_.find(v);
    if (it == const_of_.end() || it->second.size() > kMaxFoldElements) return false;
    for (double e : it->second.to_vector<double>())
      if (e != x || (x == 0 && std::signbit(e))) return false;
    return true;
  }

  const ir::Eqn* producer(ir::VarId v) const {
    // Constants folded during this run are newer than def_, and no equation defines them.
    const size_t i = static_cast<size_t>(v);
    return i >= def_.size() || def_[i] < 0 ? nullptr : &fn_.eqns[static_cast<size_t>(def_[i])];
  }

  bool rewrite(ir::Eqn& e) {
    const ir::Type& out = fn_.type(e.out[0]);
    switch (e.prim) {
      case Prim::kMul:
        return (is_splat(e.in[1], 1) && forward(e, e.in[0])) || (is_splat(e.in[0], 1) && forward(e, e.in[1]));
      case Prim::kDiv:
        return is_splat(e.in[1], 1) && forward(e, e.in[0]);
      case Prim::kAdd:
        if (is_float(out.dtype)) return false;
        return (is_splat(e.in[1], 0) && forward(e, e.in[0])) || (is_splat(e.in[0], 0) && forward(e, e.in[1]));
      case Prim::kNeg: {
        const ir::Eqn* p = producer(e.in[0]);
        return p && p->prim == Prim::kNeg && forward(e, p->in[0]);
      }
      case Prim::kStopGradient:  // only AD reads it; compiled code computes the identity
        return forward(e, e.in[0]);
      case Prim::kConvert: case Prim::kBroadcast: case Prim::kReshape:
        if (fn_.type(e.in[0]) == out) return forward(e, e.in[0]);
        if (e.prim == Prim::kReshape) {  // reshape of a reshape reads the original
          const ir::Eqn* p = producer(e.in[0]);
          if (p && p->prim == Prim::kReshape) {
            e.in[0] = p->in[0];  // the equation stays, reading the original
            return fn_.type(e.in[0]) == out && forward(e, e.in[0]);
          }
        }
        return false;
      case Prim::kTranspose:
        for (size_t i = 0; i < e.params.axes.size(); ++i)
          if (e.params.axes[i] != static_cast<int64_t>(i)) return false;
        return forward(e, e.in[0]);
      case Prim::kSlice:
        return fn_.type(e.in[0]) == out && forward(e, e.in[0]);
      case Prim::kSelect:
        return e.in[1] == e.in[2] && forward(e, e.in[1]);
      case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin: case Prim::kCos:
      case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign: case Prim::kBitcast:
      case Prim::kPow: case Prim::kMax: case Prim::kMin: case Prim::kAnd: case Prim::kOr:
      case Prim::kXor: case Prim::kShl: case Prim::kShr: case Prim::kEq: case Prim::kNe:
      case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe: case Prim::kReduceSum:
      case Prim::kReduceMax: case Prim::kConcatenate: case Prim::kIota: case Prim::kMatmul:
      case Prim::kDebugPrint: case Prim::kAllSum: case Prim::kCall: case Prim::kCond:
      case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
        return false;
    }
    return false;
  }

  ir::Function& fn_;
  Substitution subst_;
  absl::flat_hash_map<ir::VarId, Array> const_of_;
  size_t kept_ = 0;       // the equations that stay: fn_.eqns[0, kept_), in order
  std::vector<int> def_;  // var -> index of its kept equation, or -1
};

}  // namespace

bool simplify(ir::Function& fn) { return Simplifier(fn).run(); }

}  // namespace tracejit::passes

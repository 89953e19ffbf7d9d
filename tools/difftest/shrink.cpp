// Greedy shrinking: try each edit, keep it when the program still fails, repeat until no edit
// is kept.
#include "shrink.h"

#include "evaluator.h"
#include "generator.h"

namespace difftest {
namespace {

// Each candidate runs the failing check again (a compile or two): bound the total.
constexpr int kMaxCandidates = 400;

// `p` with every use of node `from` (as an operand or an output) redirected to node `to`.
Program redirect(const Program& p, int from, int to) {
  Program q = p;
  for (Node& n : q.nodes)
    for (int& a : n.args)
      if (a == from) a = to;
  for (int& o : q.outputs)
    if (o == from) o = to;
  return q;
}

// `p` with node i replaced by an input holding `value`. A varying float goes to the
// differentiated argument with its range widened by kInputMargin: finite differences move it.
Program as_input(const Program& p, int i, const Array& value) {
  Program q = p;
  Node& n = q.nodes[static_cast<size_t>(i)];
  Facts f = n.facts;
  n = Node();
  n.op = Op::kInput;
  n.value = value;
  f.exact = true;
  f.varies = f.varies && tj::is_float(f.dtype);
  if (f.varies) f.range = {f.range.lo - kInputMargin, f.range.hi + kInputMargin};
  n.slot.arg = f.varies ? 0 : 1;
  n.facts = f;
  return q;
}

}  // namespace

Program shrink(const Program& original, const std::function<bool(const Program&)>& fails) {
  Program p = original;
  int candidates = 0;
  auto accept = [&](Program q) {
    if (candidates >= kMaxCandidates) return false;
    prune(q);
    if (!recheck(q)) return false;
    ++candidates;
    if (!fails(q)) return false;
    p = std::move(q);
    return true;
  };
  for (bool progress = true; progress && candidates < kMaxCandidates;) {
    progress = false;
    for (size_t k = 0; k < p.outputs.size() && p.outputs.size() > 1;) {
      Program q = p;
      q.outputs.erase(q.outputs.begin() + static_cast<ptrdiff_t>(k));
      q.out_slots.erase(q.out_slots.begin() + static_cast<ptrdiff_t>(k));
      if (accept(std::move(q)))
        progress = true;
      else
        ++k;
    }
    auto program = std::make_shared<const Program>(p);
    auto [x, y] = make_args(p);
    const std::vector<Array> values = ProgramFn{program, std::nullopt}.node_values(x, y);
    for (int i = static_cast<int>(p.nodes.size()) - 1; i >= 0 && !progress; --i) {
      const Node& n = p.nodes[static_cast<size_t>(i)];
      if (n.op == Op::kInput) continue;
      for (int a : n.args) {
        const Facts& fa = p.nodes[static_cast<size_t>(a)].facts;
        if (fa.dtype == n.facts.dtype && fa.shape == n.facts.shape && fa.weak == n.facts.weak &&
            accept(redirect(p, i, a))) {
          progress = true;
          break;
        }
      }
      if (!progress && accept(as_input(p, i, values[static_cast<size_t>(i)]))) progress = true;
    }
  }
  return p;
}

}  // namespace difftest

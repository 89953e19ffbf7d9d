// Greedy shrinking: try each edit, keep it when the program still fails, repeat until no edit
// is kept.
#include "shrink.h"

#include <optional>

#include "evaluator.h"
#include "generator.h"

namespace difftest {
namespace {

// Each candidate runs the failing check again (a compile or two): bound the total.
constexpr int kMaxCandidates = 400;

// `p` with every use of node `from` (as an operand or an output) redirected to node `to`
// (kResult nodes keep reading their control-flow node); nullopt when nothing uses it so.
std::optional<Program> redirect(const Program& p, int from, int to) {
  Program q = p;
  bool changed = false;
  for (Node& n : q.nodes)
    if (n.op != Op::kResult)
      for (int& a : n.args)
        if (a == from) a = to, changed = true;
  for (int& o : q.outputs)
    if (o == from) o = to, changed = true;
  if (!changed) return std::nullopt;
  return q;
}

// Whether result k of control-flow node i of `p` is read: by a kResult node, or (result 0, the
// node itself) by any other node or an output.
bool result_read(const Program& p, int i, int64_t k) {
  for (const Node& n : p.nodes)
    for (int a : n.args)
      if (a == i && (n.op == Op::kResult ? n.index == k : k == 0)) return true;
  for (int o : p.outputs)
    if (o == i && k == 0) return true;
  return false;
}

// Body parameter `index` becomes a captured value: the control-flow node's operand `arg`
// (a loop carry dropped from the carry keeps its init). Later parameters move down.
void param_to_capture(Node& n, Program& body, int64_t index, int arg) {
  const int64_t k = static_cast<int64_t>(n.args.size()) - n.operands;
  bool used = false;
  for (Node& b : body.nodes) {
    if (b.op != Op::kInput || b.slot.arg != kParam) continue;
    if (b.index == index) {
      b.slot.arg = kCapture;
      b.index = k;
      used = true;
    } else if (b.index > index) {
      --b.index;
    }
  }
  if (used) n.args.push_back(arg);
}

// `p` without result k of its control-flow node i, which nothing reads; nullopt if it cannot
// go (the counter of a while_loop, the only result).
std::optional<Program> drop_result(const Program& p, int i, int64_t k) {
  const Node& orig = p.nodes[static_cast<size_t>(i)];
  if (orig.results.size() < 2 || result_read(p, i, k)) return std::nullopt;
  Program q = p;
  Node& n = q.nodes[static_cast<size_t>(i)];
  auto erase_output = [](Program& b, size_t o) {
    if (o < b.outputs.size()) b.outputs.erase(b.outputs.begin() + static_cast<ptrdiff_t>(o));
  };
  // Drops carry c (operand `arg`, parameter `param` of every body, output c of `carry_body`).
  auto drop_carry = [&](size_t c, size_t arg, int64_t param, size_t carry_body) {
    const int init = n.args[arg];
    n.args.erase(n.args.begin() + static_cast<ptrdiff_t>(arg));
    --n.operands;
    if (c < n.carry.size()) n.carry.erase(n.carry.begin() + static_cast<ptrdiff_t>(c));
    for (Program& b : n.bodies) param_to_capture(n, b, param, init);
    erase_output(n.bodies[carry_body], c);
  };
  const size_t ku = static_cast<size_t>(k);
  switch (n.op) {
    case Op::kCond:
      for (Program& b : n.bodies) erase_output(b, ku);
      break;
    case Op::kScan:
      if (k < n.carries) {
        drop_carry(ku, ku, k, 0);
        --n.carries;
      } else {
        erase_output(n.bodies[0], ku);
      }
      break;
    case Op::kFori: drop_carry(ku, ku, k + 1, 0); break;
    case Op::kWhile:
      if (k == 0) return std::nullopt;
      drop_carry(ku - 1, ku + 1, k, 1);
      break;
    default: return std::nullopt;
  }
  for (Node& m : q.nodes)
    if (m.op == Op::kResult && m.args[0] == i && m.index > k) --m.index;
  return q;
}

// Calls `each` with every program that is `p` with one edit inside control flow (at any
// depth), until `each` accepts one: an unread result of a control-flow node dropped, or a node
// inside a body redirected to one of its operands of the same type.
bool control_edits(const Program& p, const std::function<bool(Program)>& each) {
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    const Node& n = p.nodes[i];
    if (!is_control(n.op)) continue;
    for (int64_t k = static_cast<int64_t>(n.results.size()) - 1; k >= 0; --k)
      if (std::optional<Program> q = drop_result(p, static_cast<int>(i), k); q && each(*q))
        return true;
  }
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    const Node& n = p.nodes[i];
    for (size_t b = 0; b < n.bodies.size(); ++b) {
      auto embed = [&](Program body) {
        Program q = p;
        q.nodes[i].bodies[b] = std::move(body);
        return each(std::move(q));
      };
      const Program& body = n.bodies[b];
      for (int j = static_cast<int>(body.nodes.size()) - 1; j >= 0; --j) {
        const Node& m = body.nodes[static_cast<size_t>(j)];
        if (m.op == Op::kInput) continue;
        for (int a : m.args) {
          const Facts& fa = body.nodes[static_cast<size_t>(a)].facts;
          if (fa.dtype != m.facts.dtype || fa.shape != m.facts.shape || fa.weak != m.facts.weak)
            continue;
          if (std::optional<Program> q = redirect(body, j, a); q && embed(std::move(*q)))
            return true;
        }
      }
      if (control_edits(body, embed)) return true;
    }
  }
  return false;
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
    // Node values to turn into inputs; none when evaluating p is the failure itself (a value
    // of another type than the rules say, an exception).
    std::vector<Array> values;
    try {
      values = ProgramFn{program, std::nullopt}.node_values(x, y);
    } catch (const std::exception&) {
    }
    for (int i = static_cast<int>(p.nodes.size()) - 1; i >= 0 && !progress; --i) {
      const Node& n = p.nodes[static_cast<size_t>(i)];
      if (n.op == Op::kInput) continue;
      for (int a : n.args) {
        const Facts& fa = p.nodes[static_cast<size_t>(a)].facts;
        if (fa.dtype != n.facts.dtype || fa.shape != n.facts.shape || fa.weak != n.facts.weak)
          continue;
        if (std::optional<Program> q = redirect(p, i, a); q && accept(std::move(*q))) {
          progress = true;
          break;
        }
      }
      if (!progress && !values.empty() && accept(as_input(p, i, values[static_cast<size_t>(i)])))
        progress = true;
    }
    if (!progress && control_edits(p, accept)) progress = true;
  }
  return p;
}

}  // namespace difftest

#pragma once
// Hash-consing by position: finds, among the equations of a vector, one with a given primitive,
// operands and parameters, without copying any of them into a key. (Keys holding a Params copy
// made the tables of a 100,000-equation trace ~30 MB, and growing them took a tenth of its
// compile time.) The tracer records through one as it binds; CSE builds one over its output.
#include <span>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "ir/ir.h"

namespace tracejit::ir {

class EqnIndex {
 public:
  /// Indexes into `*eqns`, which may grow meanwhile (only indices are kept).
  explicit EqnIndex(const std::vector<Eqn>* eqns) : set_(0, Hash{eqns}, Eq{eqns}) {}
  EqnIndex(const EqnIndex&) = delete;  // it points at its owner's vector
  EqnIndex& operator=(const EqnIndex&) = delete;

  /// The position of an indexed equation equal to (prim, in, params), or -1.
  int find(Prim prim, std::span<const VarId> in, const Params& params) const {
    auto it = set_.find(View{prim, in, &params});
    return it == set_.end() ? -1 : *it;
  }
  /// Indexes equation `i`, which no indexed equation equals.
  void insert(int i) { set_.insert(i); }
  void clear() { set_.clear(); }

 private:
  struct View {
    Prim prim;
    std::span<const VarId> in;
    const Params* params;
  };
  static View view(const std::vector<Eqn>& eqns, int i) {
    const Eqn& e = eqns[static_cast<size_t>(i)];
    return {e.prim, std::span<const VarId>(e.in.data(), e.in.size()), &e.params};
  }
  struct Hash {
    using is_transparent = void;
    const std::vector<Eqn>* eqns;
    size_t operator()(const View& v) const {
      return absl::HashOf(v.prim, absl::MakeConstSpan(v.in.data(), v.in.size()), *v.params);
    }
    size_t operator()(int i) const { return (*this)(view(*eqns, i)); }
  };
  struct Eq {
    using is_transparent = void;
    const std::vector<Eqn>* eqns;
    static bool same(const View& a, const View& b) {
      return a.prim == b.prim && std::equal(a.in.begin(), a.in.end(), b.in.begin(), b.in.end()) &&
             *a.params == *b.params;
    }
    bool operator()(int a, int b) const { return a == b || same(view(*eqns, a), view(*eqns, b)); }
    bool operator()(int a, const View& b) const { return same(view(*eqns, a), b); }
    bool operator()(const View& a, int b) const { return same(a, view(*eqns, b)); }
  };
  absl::flat_hash_set<int, Hash, Eq> set_;
};

}  // namespace tracejit::ir

#include "runtime/signature.h"

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "base/array_impl.h"
#include "tracejit/random.h"

namespace tracejit::detail {

size_t SignatureHash::operator()(const Signature& s) const {
  size_t h = absl::HashOf(s.defs, s.leaves.size(), s.threefry_partitionable, s.promotion);
  for (const ir::Type& t : s.leaves) h = absl::HashOf(h, t);
  return h;
}

size_t SignatureHash::operator()(const SignatureView& v) const {
  size_t h = absl::HashOf(v.args->defs, v.args->leaves.size(), v.threefry_partitionable, v.promotion);
  for (const Array& a : v.args->leaves) h = absl::HashOf(h, impl_of(a, "jit").type);
  return h;
}

bool SignatureEq::operator()(const SignatureView& v, const Signature& s) const {
  if (v.threefry_partitionable != s.threefry_partitionable || v.promotion != s.promotion ||
      v.args->defs != s.defs ||
      v.args->leaves.size() != s.leaves.size())
    return false;
  for (size_t i = 0; i < s.leaves.size(); ++i)
    if (!(v.args->leaves[i].impl()->type == s.leaves[i])) return false;
  return true;
}

SignatureView view_of(const FlatArgs& args) { return {&args, random::threefry_partitionable(), dtype_promotion()}; }

Signature signature_of(const FlatArgs& args) {
  Signature s{args.defs, {}, random::threefry_partitionable(), dtype_promotion()};
  s.leaves.reserve(args.leaves.size());
  for (const Array& a : args.leaves) s.leaves.push_back(impl_of(a, "jit").type);
  return s;
}

std::vector<std::string> signature_diff(const Signature& old_sig, const Signature& new_sig) {
  std::vector<std::string> diffs;
  size_t leaf = 0;
  for (size_t i = 0; i < new_sig.defs.size(); ++i) {
    size_t n = new_sig.defs[i].num_leaves();
    if (i >= old_sig.defs.size() || old_sig.defs[i] != new_sig.defs[i]) {
      diffs.push_back(absl::StrCat("arg ", i, ": ",
                                   i < old_sig.defs.size() ? old_sig.defs[i].str() : "(absent)",
                                   " -> ", new_sig.defs[i].str()));
    } else {
      std::vector<std::string> paths = leaf_paths(new_sig.defs[i]);
      size_t old_leaf = 0;
      for (size_t k = 0; k < i; ++k) old_leaf += old_sig.defs[k].num_leaves();
      for (size_t j = 0; j < n; ++j) {
        const ir::Type& a = old_sig.leaves[old_leaf + j];
        const ir::Type& b = new_sig.leaves[leaf + j];
        if (a == b) continue;
        std::string path = paths[j].empty() ? "" : absl::StrCat(" ", paths[j]);
        // The weak bit is shown only when it is the whole difference.
        bool only_weak = ir::type_str(a) == ir::type_str(b);
        diffs.push_back(absl::StrCat("arg ", i, path, ": ", ir::type_str(a),
                                     only_weak && a.weak ? " (weak)" : "", " -> ", ir::type_str(b),
                                     only_weak && b.weak ? " (weak)" : ""));
      }
    }
    leaf += n;
  }
  if (old_sig.threefry_partitionable != new_sig.threefry_partitionable)
    diffs.push_back(absl::StrCat("threefry scheme: ",
                                 old_sig.threefry_partitionable ? "partitionable" : "original", " -> ",
                                 new_sig.threefry_partitionable ? "partitionable" : "original"));
  if (old_sig.promotion != new_sig.promotion) {
    auto name = [](DTypePromotion p) { return p == DTypePromotion::strict ? "strict" : "standard"; };
    diffs.push_back(absl::StrCat("dtype promotion: ", name(old_sig.promotion), " -> ",
                                 name(new_sig.promotion)));
  }
  if (old_sig.defs.size() > new_sig.defs.size())
    diffs.push_back(absl::StrCat("number of arguments: ", old_sig.defs.size(), " -> ", new_sig.defs.size()));
  return diffs;
}

}  // namespace tracejit::detail

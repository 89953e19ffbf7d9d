// The non-template half of pytrees: printing TreeDefs, leaf paths, and the TreeErrors of
// tree_unflatten and tree_map, which name the first node where two structures part.
#include "tracejit/pytree.h"

#include <algorithm>
#include <sstream>

#include "absl/functional/function_ref.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "base/errors.h"

namespace tracejit {

using detail::NodeKind;
using detail::TreeNode;

namespace {

// Appends the subtree at nodes[i] to `out`; returns the index after it.
size_t print_subtree(const std::vector<TreeNode>& nodes, size_t i, std::string& out) {
  const TreeNode& node = nodes[i++];
  // Children separated by ", ", each after prefix(k).
  auto children = [&](std::string_view open, std::string_view close, auto prefix) {
    out += open;
    for (size_t k = 0; k < node.arity; ++k) {
      if (k > 0) out += ", ";
      out += prefix(k);
      i = print_subtree(nodes, i, out);
    }
    // Python's one-element tuple, so that it does not read as parentheses.
    if (node.kind == NodeKind::kTuple && node.arity == 1) out += ",";
    out += close;
  };
  auto none = [](size_t) { return std::string(); };
  switch (node.kind) {
    case NodeKind::kLeaf: out += "*"; break;
    case NodeKind::kTuple: children("(", ")", none); break;
    case NodeKind::kVector: children("[", "]", none); break;
    case NodeKind::kArray: children("std::array[", "]", none); break;
    case NodeKind::kMap:
      children("{", "}", [&](size_t k) { return detail::cat("'", absl::CEscape(node.keys[k]), "': "); });
      break;
    case NodeKind::kStruct:
      children(detail::cat(node.name, "("), ")",
               [&](size_t k) { return detail::cat(node.keys[k], "="); });
      if (node.aux) {
        // The static fields, after the array fields: `Layer(w=*)[scale=0.5]`.
        const std::vector<std::string> values = node.aux->strs();
        out += "[";
        for (size_t k = 0; k < values.size(); ++k)
          out += detail::cat(k > 0 ? ", " : "", node.static_keys[k], "=", values[k]);
        out += "]";
      }
      break;
    case NodeKind::kStatic:
      out += detail::cat("Static(", node.aux ? node.aux->strs()[0] : "", ")");
      break;
  }
  return i;
}

std::string subtree_str(const std::vector<TreeNode>& nodes, size_t i) {
  std::string out;
  print_subtree(nodes, i, out);
  return out;
}

// The key entry from a node to its child k.
KeyEntry child_key(const TreeNode& node, size_t k) {
  using Kind = KeyEntry::Kind;
  switch (node.kind) {
    case NodeKind::kLeaf:
    case NodeKind::kStatic: break;
    case NodeKind::kTuple: return {Kind::kTupleIndex, "", k};
    case NodeKind::kVector:
    case NodeKind::kArray: return {Kind::kIndex, "", k};
    case NodeKind::kMap: return {Kind::kKey, node.keys[k], 0};
    case NodeKind::kStruct: return {Kind::kField, node.keys[k], 0};
  }
  TJ_CHECK(false, "a leaf has no children");
}

// A path in C++ terms, as messages and retrace explanations spell it: `<0>` for a tuple
// element (std::get<0>), `["key"]` for a map entry.
std::string cpp_path(const KeyPath& path) {
  std::string out;
  for (const KeyEntry& e : path) {
    switch (e.kind) {
      case KeyEntry::Kind::kField: out += detail::cat(".", e.name); break;
      case KeyEntry::Kind::kIndex: out += detail::cat("[", e.index, "]"); break;
      case KeyEntry::Kind::kTupleIndex: out += detail::cat("<", e.index, ">"); break;
      case KeyEntry::Kind::kKey: out += detail::cat("[\"", absl::CEscape(e.name), "\"]"); break;
    }
  }
  return out;
}

// Calls visit(index, path) for the subtree at nodes[i] in pre-order; returns the index after it.
size_t walk(const std::vector<TreeNode>& nodes, size_t i, KeyPath& path,
            absl::FunctionRef<void(size_t, const KeyPath&)> visit) {
  const size_t self = i++;
  visit(self, path);
  for (size_t k = 0; k < nodes[self].arity; ++k) {
    path.push_back(child_key(nodes[self], k));
    i = walk(nodes, i, path, visit);
    path.pop_back();
  }
  return i;
}

void walk(const TreeDef& def, absl::FunctionRef<void(size_t, const KeyPath&)> visit) {
  KeyPath path;
  if (!def.nodes().empty()) walk(def.nodes(), 0, path, visit);
}

// "the root" or "`.layers[1]`", for messages.
std::string where(const TreeDef& def, size_t index) {
  std::string found;
  walk(def, [&](size_t i, const KeyPath& path) {
    if (i == index) found = cpp_path(path);
  });
  return found.empty() ? "the root" : detail::cat("`", found, "`");
}

// "1 leaf", "2 leaves".
std::string count_of(size_t n, std::string_view one, std::string_view many) {
  return detail::cat(n, " ", n == 1 ? one : many);
}

// What a node is, in words: "a std::vector of 3 elements", "struct Params".
std::string describe(NodeKind kind, int64_t arity, std::string_view name,
                     const std::vector<std::string>* keys) {
  std::string size = arity < 0 ? "" : detail::cat(" of ", count_of(arity, "element", "elements"));
  switch (kind) {
    case NodeKind::kLeaf: return "a leaf";
    case NodeKind::kTuple: return detail::cat("a tuple", size);
    case NodeKind::kVector: return detail::cat("a std::vector", size);
    case NodeKind::kArray: return detail::cat("a std::array", size);
    case NodeKind::kMap:
      if (keys == nullptr) return "a std::map";
      if (keys->empty()) return "an empty std::map";
      return detail::cat("a std::map with keys ",
                          absl::StrJoin(*keys, ", ", [](std::string* out, const std::string& k) {
                            absl::StrAppend(out, "'", absl::CEscape(k), "'");
                          }));
    case NodeKind::kStruct: return detail::cat("struct ", name);
    case NodeKind::kStatic: return "a tj::Static value";
  }
  TJ_CHECK(false, "unknown node kind");
}

std::string describe(const TreeNode& node) {
  return describe(node.kind, static_cast<int64_t>(node.arity), node.name, &node.keys);
}

}  // namespace

TreeDef::TreeDef(std::vector<TreeNode> nodes) : nodes_(std::move(nodes)) {
  num_leaves_ = static_cast<size_t>(std::count_if(
      nodes_.begin(), nodes_.end(), [](const TreeNode& n) { return n.kind == NodeKind::kLeaf; }));
}

std::string TreeDef::str() const {
  return detail::cat("PyTreeDef(", nodes_.empty() ? "" : subtree_str(nodes_, 0), ")");
}

std::ostream& operator<<(std::ostream& os, const TreeDef& def) { return os << def.str(); }

std::string keystr(const KeyPath& path) {
  std::string out;
  for (const KeyEntry& e : path) {
    switch (e.kind) {
      case KeyEntry::Kind::kField: out += detail::cat(".", e.name); break;
      case KeyEntry::Kind::kIndex:
      case KeyEntry::Kind::kTupleIndex: out += detail::cat("[", e.index, "]"); break;
      case KeyEntry::Kind::kKey: out += detail::cat("['", absl::CEscape(e.name), "']"); break;
    }
  }
  return out;
}

namespace detail {

std::vector<KeyPath> leaf_key_paths(const TreeDef& def) {
  std::vector<KeyPath> paths;
  walk(def, [&](size_t i, const KeyPath& path) {
    if (def.nodes()[i].kind == NodeKind::kLeaf) paths.push_back(path);
  });
  return paths;
}

std::vector<std::string> leaf_paths(const TreeDef& def) {
  std::vector<std::string> paths;
  for (const KeyPath& p : leaf_key_paths(def)) paths.push_back(cpp_path(p));
  return paths;
}

void raise_unhashable_static(std::string_view what, const char* type_name) {
  raise<TypeError>("pytree", what, " holds a value of type ", type_name,
                   " without == or absl::Hash, so it cannot be part of a TreeDef (nor of jit's "
                   "cache key); give the type an operator== and an AbslHashValue friend, or pass "
                   "the value as an array");
}

void throw_missing_aux(const TreeDef& def, std::string_view name) {
  raise<TreeError>("tree_unflatten", "the TreeDef ", def.str(), " lacks the static values of ",
                   name, " (or holds values of another type); unflatten with the type that was "
                   "flattened");
}

const TreeNode& take_node(UnflattenCursor& c, NodeKind kind, int64_t arity,
                          std::string_view type_key, std::string_view name) {
  const std::vector<TreeNode>& nodes = c.def.nodes();
  // Described only on the error paths: this runs for every node of every jit call's result.
  auto expected = [&] { return describe(kind, arity, name, nullptr); };
  if (c.node >= nodes.size())
    raise<TreeError>("tree_unflatten", "structure mismatch: the target type has ", expected(),
                     " where the TreeDef ", c.def.str(), " has nothing; unflatten with the type "
                     "that was flattened");
  const TreeNode& node = nodes[c.node];
  const bool matches = node.kind == kind &&
                       (arity < 0 || node.arity == static_cast<size_t>(arity)) &&
                       (kind != NodeKind::kStruct || node.type_key == type_key);
  if (!matches) {
    // Two structs of one name from different namespaces would otherwise read alike.
    const std::string actual = node.kind == kind && kind == NodeKind::kStruct
                                   ? detail::cat(describe(node), " of another C++ type")
                                   : describe(node);
    raise<TreeError>("tree_unflatten", "structure mismatch at ", where(c.def, c.node),
                     ": the target type has ", expected(), " there, the TreeDef has ", actual, " (",
                     subtree_str(nodes, c.node), "); the whole TreeDef is ", c.def.str(),
                     "; unflatten with the type that was flattened");
  }
  ++c.node;
  return node;
}

void throw_leaf_count_mismatch(const TreeDef& def, size_t num_leaves) {
  raise<TreeError>("tree_unflatten", "leaf count mismatch: the TreeDef ", def.str(), " has ",
                   count_of(def.num_leaves(), "leaf", "leaves"), " but ", count_of(num_leaves, "leaf", "leaves"),
                   num_leaves == 1 ? " was" : " were",
                   " given; pass the leaves that tree_flatten returned with this TreeDef");
}

void throw_tree_map_mismatch(size_t index, const TreeDef& first, const TreeDef& other) {
  // Both are pre-order: up to the first differing node they are the same tree, so that node has
  // the same index in both.
  const std::vector<TreeNode>& a = first.nodes();
  const std::vector<TreeNode>& b = other.nodes();
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  std::string difference;
  if (i < a.size() && i < b.size()) {
    // Two structs of one name from different namespaces would otherwise read alike.
    const bool namesake = a[i].kind == NodeKind::kStruct && b[i].kind == NodeKind::kStruct &&
                          a[i].name == b[i].name;
    difference = detail::cat(" at ", where(first, i), ", tree 0 has ", describe(a[i]), " and tree ",
                         index, " has ", describe(b[i]), namesake ? " of another C++ type" : "",
                         ";");
  }
  raise<TreeError>("tree_map", "tree ", index, " does not have the structure of tree 0 (the first "
                   "tree):", difference, " tree 0 is ", first.str(), ", tree ", index, " is ",
                   other.str(), "; pass trees with the same containers, lengths, map keys and "
                   "struct types");
}

}  // namespace detail
}  // namespace tracejit

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
      break;
  }
  return i;
}

std::string subtree_str(const std::vector<TreeNode>& nodes, size_t i) {
  std::string out;
  print_subtree(nodes, i, out);
  return out;
}

// The path step from a node to its child k, as leaf_paths spells it.
std::string child_step(const TreeNode& node, size_t k) {
  switch (node.kind) {
    case NodeKind::kLeaf: break;
    case NodeKind::kTuple: return detail::cat("<", k, ">");
    case NodeKind::kVector:
    case NodeKind::kArray: return detail::cat("[", k, "]");
    case NodeKind::kMap: return detail::cat("[\"", absl::CEscape(node.keys[k]), "\"]");
    case NodeKind::kStruct: return detail::cat(".", node.keys[k]);
  }
  TJ_CHECK(false, "a leaf has no children");
}

// Calls visit(index, path) for the subtree at nodes[i] in pre-order; returns the index after it.
size_t walk(const std::vector<TreeNode>& nodes, size_t i, const std::string& path,
            absl::FunctionRef<void(size_t, const std::string&)> visit) {
  const size_t self = i++;
  visit(self, path);
  for (size_t k = 0; k < nodes[self].arity; ++k)
    i = walk(nodes, i, detail::cat(path, child_step(nodes[self], k)), visit);
  return i;
}

// "the root" or "`.layers[1]`", for messages.
std::string where(const TreeDef& def, size_t index) {
  std::string found;
  if (!def.nodes().empty())
    walk(def.nodes(), 0, "", [&](size_t i, const std::string& path) {
      if (i == index) found = path;
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

namespace detail {

std::vector<std::string> leaf_paths(const TreeDef& def) {
  std::vector<std::string> paths;
  if (def.nodes().empty()) return paths;
  walk(def.nodes(), 0, "", [&](size_t i, const std::string& path) {
    if (def.nodes()[i].kind == NodeKind::kLeaf) paths.push_back(path);
  });
  return paths;
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

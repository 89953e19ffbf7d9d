#pragma once
// Pytrees: nested containers whose leaves are arrays, as in jax.tree_util.
//
// Leaves are tj::Array and C++ arithmetic values (flattened as weakly typed 0-d arrays).
// Containers are std::tuple, std::pair, std::array<T, N>, std::vector<T>,
// std::map<std::string, T>, and structs registered with TRACEJIT_PYTREE. Flattening walks a
// tree in JAX's leaf order (struct fields as registered, map entries by key, sequences by index)
// and records its shape as a TreeDef: a pre-order list of nodes, cheap to compare and hash,
// which jit uses in its cache keys.
#include <array>
#include <concepts>
#include <cstddef>
#include <memory>
#include <sstream>
#include <typeinfo>
#include <cstdint>
#include <map>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "tracejit/array.h"
#include "tracejit/dtype.h"
#include "tracejit/error.h"

namespace tracejit {

/// A value jit's cache key can hold: comparable with `==` and hashable with absl::Hash (an
/// AbslHashValue friend).
template <class T>
concept StaticValue = std::equality_comparable<T> && std::is_default_constructible_v<absl::Hash<T>>;

/// A jit argument passed through as a C++ value (JAX's static_argnums): it has no leaves, its
/// value is part of the TreeDef and so of jit's cache key (a new value traces again, and
/// explain_retraces shows the change), and the traced function reads it as `.value`. A
/// Static<T> of a T without `==` or absl::Hash does not compile (the StaticValue constraint).
template <class T>
  requires StaticValue<T>
struct Static {
  T value;
};

/// One step of a leaf's path, as JAX's key entries: a struct field (GetAttrKey, `.weight`), an
/// element of a std::vector or std::array (SequenceKey, `[0]`), of a tuple or pair (also
/// `[0]` in JAX; `<0>` in C++ messages), or a std::map entry (DictKey, `['lr']`).
struct KeyEntry {
  enum class Kind : uint8_t { kField, kIndex, kTupleIndex, kKey };
  Kind kind = Kind::kIndex;
  std::string name;  // kField, kKey
  size_t index = 0;  // kIndex, kTupleIndex
  bool operator==(const KeyEntry&) const = default;
};
using KeyPath = std::vector<KeyEntry>;

/// JAX's keystr: `.weight`, `[0]`, `['lr']`, concatenated (`.layers[1]['w']`); "" for the root.
std::string keystr(const KeyPath& path);

namespace detail {

/// Non-array data kept in a TreeDef node (JAX's aux data): a Static value, or the fields that
/// TRACEJIT_PYTREE_STATIC names, compared, hashed and printed through this interface.
class AuxData {
 public:
  virtual ~AuxData() = default;
  virtual bool equals(const AuxData& other) const = 0;
  virtual size_t hash() const = 0;
  /// One string per value: the value itself for a Static, one per static field for a struct.
  virtual std::vector<std::string> strs() const = 0;
};

template <class T> inline constexpr bool is_std_tuple_v = false;
template <class... Ts> inline constexpr bool is_std_tuple_v<std::tuple<Ts...>> = true;

/// A value as text for TreeDef printing: with operator<< where it has one, strings quoted.
template <class T>
std::string aux_value_str(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return "'" + v + "'";
  } else if constexpr (requires(std::ostream& os) { os << v; }) {
    std::ostringstream os;
    os << v;
    return os.str();
  } else {
    std::ostringstream os;
    os << "#" << std::hex << absl::Hash<T>{}(v);
    return os.str();
  }
}

template <class T>
class AuxValue final : public AuxData {
 public:
  explicit AuxValue(T v) : value(std::move(v)) {}
  bool equals(const AuxData& other) const override {
    const auto* o = dynamic_cast<const AuxValue*>(&other);
    return o != nullptr && o->value == value;
  }
  size_t hash() const override { return absl::Hash<T>{}(value); }
  std::vector<std::string> strs() const override {
    if constexpr (is_std_tuple_v<T>)
      return std::apply([](const auto&... e) { return std::vector<std::string>{aux_value_str(e)...}; }, value);
    else
      return {aux_value_str(value)};
  }
  T value;
};

template <class T>
concept AuxCapable = StaticValue<T>;

/// Throws the TypeError of a static value whose type lacks == or absl::Hash.
[[noreturn]] void raise_unhashable_static(std::string_view what, const char* type_name);

template <class T>
std::shared_ptr<const AuxData> make_aux(const T& v, std::string_view what) {
  if constexpr (AuxCapable<T>)
    return std::make_shared<const AuxValue<T>>(v);
  else
    raise_unhashable_static(what, typeid(T).name());
}

/// The kinds of pytree node. std::pair is a two-element kTuple; an arithmetic value and an
/// Array are both a kLeaf (JAX treats both as leaves, and both flatten to an Array).
/// kStatic is a tj::Static<T>: no children, its value in `aux`.
enum class NodeKind : uint8_t { kLeaf, kTuple, kArray, kVector, kMap, kStruct, kStatic };

/// One node of a TreeDef, in pre-order. Children follow their parent directly.
struct TreeNode {
  NodeKind kind = NodeKind::kLeaf;
  /// Number of direct children (0 for a leaf).
  size_t arity = 0;
  /// kStruct: the name given to TRACEJIT_PYTREE ("Params"), for printing.
  std::string_view name;
  /// kStruct: a string unique to the C++ type, so that a::Params and b::Params differ.
  /// Both views refer to string literals, which live as long as the program.
  std::string_view type_key;
  /// kMap: the keys in std::map order; kStruct: the field names as registered.
  std::vector<std::string> keys;
  /// kStatic: the value; kStruct: the TRACEJIT_PYTREE_STATIC fields' values (else null).
  std::shared_ptr<const AuxData> aux;
  /// kStruct: the TRACEJIT_PYTREE_STATIC field names.
  std::vector<std::string_view> static_keys;

  friend bool operator==(const TreeNode& a, const TreeNode& b) {
    return a.kind == b.kind && a.arity == b.arity && a.type_key == b.type_key &&
           a.keys == b.keys && a.static_keys == b.static_keys &&
           (a.aux == b.aux || (a.aux && b.aux && a.aux->equals(*b.aux)));
  }
  template <class H>
  friend H AbslHashValue(H h, const TreeNode& n) {
    return H::combine(std::move(h), n.kind, n.arity, n.type_key, n.keys,
                      n.aux ? n.aux->hash() : size_t{0});
  }
};

}  // namespace detail

/// The structure of a pytree without its leaves (JAX's PyTreeDef). Printable, comparable and
/// hashable with absl::Hash. Printed forms: `PyTreeDef(*)` for a leaf, `(*, *)` for a tuple or
/// pair (`(*,)` with one element), `[*, *]` for a std::vector, `std::array[*, *]` for a
/// std::array, `{'a': *, 'b': *}` for a std::map, `Params(weight=*, bias=*)` for a struct. A
/// default-constructed TreeDef has no nodes, describes no type and prints `PyTreeDef()`.
class TreeDef {
 public:
  TreeDef() = default;
  /// For tracejit's own templates: the nodes of a whole tree in pre-order.
  explicit TreeDef(std::vector<detail::TreeNode> nodes);

  /// Number of leaves of the trees this TreeDef describes.
  size_t num_leaves() const { return num_leaves_; }
  /// The nodes in pre-order.
  const std::vector<detail::TreeNode>& nodes() const { return nodes_; }
  /// E.g. `PyTreeDef(Params(weight=*, bias=*))`.
  std::string str() const;

  friend bool operator==(const TreeDef& a, const TreeDef& b) { return a.nodes_ == b.nodes_; }
  template <class H>
  friend H AbslHashValue(H h, const TreeDef& d) {
    return H::combine(std::move(h), d.nodes_);
  }

 private:
  std::vector<detail::TreeNode> nodes_;
  size_t num_leaves_ = 0;
};

std::ostream& operator<<(std::ostream& os, const TreeDef& def);

/// What tree_flatten returns: `auto [leaves, def] = tj::tree_flatten(tree);`.
struct Flattened {
  std::vector<Array> leaves;
  TreeDef def;
};

namespace detail {

// ---- Registered structs -------------------------------------------------------------------

/// One registered field: its name and member pointer.
template <class C, class M>
struct StructField {
  std::string_view name;
  M C::*member;
};
/// What the TRACEJIT_PYTREE hook returns: the struct's name and its fields, in leaf order.
template <class... Fields>
struct StructInfo {
  std::string_view name;
  std::tuple<Fields...> fields;
};
template <class C, class M>
constexpr StructField<C, M> struct_field(std::string_view name, M C::*member) {
  return {name, member};
}
template <class... Fields>
constexpr StructInfo<Fields...> struct_info(std::string_view name, Fields... fields) {
  return {name, std::tuple<Fields...>(fields...)};
}

/// True for a struct registered with TRACEJIT_PYTREE. The hook is found by argument-dependent
/// lookup, which is why registration needs no specialization inside namespace tracejit and
/// must happen in the namespace that declares the struct.
template <class T>
concept RegisteredStruct = requires(const T* p) { tracejit_pytree_fields(p); };
/// A registered struct with TRACEJIT_PYTREE_STATIC fields.
template <class T>
concept HasStaticFields = RegisteredStruct<T> && requires(const T* p) { tracejit_pytree_static_fields(p); };

/// The static fields' values of x as a std::tuple.
template <class T>
auto static_values(const T& x) {
  const auto info = tracejit_pytree_static_fields(static_cast<const T*>(nullptr));
  return std::apply([&](const auto&... f) { return std::tuple{(x.*(f.member))...}; }, info.fields);
}

/// A string unique to T: the compiler's spelling of this instantiation, which names T fully.
/// (std::source_location would do, but clang before 15 lacks it with libstdc++.)
template <class T>
constexpr std::string_view type_key() {
#if defined(_MSC_VER)
  return __FUNCSIG__;
#else
  return __PRETTY_FUNCTION__;
#endif
}

// ---- Type classification ------------------------------------------------------------------

template <class T> inline constexpr bool is_tuple_like_v = false;
template <class... Ts> inline constexpr bool is_tuple_like_v<std::tuple<Ts...>> = true;
template <class A, class B> inline constexpr bool is_tuple_like_v<std::pair<A, B>> = true;
template <class T> inline constexpr bool is_std_array_v = false;
template <class T, size_t N> inline constexpr bool is_std_array_v<std::array<T, N>> = true;
template <class T> inline constexpr bool is_vector_v = false;
template <class T> inline constexpr bool is_vector_v<std::vector<T>> = true;
template <class T> inline constexpr bool is_static_v = false;
template <class T> inline constexpr bool is_static_v<Static<T>> = true;
template <class T> inline constexpr bool is_string_map_v = false;
template <class T> inline constexpr bool is_string_map_v<std::map<std::string, T>> = true;

template <class T>
inline constexpr bool is_leaf_v = std::is_same_v<T, Array> || std::is_arithmetic_v<T>;

template <class T>
struct IsPytree : std::bool_constant<is_leaf_v<T> || RegisteredStruct<T> || is_static_v<T>> {};
template <class T>
inline constexpr bool is_pytree_v = IsPytree<std::remove_cvref_t<T>>::value;
template <class... Ts>
struct IsPytree<std::tuple<Ts...>> : std::bool_constant<(is_pytree_v<Ts> && ...)> {};
template <class A, class B>
struct IsPytree<std::pair<A, B>> : std::bool_constant<is_pytree_v<A> && is_pytree_v<B>> {};
template <class T, size_t N>
struct IsPytree<std::array<T, N>> : IsPytree<std::remove_cvref_t<T>> {};
template <class T>
struct IsPytree<std::vector<T>> : IsPytree<std::remove_cvref_t<T>> {};
template <class T>
struct IsPytree<std::map<std::string, T>> : IsPytree<std::remove_cvref_t<T>> {};
// is_pytree_v<T> (declared above, cv and references ignored) is true for a leaf, a registered
// struct (its fields are checked where it is flattened) and the std containers above of
// pytrees, at any depth.

template <class T>
inline constexpr bool dependent_false_v = false;
#define TRACEJIT_DETAIL_NOT_A_PYTREE                                                           \
  "tracejit: type is not a pytree; leaves are tj::Array and arithmetic values, containers are " \
  "std::tuple, std::pair, std::array, std::vector, std::map<std::string, T>; register structs " \
  "with TRACEJIT_PYTREE(Type, fields...) in the namespace that declares them"

/// T with every arithmetic leaf type replaced by Array, through tuple, pair, std::array,
/// vector and map (registered structs and Array stay as they are; cv and references are
/// dropped). jit returns this: a jitted `[] { return 1; }` gives an Array.
template <class T> struct Arrayified { using type = T; };
template <class T> using arrayified_t = typename Arrayified<std::remove_cvref_t<T>>::type;
template <class T>
  requires std::is_arithmetic_v<T>
struct Arrayified<T> { using type = Array; };
template <class... Ts>
struct Arrayified<std::tuple<Ts...>> { using type = std::tuple<arrayified_t<Ts>...>; };
template <class A, class B>
struct Arrayified<std::pair<A, B>> { using type = std::pair<arrayified_t<A>, arrayified_t<B>>; };
template <class T, size_t N>
struct Arrayified<std::array<T, N>> { using type = std::array<arrayified_t<T>, N>; };
template <class T>
struct Arrayified<std::vector<T>> { using type = std::vector<arrayified_t<T>>; };
template <class T>
struct Arrayified<std::map<std::string, T>> {
  using type = std::map<std::string, arrayified_t<T>>;
};

/// Each leaf's path as key entries, in leaf order (tree_flatten_with_path).
std::vector<KeyPath> leaf_key_paths(const TreeDef& def);

/// Each leaf's path in C++ terms, in leaf order: `.weight` (struct field), `[2]` (vector or
/// std::array element), `["key"]` (map entry), `<0>` (tuple element, as std::get<0>),
/// `.layers[1]["w"]` when nested; a tree that is a single leaf has the path "".
std::vector<std::string> leaf_paths(const TreeDef& def);

// ---- Flattening ---------------------------------------------------------------------------

/// Appends x's leaves to `leaves` and, unless `nodes` is null, its nodes in pre-order.
template <class T>
void flatten_into(const T& x, std::vector<Array>& leaves, std::vector<TreeNode>* nodes) {
  auto add_node = [&](NodeKind kind, size_t arity) -> TreeNode* {
    if (nodes == nullptr) return nullptr;
    TreeNode& node = nodes->emplace_back();
    node.kind = kind;
    node.arity = arity;
    return &node;
  };
  if constexpr (std::is_same_v<T, Array>) {
    add_node(NodeKind::kLeaf, 0);
    leaves.push_back(x);
  } else if constexpr (std::is_arithmetic_v<T>) {
    add_node(NodeKind::kLeaf, 0);
    leaves.push_back(Array(x));
  } else if constexpr (RegisteredStruct<T>) {
    const auto info = tracejit_pytree_fields(static_cast<const T*>(nullptr));
    if (TreeNode* node = add_node(NodeKind::kStruct, std::tuple_size_v<decltype(info.fields)>)) {
      node->name = info.name;
      node->type_key = type_key<T>();
      std::apply([&](const auto&... f) { (node->keys.emplace_back(f.name), ...); }, info.fields);
      if constexpr (HasStaticFields<T>) {
        const auto sinfo = tracejit_pytree_static_fields(static_cast<const T*>(nullptr));
        std::apply([&](const auto&... f) { (node->static_keys.push_back(f.name), ...); }, sinfo.fields);
        node->aux = make_aux(static_values(x), info.name);
      }
    }
    std::apply([&](const auto&... f) { (flatten_into(x.*(f.member), leaves, nodes), ...); },
               info.fields);
  } else if constexpr (is_static_v<T>) {
    if (TreeNode* node = add_node(NodeKind::kStatic, 0)) node->aux = make_aux(x.value, "Static");
  } else if constexpr (is_tuple_like_v<T>) {
    add_node(NodeKind::kTuple, std::tuple_size_v<T>);
    std::apply([&](const auto&... e) { (flatten_into(e, leaves, nodes), ...); }, x);
  } else if constexpr (is_std_array_v<T> || is_vector_v<T>) {
    add_node(is_vector_v<T> ? NodeKind::kVector : NodeKind::kArray, x.size());
    for (const auto& e : x) flatten_into<typename T::value_type>(e, leaves, nodes);
  } else if constexpr (is_string_map_v<T>) {
    if (TreeNode* node = add_node(NodeKind::kMap, x.size())) {
      node->keys.reserve(x.size());
      for (const auto& [key, value] : x) node->keys.push_back(key);
    }
    for (const auto& [key, value] : x) flatten_into(value, leaves, nodes);
  } else {
    static_assert(dependent_false_v<T>, TRACEJIT_DETAIL_NOT_A_PYTREE);
  }
}

// ---- Unflattening -------------------------------------------------------------------------

/// Where tree_unflatten is in the TreeDef and in the leaves.
struct UnflattenCursor {
  const TreeDef& def;
  std::span<const Array> leaves;
  size_t node = 0;
  size_t leaf = 0;
};

/// Consumes the next node of the TreeDef, checking that it is what the target type has there:
/// `kind`, `arity` children (any number when -1), and for a struct the type `type_key`.
/// Throws TreeError naming both structures otherwise; `name` is the struct's name for that
/// message.
const TreeNode& take_node(UnflattenCursor& c, NodeKind kind, int64_t arity,
                          std::string_view type_key = {}, std::string_view name = {});
/// Throws the TreeError of tree_unflatten when a node lacks the static values of the target.
[[noreturn]] void throw_missing_aux(const TreeDef& def, std::string_view name);
/// Throws the TreeError of tree_unflatten when the TreeDef and the leaves differ in number.
[[noreturn]] void throw_leaf_count_mismatch(const TreeDef& def, size_t num_leaves);
/// Throws the TreeError of tree_map when tree `index` (0 is the first) differs from tree 0.
[[noreturn]] void throw_tree_map_mismatch(size_t index, const TreeDef& first,
                                          const TreeDef& other);

template <class T>
T unflatten_from(UnflattenCursor& c) {
  if constexpr (std::is_same_v<T, Array>) {
    take_node(c, NodeKind::kLeaf, 0);
    return c.leaves[c.leaf++];
  } else if constexpr (std::is_arithmetic_v<T>) {
    take_node(c, NodeKind::kLeaf, 0);
    // Read through the C++ type of T's dtype (int32_t for a long, say): item<T> copies as many
    // bytes as that dtype has. On a tracer this throws ConcretizationError, as it should.
    using Stored = typename dtype_ctype<dtype_of<T>()>::type;
    return static_cast<T>(c.leaves[c.leaf++].template item<Stored>());
  } else if constexpr (RegisteredStruct<T>) {
    static_assert(std::is_default_constructible_v<T>,
                  "tracejit: tree_unflatten builds a registered struct by default-constructing "
                  "it and assigning its fields; give it a default constructor");
    const auto info = tracejit_pytree_fields(static_cast<const T*>(nullptr));
    const TreeNode& node = take_node(c, NodeKind::kStruct, std::tuple_size_v<decltype(info.fields)>,
                                     type_key<T>(), info.name);
    T out{};
    if constexpr (HasStaticFields<T>) {
      // The static fields come back from the TreeDef (a node of this type always has them).
      using Values = decltype(static_values(out));
      const auto* aux = dynamic_cast<const AuxValue<Values>*>(node.aux.get());
      if (aux == nullptr) throw_missing_aux(c.def, info.name);
      const auto sinfo = tracejit_pytree_static_fields(static_cast<const T*>(nullptr));
      [&]<size_t... I>(std::index_sequence<I...>) {
        ((out.*(std::get<I>(sinfo.fields).member) = std::get<I>(aux->value)), ...);
      }(std::make_index_sequence<std::tuple_size_v<Values>>());
    }
    std::apply(
        [&](const auto&... f) {
          ((out.*(f.member) =
                unflatten_from<std::remove_cvref_t<decltype(out.*(f.member))>>(c)),
           ...);
        },
        info.fields);
    return out;
  } else if constexpr (is_static_v<T>) {
    const TreeNode& node = take_node(c, NodeKind::kStatic, 0);
    using V = decltype(T::value);
    const auto* aux = dynamic_cast<const AuxValue<V>*>(node.aux.get());
    if (aux == nullptr) throw_missing_aux(c.def, "Static");
    return T{aux->value};
  } else if constexpr (is_tuple_like_v<T>) {
    take_node(c, NodeKind::kTuple, std::tuple_size_v<T>);
    // Braced initialisation evaluates its elements left to right, i.e. in leaf order.
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return T{unflatten_from<std::tuple_element_t<I, T>>(c)...};
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  } else if constexpr (is_std_array_v<T>) {
    take_node(c, NodeKind::kArray, std::tuple_size_v<T>);
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return T{((void)I, unflatten_from<typename T::value_type>(c))...};
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  } else if constexpr (is_vector_v<T>) {
    const TreeNode& node = take_node(c, NodeKind::kVector, -1);
    T out;
    out.reserve(node.arity);
    for (size_t i = 0; i < node.arity; ++i)
      out.push_back(unflatten_from<typename T::value_type>(c));
    return out;
  } else if constexpr (is_string_map_v<T>) {
    const TreeNode& node = take_node(c, NodeKind::kMap, -1);
    T out;
    for (const std::string& key : node.keys)
      out.emplace_hint(out.end(), key, unflatten_from<typename T::mapped_type>(c));
    return out;
  } else {
    static_assert(dependent_false_v<T>, TRACEJIT_DETAIL_NOT_A_PYTREE);
  }
}

template <class>
using ConstArrayRef = const Array&;

// ---- Trees whose structure is their C++ type ----------------------------------------------

/// The member types of a registered struct's fields, as a std::tuple.
template <class Info> struct StructFieldTypes;
template <class... C, class... M>
struct StructFieldTypes<StructInfo<StructField<C, M>...>> {
  using type = std::tuple<M...>;
};
template <class T>
using struct_field_types_t =
    typename StructFieldTypes<decltype(tracejit_pytree_fields(static_cast<const T*>(nullptr)))>::type;

/// True when T's TreeDef follows from the C++ type alone and every leaf is a tj::Array: Array,
/// std::tuple, std::pair and std::array of such, and registered structs of such without
/// static fields. jit and Compiled check such arguments by their type (one comparison) and
/// gather their leaves into a fixed array, instead of building a TreeDef and a leaf vector.
template <class T>
constexpr bool static_tree() {
  if constexpr (std::is_same_v<T, Array>) {
    return true;
  } else if constexpr (RegisteredStruct<T>) {
    if constexpr (HasStaticFields<T>) return false;
    else return static_tree<struct_field_types_t<T>>();
  } else if constexpr (is_tuple_like_v<T>) {
    return []<size_t... I>(std::index_sequence<I...>) {
      return (static_tree<std::remove_cvref_t<std::tuple_element_t<I, T>>>() && ...);
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  } else if constexpr (is_std_array_v<T>) {
    return static_tree<std::remove_cvref_t<typename T::value_type>>();
  } else {
    return false;
  }
}
template <class... Ts>
inline constexpr bool static_trees_v = (static_tree<std::remove_cvref_t<Ts>>() && ...);

/// The number of leaves of a static tree.
template <class T>
constexpr size_t static_leaf_count() {
  if constexpr (std::is_same_v<T, Array>) {
    return 1;
  } else if constexpr (RegisteredStruct<T>) {
    return static_leaf_count<struct_field_types_t<T>>();
  } else if constexpr (is_tuple_like_v<T>) {
    return []<size_t... I>(std::index_sequence<I...>) {
      return (size_t{0} + ... + static_leaf_count<std::remove_cvref_t<std::tuple_element_t<I, T>>>());
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  } else {
    static_assert(is_std_array_v<T>);
    return std::tuple_size_v<T> * static_leaf_count<std::remove_cvref_t<typename T::value_type>>();
  }
}

/// Writes the address of each leaf of the static tree x, in leaf order, advancing `out`.
template <class T>
void gather_static(const T& x, const Array**& out) {
  if constexpr (std::is_same_v<T, Array>) {
    *out++ = &x;
  } else if constexpr (RegisteredStruct<T>) {
    const auto info = tracejit_pytree_fields(static_cast<const T*>(nullptr));
    std::apply([&](const auto&... f) { (gather_static(x.*(f.member), out), ...); }, info.fields);
  } else if constexpr (is_tuple_like_v<T>) {
    std::apply([&](const auto&... e) { (gather_static(e, out), ...); }, x);
  } else {
    for (const auto& e : x) gather_static(e, out);
  }
}

/// Builds a static tree of type T from leaves moved out of `in`, in leaf order.
template <class T>
T build_static(Array*& in) {
  if constexpr (std::is_same_v<T, Array>) {
    return std::move(*in++);
  } else if constexpr (RegisteredStruct<T>) {
    const auto info = tracejit_pytree_fields(static_cast<const T*>(nullptr));
    T out{};
    std::apply([&](const auto&... f) {
      ((out.*(f.member) = build_static<std::remove_cvref_t<decltype(out.*(f.member))>>(in)), ...);
    }, info.fields);
    return out;
  } else if constexpr (is_tuple_like_v<T>) {
    // Braced initialisation evaluates its elements left to right, i.e. in leaf order.
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return T{build_static<std::remove_cvref_t<std::tuple_element_t<I, T>>>(in)...};
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  } else {
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return T{((void)I, build_static<std::remove_cvref_t<typename T::value_type>>(in))...};
    }(std::make_index_sequence<std::tuple_size_v<T>>());
  }
}

/// An address unique to the list of types Ts: equal tags mean equal static tree structures.
template <class... Ts>
inline constexpr char kTypeTag = 0;

}  // namespace detail

// ---- Public API ---------------------------------------------------------------------------

/// The leaves of `tree` in JAX's order and its structure.
template <class T>
Flattened tree_flatten(const T& tree) {
  static_assert(detail::is_pytree_v<T>, TRACEJIT_DETAIL_NOT_A_PYTREE);
  Flattened out;
  std::vector<detail::TreeNode> nodes;
  detail::flatten_into<std::remove_cvref_t<T>>(tree, out.leaves, &nodes);
  out.def = TreeDef(std::move(nodes));
  return out;
}

/// Each leaf with its path from the root, in leaf order (jax.tree_util.tree_flatten_with_path).
template <class T>
std::vector<std::pair<KeyPath, Array>> tree_flatten_with_path(const T& tree) {
  Flattened flat = tree_flatten(tree);
  std::vector<KeyPath> paths = detail::leaf_key_paths(flat.def);
  std::vector<std::pair<KeyPath, Array>> out;
  out.reserve(flat.leaves.size());
  for (size_t i = 0; i < flat.leaves.size(); ++i)
    out.emplace_back(std::move(paths[i]), std::move(flat.leaves[i]));
  return out;
}

/// The leaves of `tree` in JAX's order (tree_flatten without the TreeDef).
template <class T>
std::vector<Array> tree_leaves(const T& tree) {
  static_assert(detail::is_pytree_v<T>, TRACEJIT_DETAIL_NOT_A_PYTREE);
  std::vector<Array> leaves;
  detail::flatten_into<std::remove_cvref_t<T>>(tree, leaves, nullptr);
  return leaves;
}

/// Rebuilds a T from `def` and `leaves` (a std::vector<Array> converts). Throws TreeError when
/// `def` does not describe T (container kind, tuple or std::array size, struct type) or the
/// number of leaves differs; vector lengths and map keys come from `def`. An arithmetic leaf
/// of T reads its Array with item(), so it throws ConcretizationError on a tracer.
template <class T>
T tree_unflatten(const TreeDef& def, std::span<const Array> leaves) {
  static_assert(detail::is_pytree_v<T>, TRACEJIT_DETAIL_NOT_A_PYTREE);
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>,
                "tracejit: tree_unflatten<T> needs a value type T");
  if (leaves.size() != def.num_leaves()) detail::throw_leaf_count_mismatch(def, leaves.size());
  detail::UnflattenCursor cursor{.def = def, .leaves = leaves};
  return detail::unflatten_from<T>(cursor);
}

/// Applies `fn` leaf-wise: the result has `tree`'s type, and its leaf i is
/// `fn(leaf i of tree, leaf i of each of rest...)`. Every tree of `rest` must have `tree`'s
/// structure (an arithmetic leaf matches an Array leaf), else TreeError. An arithmetic leaf of
/// the result is read back with item(), which throws ConcretizationError on a tracer.
template <class F, class T, class... Rest>
T tree_map(F&& fn, const T& tree, const Rest&... rest) {
  static_assert((detail::is_pytree_v<T> && ... && detail::is_pytree_v<Rest>),
                TRACEJIT_DETAIL_NOT_A_PYTREE);
  static_assert(std::is_invocable_v<F&, const Array&, detail::ConstArrayRef<Rest>...>,
                "tracejit: tree_map's fn must take one const tj::Array& per tree");
  if constexpr (std::is_invocable_v<F&, const Array&, detail::ConstArrayRef<Rest>...>)
    static_assert(
        std::is_convertible_v<
            std::invoke_result_t<F&, const Array&, detail::ConstArrayRef<Rest>...>, Array>,
        "tracejit: tree_map's fn must return a tj::Array");
  const Flattened first = tree_flatten(tree);
  std::array<std::vector<Array>, sizeof...(Rest)> rest_leaves;
  size_t index = 0;
  [[maybe_unused]] auto flatten_rest = [&](const auto& other) {
    Flattened f = tree_flatten(other);
    if (f.def != first.def) detail::throw_tree_map_mismatch(index + 1, first.def, f.def);
    rest_leaves[index++] = std::move(f.leaves);
  };
  (flatten_rest(rest), ...);
  std::vector<Array> out;
  out.reserve(first.leaves.size());
  [&]<size_t... I>(std::index_sequence<I...>) {
    for (size_t j = 0; j < first.leaves.size(); ++j)
      out.push_back(fn(first.leaves[j], rest_leaves[I][j]...));
  }(std::index_sequence_for<Rest...>());
  return tree_unflatten<T>(first.def, out);
}

}  // namespace tracejit

// ---- Registration -------------------------------------------------------------------------

// TRACEJIT_DETAIL_FOR_EACH(m, T, a, b, c) expands to m(T, a) m(T, b) m(T, c). The nested
// EXPAND macros rescan the list enough times for 64 fields; __VA_OPT__ ends the recursion.
#define TRACEJIT_DETAIL_PARENS ()
#define TRACEJIT_DETAIL_EXPAND(...) \
  TRACEJIT_DETAIL_EXPAND3(TRACEJIT_DETAIL_EXPAND3(TRACEJIT_DETAIL_EXPAND3(TRACEJIT_DETAIL_EXPAND3(__VA_ARGS__))))
#define TRACEJIT_DETAIL_EXPAND3(...) \
  TRACEJIT_DETAIL_EXPAND2(TRACEJIT_DETAIL_EXPAND2(TRACEJIT_DETAIL_EXPAND2(TRACEJIT_DETAIL_EXPAND2(__VA_ARGS__))))
#define TRACEJIT_DETAIL_EXPAND2(...) \
  TRACEJIT_DETAIL_EXPAND1(TRACEJIT_DETAIL_EXPAND1(TRACEJIT_DETAIL_EXPAND1(TRACEJIT_DETAIL_EXPAND1(__VA_ARGS__))))
#define TRACEJIT_DETAIL_EXPAND1(...) __VA_ARGS__
#define TRACEJIT_DETAIL_FOR_EACH(m, T, ...) \
  __VA_OPT__(TRACEJIT_DETAIL_EXPAND(TRACEJIT_DETAIL_FOR_EACH_STEP(m, T, __VA_ARGS__)))
#define TRACEJIT_DETAIL_FOR_EACH_STEP(m, T, a, ...) \
  m(T, a) __VA_OPT__(TRACEJIT_DETAIL_FOR_EACH_AGAIN TRACEJIT_DETAIL_PARENS(m, T, __VA_ARGS__))
#define TRACEJIT_DETAIL_FOR_EACH_AGAIN() TRACEJIT_DETAIL_FOR_EACH_STEP
#define TRACEJIT_DETAIL_FIELD(T, f) \
  , ::tracejit::detail::struct_field<T, decltype(T::f)>(#f, &T::f)
// The hook that argument-dependent lookup finds: the struct's name and the listed fields.
#define TRACEJIT_DETAIL_STRUCT_HOOK(hook, Type, ...)                                        \
  inline auto hook(const Type*) {                                                           \
    return ::tracejit::detail::struct_info(                                                 \
        #Type TRACEJIT_DETAIL_FOR_EACH(TRACEJIT_DETAIL_FIELD, Type, __VA_ARGS__));           \
  }

/// Registers a struct as a pytree node whose children are the listed fields, in that order
/// (list them in declaration order to get JAX's leaf order):
///
///   struct Params { tj::Array weight; tj::Array bias; };
///   TRACEJIT_PYTREE(Params, weight, bias);
///
/// Use it once, in the namespace that declares the struct (argument-dependent lookup finds the
/// hook it defines there). Fields may be any pytrees, registered structs included; the struct
/// needs a default constructor to be rebuilt by tree_unflatten and by transformations.
#define TRACEJIT_PYTREE(Type, ...)                                                          \
  TRACEJIT_DETAIL_STRUCT_HOOK(tracejit_pytree_fields, Type, __VA_ARGS__)                    \
  static_assert(::std::is_class_v<Type>, "TRACEJIT_PYTREE registers a struct or class")

/// Declares fields of a struct registered with TRACEJIT_PYTREE that are not arrays (JAX's aux
/// data): they are kept in the TreeDef, compared and hashed with it (so they are part of jit's
/// cache key, and a change traces again), printed in it, and restored by tree_unflatten. Use it
/// after TRACEJIT_PYTREE, at the same namespace scope:
///
///   struct Layer { tj::Array w; float scale; std::string name; };
///   TRACEJIT_PYTREE(Layer, w);
///   TRACEJIT_PYTREE_STATIC(Layer, scale, name);
///
/// The fields need == and absl::Hash; flattening throws TypeError otherwise.
#define TRACEJIT_PYTREE_STATIC(Type, ...)                                                   \
  TRACEJIT_DETAIL_STRUCT_HOOK(tracejit_pytree_static_fields, Type, __VA_ARGS__)             \
  static_assert(::std::is_class_v<Type>, "TRACEJIT_PYTREE_STATIC names fields of a struct")

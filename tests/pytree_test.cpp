// Pytrees: flatten/unflatten round trips, JAX's leaf order, TreeDef equality, hashing and
// printing, tree_map, the TreeErrors of mismatched structures, arithmetic leaves, and the
// detail traits (arrayified_t, is_pytree_v, leaf_paths). Expected values are worked by hand.
#include "tracejit/pytree.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "tracejit/array.h"
#include "tracejit/error.h"
#include "tracejit/ops.h"

namespace tj = tracejit;
using tj::Array;

// Registered in a user namespace, as the seed program does at global scope.
namespace model {
struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

struct Layer {
  std::map<std::string, Array> w;
  std::vector<Params> sub;
  float scale = 1.0f;
};
TRACEJIT_PYTREE(Layer, w, sub, scale);
}  // namespace model

// A struct of the same name and fields in another namespace: a different pytree type.
namespace other {
struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);
}  // namespace other

// Registered in the global namespace, with more than 16 fields.
struct Wide {
  Array f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16;
};
TRACEJIT_PYTREE(Wide, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16);

struct Unregistered {
  Array a;
};

namespace {

using model::Layer;
using model::Params;

Array vec(std::vector<float> v) { return tj::array(v); }

std::vector<std::vector<float>> values(const std::vector<Array>& leaves) {
  std::vector<std::vector<float>> out;
  for (const Array& leaf : leaves) out.push_back(leaf.to_vector<float>());
  return out;
}

// The message of the TreeError that f throws ("" when it throws none).
std::string tree_error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const tj::TreeError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(PytreeFlatten, ArrayIsASingleLeaf) {
  auto [leaves, def] = tj::tree_flatten(vec({1, 2}));
  EXPECT_EQ(values(leaves), (std::vector<std::vector<float>>{{1, 2}}));
  EXPECT_EQ(def.num_leaves(), 1u);
  EXPECT_EQ(def.str(), "PyTreeDef(*)");
  EXPECT_EQ(tj::tree_unflatten<Array>(def, leaves).to_vector<float>(), (std::vector<float>{1, 2}));
}

TEST(PytreeFlatten, StructLeavesFollowFieldOrder) {
  Params p{vec({1, 2}), vec({3})};
  auto [leaves, def] = tj::tree_flatten(p);
  EXPECT_EQ(values(leaves), (std::vector<std::vector<float>>{{1, 2}, {3}}));
  EXPECT_EQ(def.num_leaves(), 2u);
  Params q = tj::tree_unflatten<Params>(def, leaves);
  EXPECT_EQ(q.weight.to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(q.bias.to_vector<float>(), (std::vector<float>{3}));
}

TEST(PytreeFlatten, MapLeavesFollowKeyOrder) {
  std::map<std::string, Array> m;
  m["b"] = vec({2});
  m["c"] = vec({3});
  m["a"] = vec({1});
  auto [leaves, def] = tj::tree_flatten(m);
  EXPECT_EQ(values(leaves), (std::vector<std::vector<float>>{{1}, {2}, {3}}));
  auto back = tj::tree_unflatten<std::map<std::string, Array>>(def, leaves);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back.at("a").to_vector<float>(), (std::vector<float>{1}));
  EXPECT_EQ(back.at("b").to_vector<float>(), (std::vector<float>{2}));
  EXPECT_EQ(back.at("c").to_vector<float>(), (std::vector<float>{3}));
}

TEST(PytreeRoundTrip, TupleAndPair) {
  using T = std::tuple<Array, std::pair<Array, Array>>;
  T t{vec({1}), {vec({2, 3}), vec({4})}};
  auto [leaves, def] = tj::tree_flatten(t);
  EXPECT_EQ(values(leaves), (std::vector<std::vector<float>>{{1}, {2, 3}, {4}}));
  T back = tj::tree_unflatten<T>(def, leaves);
  EXPECT_EQ(std::get<0>(back).to_vector<float>(), (std::vector<float>{1}));
  EXPECT_EQ(std::get<1>(back).first.to_vector<float>(), (std::vector<float>{2, 3}));
  EXPECT_EQ(std::get<1>(back).second.to_vector<float>(), (std::vector<float>{4}));
}

TEST(PytreeRoundTrip, StdArrayAndVector) {
  using T = std::pair<std::array<Array, 2>, std::vector<Array>>;
  T t{{vec({1}), vec({2})}, {vec({3}), vec({4}), vec({5})}};
  auto [leaves, def] = tj::tree_flatten(t);
  EXPECT_EQ(values(leaves), (std::vector<std::vector<float>>{{1}, {2}, {3}, {4}, {5}}));
  T back = tj::tree_unflatten<T>(def, leaves);
  EXPECT_EQ(back.first[1].to_vector<float>(), (std::vector<float>{2}));
  ASSERT_EQ(back.second.size(), 3u);
  EXPECT_EQ(back.second[2].to_vector<float>(), (std::vector<float>{5}));
}

// A struct inside a map inside a vector inside a tuple, and a struct holding containers.
TEST(PytreeRoundTrip, DeepNesting) {
  using T = std::tuple<std::vector<std::map<std::string, Params>>, Layer>;
  T t{{{{"p", Params{vec({1}), vec({2})}}},
       {{"q", Params{vec({3}), vec({4})}}, {"a", Params{vec({5}), vec({6})}}}},
      Layer{{{"k", vec({7})}}, {Params{vec({8}), vec({9})}}, 0.5f}};
  auto [leaves, def] = tj::tree_flatten(t);
  // Map "a" before "q"; Layer's fields w, sub, scale in order.
  EXPECT_EQ(values(leaves),
            (std::vector<std::vector<float>>{{1}, {2}, {5}, {6}, {3}, {4}, {7}, {8}, {9}, {0.5}}));
  EXPECT_EQ(def.num_leaves(), 10u);
  T back = tj::tree_unflatten<T>(def, leaves);
  EXPECT_EQ(values(tj::tree_leaves(back)), values(leaves));
  EXPECT_EQ(std::get<0>(back)[1].at("q").bias.to_vector<float>(), (std::vector<float>{4}));
  EXPECT_EQ(std::get<1>(back).scale, 0.5f);
}

TEST(PytreeRoundTrip, EmptyContainers) {
  using T = std::tuple<std::vector<Array>, std::map<std::string, Array>, std::tuple<>>;
  auto [leaves, def] = tj::tree_flatten(T{});
  EXPECT_TRUE(leaves.empty());
  EXPECT_EQ(def.str(), "PyTreeDef(([], {}, ()))");
  T back = tj::tree_unflatten<T>(def, leaves);
  EXPECT_TRUE(std::get<0>(back).empty());
  EXPECT_TRUE(std::get<1>(back).empty());
}

TEST(PytreeArithmetic, ScalarsFlattenToWeakZeroDArrays) {
  using T = std::tuple<int, float, double, bool, uint32_t, long>;
  T t{3, 2.5f, 0.25, true, 7u, -5L};
  auto [leaves, def] = tj::tree_flatten(t);
  ASSERT_EQ(leaves.size(), 6u);
  const tj::DType dtypes[] = {tj::DType::i32, tj::DType::f32, tj::DType::f64,
                              tj::DType::bool_, tj::DType::u32, tj::DType::i32};
  for (size_t i = 0; i < leaves.size(); ++i) {
    EXPECT_EQ(leaves[i].dtype(), dtypes[i]) << i;
    EXPECT_EQ(leaves[i].ndim(), 0) << i;
    EXPECT_TRUE(leaves[i].weak_type()) << i;
  }
  EXPECT_EQ(def.str(), "PyTreeDef((*, *, *, *, *, *))");
  // -5 as a long goes through i32 and comes back whole.
  EXPECT_EQ(tj::tree_unflatten<T>(def, leaves), t);
}

TEST(PytreeArithmetic, ArithmeticLeafMatchesArrayLeaf) {
  auto [leaves, def] = tj::tree_flatten(std::tuple<Array, Array>{vec({1}), Array(1.5f)});
  EXPECT_EQ(def, tj::tree_flatten(std::tuple<int, Array>{1, vec({1})}).def);
  auto back = tj::tree_unflatten<std::tuple<Array, float>>(def, leaves);
  EXPECT_EQ(std::get<1>(back), 1.5f);
}

TEST(PytreeTreeDef, EqualityFollowsStructure) {
  auto def = [](const auto& tree) { return tj::tree_flatten(tree).def; };
  Array x = vec({1});
  // Same structure, different leaf values and shapes: equal.
  EXPECT_EQ(def(Params{x, x}), def(Params{vec({1, 2}), vec({3})}));
  EXPECT_EQ(def(std::pair<Array, Array>{x, x}), def(std::tuple<Array, Array>{x, x}));
  // Vector length, map keys, struct type, tuple arity, container kind: different.
  EXPECT_NE(def(std::vector<Array>{x, x}), def(std::vector<Array>{x, x, x}));
  EXPECT_NE(def(std::map<std::string, Array>{{"a", x}, {"b", x}}),
            def(std::map<std::string, Array>{{"a", x}, {"c", x}}));
  EXPECT_NE(def(Params{x, x}), def(other::Params{x, x}));
  EXPECT_EQ(def(Params{x, x}).str(), def(other::Params{x, x}).str());
  EXPECT_NE(def(std::tuple<Array, Array>{x, x}), def(std::tuple<Array, Array, Array>{x, x, x}));
  EXPECT_NE(def(std::vector<Array>{x, x}), def(std::array<Array, 2>{x, x}));
  EXPECT_NE(def(std::vector<Array>{x, x}), def(std::tuple<Array, Array>{x, x}));
  EXPECT_NE(def(x), def(std::vector<Array>{x}));
}

TEST(PytreeTreeDef, EqualDefsHashEqual) {
  auto def = [](const auto& tree) { return tj::tree_flatten(tree).def; };
  Array x = vec({1});
  EXPECT_EQ(absl::Hash<tj::TreeDef>()(def(Params{x, x})),
            absl::Hash<tj::TreeDef>()(def(Params{vec({2, 3}), x})));
  absl::flat_hash_set<tj::TreeDef> set;
  set.insert(def(Params{x, x}));
  set.insert(def(Params{vec({4}), vec({5})}));  // same as the first
  set.insert(def(other::Params{x, x}));
  set.insert(def(std::vector<Array>{x, x}));
  set.insert(def(std::vector<Array>{x, x, x}));
  set.insert(def(std::vector<int>{1, 2}));  // same as the vector of two Arrays
  set.insert(def(std::map<std::string, Array>{{"a", x}}));
  set.insert(def(std::map<std::string, Array>{{"b", x}}));
  EXPECT_EQ(set.size(), 6u);
  EXPECT_TRUE(set.contains(def(std::map<std::string, float>{{"b", 1.0f}})));
}

TEST(PytreeTreeDef, Printing) {
  auto str = [](const auto& tree) { return tj::tree_flatten(tree).def.str(); };
  Array x = vec({1});
  EXPECT_EQ(str(std::pair<Array, int>{x, 1}), "PyTreeDef((*, *))");
  EXPECT_EQ(str(std::tuple<Array>{x}), "PyTreeDef((*,))");
  EXPECT_EQ(str(std::vector<Array>{x, x}), "PyTreeDef([*, *])");
  EXPECT_EQ(str(std::array<Array, 3>{x, x, x}), "PyTreeDef(std::array[*, *, *])");
  EXPECT_EQ(str(std::map<std::string, Array>{{"b", x}, {"a", x}}), "PyTreeDef({'a': *, 'b': *})");
  EXPECT_EQ(str(Params{x, x}), "PyTreeDef(Params(weight=*, bias=*))");
  EXPECT_EQ(str(Layer{{{"k", x}}, {Params{x, x}}, 2.0f}),
            "PyTreeDef(Layer(w={'k': *}, sub=[Params(weight=*, bias=*)], scale=*))");
  EXPECT_EQ(str(std::tuple<std::vector<std::map<std::string, Params>>, Array>{
                {{{"p", Params{x, x}}}, {}}, x}),
            "PyTreeDef(([{'p': Params(weight=*, bias=*)}, {}], *))");
  EXPECT_EQ(tj::TreeDef().str(), "PyTreeDef()");
  std::ostringstream os;
  os << tj::tree_flatten(Params{x, x}).def;
  EXPECT_EQ(os.str(), "PyTreeDef(Params(weight=*, bias=*))");
}

TEST(PytreeTreeMap, OnStruct) {
  Params p{vec({1, 2}), vec({3})};
  auto doubled = tj::tree_map([](const Array& a) { return a * 2; }, p);
  static_assert(std::is_same_v<decltype(doubled), Params>);
  EXPECT_EQ(doubled.weight.to_vector<float>(), (std::vector<float>{2, 4}));
  EXPECT_EQ(doubled.bias.to_vector<float>(), (std::vector<float>{6}));
}

TEST(PytreeTreeMap, OnNestedContainers) {
  using T = std::map<std::string, std::vector<std::tuple<Array, Params>>>;
  T t{{"x", {{vec({1}), Params{vec({2}), vec({3})}}}}, {"y", {}}};
  T out = tj::tree_map([](const Array& a) { return a + 10; }, t);
  ASSERT_EQ(out.at("x").size(), 1u);
  EXPECT_TRUE(out.at("y").empty());
  EXPECT_EQ(values(tj::tree_leaves(out)), (std::vector<std::vector<float>>{{11}, {12}, {13}}));
}

TEST(PytreeTreeMap, SeveralTrees) {
  // The seed's update step: params - grads * learning_rate, leaf by leaf.
  Params params{vec({1, 2}), vec({3})};
  Params grads{vec({10, 20}), vec({-30})};
  Params next = tj::tree_map(
      [](const Array& p, const Array& g) { return p - g * 0.5f; }, params, grads);
  EXPECT_EQ(next.weight.to_vector<float>(), (std::vector<float>{-4, -8}));
  EXPECT_EQ(next.bias.to_vector<float>(), (std::vector<float>{18}));
  // Three trees, one with arithmetic leaves: the result has the first tree's type.
  auto sum = tj::tree_map([](const Array& a, const Array& b, const Array& c) { return a + b + c; },
                          std::pair<Array, Array>{vec({1}), vec({2})},
                          std::tuple<float, float>{10.0f, 20.0f},
                          std::pair<Array, Array>{vec({100}), vec({200})});
  static_assert(std::is_same_v<decltype(sum), std::pair<Array, Array>>);
  EXPECT_EQ(sum.first.to_vector<float>(), (std::vector<float>{111}));
  EXPECT_EQ(sum.second.to_vector<float>(), (std::vector<float>{222}));
}

TEST(PytreeTreeMap, MismatchThrowsTreeError) {
  Array x = vec({1});
  auto add = [](const Array& a, const Array& b) { return a + b; };
  std::string keys = tree_error_message([&] {
    tj::tree_map(add, std::map<std::string, Array>{{"a", x}, {"b", x}},
                 std::map<std::string, Array>{{"a", x}, {"c", x}});
  });
  EXPECT_TRUE(keys.starts_with("[tree_map]")) << keys;
  EXPECT_TRUE(contains(keys, "PyTreeDef({'a': *, 'b': *})")) << keys;
  EXPECT_TRUE(contains(keys, "PyTreeDef({'a': *, 'c': *})")) << keys;

  std::string length = tree_error_message(
      [&] { tj::tree_map(add, std::vector<Array>{x, x}, std::vector<Array>{x, x, x}); });
  EXPECT_TRUE(length.starts_with("[tree_map]")) << length;
  EXPECT_TRUE(contains(length, "PyTreeDef([*, *])")) << length;
  EXPECT_TRUE(contains(length, "PyTreeDef([*, *, *])")) << length;

  // A nested difference is located by its path.
  std::string nested = tree_error_message([&] {
    tj::tree_map(add, std::tuple<Array, Params>{x, Params{x, x}},
                 std::tuple<Array, other::Params>{x, other::Params{x, x}});
  });
  EXPECT_TRUE(nested.starts_with("[tree_map]")) << nested;
  EXPECT_TRUE(contains(nested, "at `<1>`")) << nested;
  EXPECT_TRUE(contains(nested, "another C++ type")) << nested;
}

TEST(PytreeUnflatten, MismatchThrowsTreeError) {
  Array x = vec({1});
  tj::Flattened two = tj::tree_flatten(std::vector<Array>{x, x});
  std::string kind = tree_error_message(
      [&] { tj::tree_unflatten<std::tuple<Array, Array>>(two.def, two.leaves); });
  EXPECT_TRUE(kind.starts_with("[tree_unflatten]")) << kind;
  EXPECT_TRUE(contains(kind, "a tuple of 2 elements")) << kind;
  EXPECT_TRUE(contains(kind, "a std::vector of 2 elements")) << kind;
  EXPECT_TRUE(contains(kind, "PyTreeDef([*, *])")) << kind;

  auto three = tj::tree_flatten(std::tuple<Array, Array, Array>{x, x, x});
  std::string arity = tree_error_message(
      [&] { tj::tree_unflatten<std::tuple<Array, Array>>(three.def, three.leaves); });
  EXPECT_TRUE(arity.starts_with("[tree_unflatten]")) << arity;
  EXPECT_TRUE(contains(arity, "a tuple of 3 elements")) << arity;

  auto theirs = tj::tree_flatten(std::pair<Array, other::Params>{x, {x, x}});
  std::string type = tree_error_message(
      [&] { tj::tree_unflatten<std::pair<Array, Params>>(theirs.def, theirs.leaves); });
  EXPECT_TRUE(type.starts_with("[tree_unflatten]")) << type;
  EXPECT_TRUE(contains(type, "at `<1>`")) << type;
  EXPECT_TRUE(contains(type, "another C++ type")) << type;

  std::string count = tree_error_message(
      [&] { tj::tree_unflatten<std::vector<Array>>(two.def, std::vector<Array>{x}); });
  EXPECT_TRUE(count.starts_with("[tree_unflatten]")) << count;
  EXPECT_TRUE(contains(count, "has 2 leaves but 1 leaf was given")) << count;
}

TEST(PytreeUnflatten, TakesASpanOfLeaves) {
  std::vector<Array> pool{vec({1}), vec({2}), vec({3})};
  auto def = tj::tree_flatten(Params{pool[0], pool[0]}).def;
  Params p = tj::tree_unflatten<Params>(def, std::span<const Array>(pool).subspan(1));
  EXPECT_EQ(p.weight.to_vector<float>(), (std::vector<float>{2}));
  EXPECT_EQ(p.bias.to_vector<float>(), (std::vector<float>{3}));
}

TEST(PytreeTreeLeaves, MatchTreeFlatten) {
  Layer layer{{{"b", vec({1})}, {"a", vec({2})}}, {Params{vec({3}), vec({4})}}, 5.0f};
  EXPECT_EQ(values(tj::tree_leaves(layer)),
            (std::vector<std::vector<float>>{{2}, {1}, {3}, {4}, {5}}));
  EXPECT_EQ(values(tj::tree_leaves(layer)), values(tj::tree_flatten(layer).leaves));
}

TEST(PytreeRegistration, SeventeenFieldsInTheGlobalNamespace) {
  Wide w;
  Array* fields[] = {&w.f0,  &w.f1,  &w.f2,  &w.f3,  &w.f4,  &w.f5,  &w.f6,  &w.f7, &w.f8,
                     &w.f9,  &w.f10, &w.f11, &w.f12, &w.f13, &w.f14, &w.f15, &w.f16};
  for (int i = 0; i < 17; ++i) *fields[i] = vec({static_cast<float>(i)});
  auto [leaves, def] = tj::tree_flatten(w);
  ASSERT_EQ(leaves.size(), 17u);
  for (int i = 0; i < 17; ++i) EXPECT_EQ(leaves[i].item<float>(), static_cast<float>(i));
  EXPECT_EQ(def.str(),
            "PyTreeDef(Wide(f0=*, f1=*, f2=*, f3=*, f4=*, f5=*, f6=*, f7=*, f8=*, f9=*, f10=*, "
            "f11=*, f12=*, f13=*, f14=*, f15=*, f16=*))");
  Wide back = tj::tree_unflatten<Wide>(def, leaves);
  EXPECT_EQ(back.f16.item<float>(), 16.0f);
}

TEST(PytreeDetail, LeafPaths) {
  Array x = vec({1});
  Layer layer{{{"k", x}, {"j", x}}, {Params{x, x}, Params{x, x}}, 1.0f};
  EXPECT_EQ(tj::detail::leaf_paths(tj::tree_flatten(layer).def),
            (std::vector<std::string>{".w[\"j\"]", ".w[\"k\"]", ".sub[0].weight", ".sub[0].bias",
                                      ".sub[1].weight", ".sub[1].bias", ".scale"}));
  EXPECT_EQ(tj::detail::leaf_paths(
                tj::tree_flatten(std::tuple<Array, std::array<Array, 2>>{x, {x, x}}).def),
            (std::vector<std::string>{"<0>", "<1>[0]", "<1>[1]"}));
  EXPECT_EQ(tj::detail::leaf_paths(tj::tree_flatten(x).def), (std::vector<std::string>{""}));
  EXPECT_TRUE(tj::detail::leaf_paths(tj::TreeDef()).empty());
}

TEST(PytreeDetail, ArrayifiedAndIsPytree) {
  using tj::detail::arrayified_t;
  using tj::detail::is_pytree_v;
  static_assert(std::is_same_v<arrayified_t<int>, Array>);
  static_assert(std::is_same_v<arrayified_t<const double&>, Array>);
  static_assert(std::is_same_v<arrayified_t<Array>, Array>);
  static_assert(std::is_same_v<arrayified_t<std::tuple<int, Array, std::vector<float>>>,
                               std::tuple<Array, Array, std::vector<Array>>>);
  static_assert(std::is_same_v<arrayified_t<std::map<std::string, std::pair<double, bool>>>,
                               std::map<std::string, std::pair<Array, Array>>>);
  static_assert(std::is_same_v<arrayified_t<std::array<uint32_t, 3>>, std::array<Array, 3>>);
  static_assert(std::is_same_v<arrayified_t<Layer>, Layer>);  // structs stay as they are

  static_assert(is_pytree_v<Array> && is_pytree_v<float> && is_pytree_v<const Params&>);
  static_assert(is_pytree_v<std::map<std::string, std::tuple<int, std::vector<Layer>>>>);
  static_assert(is_pytree_v<Wide> && is_pytree_v<std::array<other::Params, 2>>);
  static_assert(!is_pytree_v<Unregistered> && !is_pytree_v<std::string>);
  static_assert(!is_pytree_v<std::vector<std::string>> && !is_pytree_v<std::map<int, Array>>);
  static_assert(!is_pytree_v<std::tuple<Array, Unregistered>>);
  SUCCEED();
}

}  // namespace

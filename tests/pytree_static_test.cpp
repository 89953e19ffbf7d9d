// Pytree aux data and key paths: tj::Static<T> jit arguments (JAX's static_argnums),
// TRACEJIT_PYTREE_STATIC fields kept in the TreeDef, tree_flatten_with_path and keystr with
// JAX's spelling.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace statics {
struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

struct Layer {
  Array w;
  float scale = 1.f;
  std::string name;
};
TRACEJIT_PYTREE(Layer, w);
TRACEJIT_PYTREE_STATIC(Layer, scale, name);

struct NoHash {
  int n = 0;
  bool operator==(const NoHash&) const = default;
};
struct NoEq {
  int n = 0;
  template <class H>
  friend H AbslHashValue(H h, const NoEq& x) {
    return H::combine(std::move(h), x.n);
  }
};
}  // namespace statics

namespace {

using statics::Layer;
using statics::Params;

TEST(Static, ValuesAreInTheCacheKeyAndExplained) {
  int calls = 0;
  auto scaled = tj::jit(
      [&](const Array& x, tj::Static<int> n) {
        ++calls;
        return x * static_cast<float>(n.value);
      },
      tj::JitOptions{.name = "scaled", .explain_retraces = true});
  const Array x = tj::array({1.f, 2.f});
  EXPECT_EQ(scaled(x, tj::Static<int>{2}).to_vector<float>(), (std::vector<float>{2, 4}));
  testing::internal::CaptureStderr();
  EXPECT_EQ(scaled(x, tj::Static<int>{3}).to_vector<float>(), (std::vector<float>{3, 6}));
  const std::string why = testing::internal::GetCapturedStderr();
  EXPECT_NE(why.find("Static(2)"), std::string::npos) << why;
  EXPECT_NE(why.find("Static(3)"), std::string::npos) << why;
  EXPECT_EQ(scaled(x, tj::Static<int>{2}).to_vector<float>(), (std::vector<float>{2, 4}));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(scaled.stats().cache_hits, 1);
  // A Static has no leaves; its value rides in the TreeDef.
  auto [leaves, def] = tj::tree_flatten(std::tuple{x, tj::Static<std::string>{"relu"}});
  EXPECT_EQ(leaves.size(), 1u);
  EXPECT_EQ(def.str(), "PyTreeDef((*, Static('relu')))");
  auto back = tj::tree_unflatten<std::tuple<Array, tj::Static<std::string>>>(def, leaves);
  EXPECT_EQ(std::get<1>(back).value, "relu");
}

// Whether tj::Static<T> names a type: its StaticValue constraint holds.
template <class T>
concept StaticOf = requires { typename tj::Static<T>; };

TEST(Static, TypeWithoutHashDoesNotCompile) {
  static_assert(StaticOf<int> && StaticOf<std::string> && StaticOf<std::tuple<int, float>>);
  static_assert(!StaticOf<statics::NoHash>);   // == but no absl::Hash
  static_assert(!StaticOf<statics::NoEq>);     // absl::Hash but no ==
  static_assert(!tj::StaticValue<statics::NoHash>);
}

TEST(PytreeStatic, FieldsKeptComparedHashedAndRestored) {
  const Layer a{tj::array({1.f, 2.f}), 0.5f, "dense"};
  auto [leaves, def] = tj::tree_flatten(a);
  EXPECT_EQ(leaves.size(), 1u);
  EXPECT_EQ(def.str(), "PyTreeDef(Layer(w=*)[scale=0.5, name='dense'])");
  Layer b = tj::tree_unflatten<Layer>(def, leaves);
  EXPECT_EQ(b.scale, 0.5f);
  EXPECT_EQ(b.name, "dense");
  EXPECT_EQ(b.w.to_vector<float>(), (std::vector<float>{1, 2}));
  const tj::TreeDef other = tj::tree_flatten(Layer{a.w, 0.25f, "dense"}).def;
  EXPECT_NE(def, other);
  EXPECT_NE(absl::Hash<tj::TreeDef>{}(def), absl::Hash<tj::TreeDef>{}(other));
  EXPECT_EQ(def, tj::tree_flatten(Layer{tj::zeros({2}), 0.5f, "dense"}).def);
  // tree_map keeps them too.
  Layer doubled = tj::tree_map([](const Array& v) { return v * 2; }, a);
  EXPECT_EQ(doubled.scale, 0.5f);
  EXPECT_EQ(doubled.name, "dense");
}

TEST(PytreeStatic, PartOfJitsCacheKeyAndReadableWhileTracing) {
  int traces = 0;
  auto apply = tj::jit([&](const Layer& l, const Array& x) {
    ++traces;
    return l.w * x * l.scale;  // a C++ float at trace time
  });
  const Array x = tj::array({1.f, 1.f});
  EXPECT_EQ(apply(Layer{tj::array({2.f, 4.f}), 0.5f, "a"}, x).to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(apply(Layer{tj::array({2.f, 4.f}), 2.f, "a"}, x).to_vector<float>(), (std::vector<float>{4, 8}));
  EXPECT_EQ(apply(Layer{tj::array({1.f, 1.f}), 0.5f, "a"}, x).to_vector<float>(), (std::vector<float>{0.5f, 0.5f}));
  EXPECT_EQ(traces, 2);
  // grad returns the argument's type with its static fields.
  Layer g = tj::grad([](const Layer& l) { return tj::sum(l.w) * l.scale; })(Layer{tj::ones({2}), 3.f, "g"});
  EXPECT_EQ(g.w.to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_EQ(g.scale, 3.f);
  EXPECT_EQ(g.name, "g");
}

TEST(KeyPaths, JaxSpelling) {
  std::map<std::string, std::vector<Params>> tree{
      {"layers", {Params{tj::ones({}), tj::zeros({})}, Params{tj::ones({}), tj::zeros({})}}},
      {"lr", {}}};
  auto with_path = tj::tree_flatten_with_path(std::tuple{tree, Array(1.f)});
  std::vector<std::string> paths;
  for (const auto& [path, leaf] : with_path) paths.push_back(tj::keystr(path));
  EXPECT_EQ(paths, (std::vector<std::string>{"[0]['layers'][0].weight", "[0]['layers'][0].bias",
                                              "[0]['layers'][1].weight", "[0]['layers'][1].bias",
                                              "[1]"}));
  auto single = tj::tree_flatten_with_path(Array(2.f));
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(tj::keystr(single[0].first), "");
  EXPECT_EQ(single[0].second.item<float>(), 2.f);
  std::map<std::string, Array> opt{{"lr", Array(0.1f)}};
  EXPECT_EQ(tj::keystr(tj::tree_flatten_with_path(opt)[0].first), "['lr']");
}

}  // namespace

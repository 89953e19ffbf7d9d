// Dtype promotion (base/promotion.cpp) against two independent references: JAX's type lattice
// (the edge list of docs/type_promotion.rst, joined here by a graph search and canonicalised
// as JAX without x64 does for integers), and JAX's published binary promotion table, copied by
// hand. Every pair of dtypes, weak and strong, through the table and through real ops in
// eager, jitted and differentiated code; strict mode, its TypeError and jit's cache key.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/promotion.h"
#include "promotion_mode.h"
#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

const DType kDtypes[] = {DType::bool_, DType::u32, DType::i32, DType::f32, DType::f64};

// JAX's lattice, verbatim from the source of docs/type_promotion.rst.
const std::map<std::string, std::vector<std::string>> kLattice = {
    {"b1", {"i*"}},        {"u1", {"u2", "i2"}}, {"u2", {"i4", "u4"}}, {"u4", {"u8", "i8"}},
    {"u8", {"f*"}},        {"i*", {"u1", "i1"}}, {"i1", {"i2"}},       {"i2", {"i4"}},
    {"i4", {"i8"}},        {"i8", {"f*"}},       {"f*", {"c*", "f2", "bf"}},
    {"bf", {"f4"}},        {"f2", {"f4"}},       {"f4", {"c8", "f8"}}, {"f8", {"c16"}},
    {"c*", {"c8"}},        {"c8", {"c16"}},      {"c16", {}},
};

std::set<std::string> upper_set(const std::string& n) {
  std::set<std::string> seen{n};
  std::vector<std::string> todo{n};
  while (!todo.empty()) {
    std::string x = todo.back();
    todo.pop_back();
    for (const std::string& y : kLattice.at(x))
      if (seen.insert(y).second) todo.push_back(y);
  }
  return seen;
}

// The least upper bound: the common upper bound below all the others.
std::string join(const std::string& a, const std::string& b) {
  std::set<std::string> ua = upper_set(a), ub = upper_set(b), common;
  for (const std::string& x : ua)
    if (ub.contains(x)) common.insert(x);
  for (const std::string& x : common) {
    bool least = true;
    for (const std::string& y : common) least = least && upper_set(x).contains(y);
    if (least) return x;
  }
  ADD_FAILURE() << "no join of " << a << " and " << b;
  return "";
}

std::string strong_node(DType d) {
  switch (d) {
    case DType::bool_: return "b1";
    case DType::u32: return "u4";
    case DType::i32: return "i4";
    case DType::f32: return "f4";
    case DType::f64: return "f8";
  }
  return "";
}
// Python's int and float; JAX has no weak bool.
std::string node(DType d, bool weak) {
  if (!weak || d == DType::bool_) return strong_node(d);
  return tj::is_float(d) ? "f*" : "i*";
}

// A lattice node as tracejit's (dtype, weak): 64-bit integers become i32 as in JAX without x64
// (tracejit has no i64), weak nodes the default int and float, weakly typed.
tj::detail::WeakDType canonical(const std::string& n) {
  static const std::map<std::string, tj::detail::WeakDType> kCanon = {
      {"b1", {DType::bool_, false}}, {"u4", {DType::u32, false}}, {"i4", {DType::i32, false}},
      {"i8", {DType::i32, false}},   {"f4", {DType::f32, false}}, {"f8", {DType::f64, false}},
      {"i*", {DType::i32, true}},    {"f*", {DType::f32, true}}};
  return kCanon.at(n);
}

// jnp.result_type of two values by the lattice: all weak joins the strong types and stays weak.
tj::detail::WeakDType lattice_result(DType a, bool wa, DType b, bool wb) {
  if (wa && wb) return {canonical(join(strong_node(a), strong_node(b))).dtype, true};
  return canonical(join(node(a, wa), node(b, wb)));
}

Array value_of(DType d, bool weak) {
  if (!weak) return tj::ones({}, d);
  switch (d) {
    case DType::bool_: return Array(true);
    case DType::u32: return Array(1u);
    case DType::i32: return Array(1);
    case DType::f32: return Array(1.f);
    case DType::f64: return Array(1.0);
  }
  return Array();
}

std::string name(DType d, bool weak) { return std::string(tj::dtype_name(d)) + (weak ? " (weak)" : ""); }

TEST(Promotion, TableEqualsJaxLatticeForEveryPair) {
  for (DType a : kDtypes)
    for (bool wa : {false, true})
      for (DType b : kDtypes)
        for (bool wb : {false, true}) {
          const tj::detail::WeakDType want = lattice_result(a, wa, b, wb);
          const tj::detail::WeakDType got = tj::detail::promote_pair({a, wa}, {b, wb});
          EXPECT_EQ(got.dtype, want.dtype) << name(a, wa) << " with " << name(b, wb);
          EXPECT_EQ(got.weak, want.weak) << name(a, wa) << " with " << name(b, wb);
        }
}

TEST(Promotion, TableEqualsJaxPublishedTable) {
  // Rows and columns b1 u4 i4 f4 f8 i* f* of the table in JAX's "Type promotion semantics".
  const std::vector<std::string> nodes = {"b1", "u4", "i4", "f4", "f8", "i*", "f*"};
  const std::vector<std::vector<std::string>> table = {
      {"b1", "u4", "i4", "f4", "f8", "i*", "f*"}, {"u4", "u4", "i8", "f4", "f8", "u4", "f*"},
      {"i4", "i8", "i4", "f4", "f8", "i4", "f*"}, {"f4", "f4", "f4", "f4", "f8", "f4", "f4"},
      {"f8", "f8", "f8", "f8", "f8", "f8", "f8"}, {"i*", "u4", "i4", "f4", "f8", "i*", "f*"},
      {"f*", "f*", "f*", "f4", "f8", "f*", "f*"}};
  auto as_value = [](const std::string& n) {
    return n == "i*" ? tj::detail::WeakDType{DType::i32, true}
         : n == "f*" ? tj::detail::WeakDType{DType::f32, true}
                     : canonical(n);
  };
  for (size_t r = 0; r < nodes.size(); ++r)
    for (size_t c = 0; c < nodes.size(); ++c) {
      const tj::detail::WeakDType got = tj::detail::promote_pair(as_value(nodes[r]), as_value(nodes[c]));
      EXPECT_EQ(got, canonical(table[r][c])) << nodes[r] << " with " << nodes[c];
      EXPECT_EQ(join(nodes[r], nodes[c]), table[r][c]) << "lattice vs table at " << nodes[r] << ", " << nodes[c];
    }
}

TEST(Promotion, EveryPairThroughOpsEagerJittedAndTraced) {
  auto pick = [](const Array& a, const Array& b) { return tj::where(true, a, b); };
  auto jitted = tj::jit(pick);
  for (DType a : kDtypes)
    for (bool wa : {false, true})
      for (DType b : kDtypes)
        for (bool wb : {false, true}) {
          const tj::detail::WeakDType want = lattice_result(a, wa, b, wb);
          const Array x = value_of(a, wa), y = value_of(b, wb);
          for (const Array& r : {pick(x, y), jitted(x, y)}) {
            EXPECT_EQ(r.dtype(), want.dtype) << name(a, wa) << " with " << name(b, wb);
            EXPECT_EQ(r.weak_type(), want.weak) << name(a, wa) << " with " << name(b, wb);
          }
          if (want.dtype != DType::bool_) {
            // Arithmetic promotes alike (bool arithmetic stays a TypeError of its own).
            const Array s = tj::maximum(x, y);
            EXPECT_EQ(s.dtype(), want.dtype) << name(a, wa) << " max " << name(b, wb);
          }
        }
}

TEST(Promotion, JaxExamples) {
  Array r = tj::arange(3) * 0.5;  // jnp.arange(3) * 0.5: f32 [0, 0.5, 1], weakly typed
  EXPECT_EQ(r.dtype(), DType::f32);
  EXPECT_TRUE(r.weak_type());
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 0.5f, 1}));
  Array n = tj::arange(3) + 1;  // a weak int does not widen
  EXPECT_EQ(n.dtype(), DType::i32);
  EXPECT_FALSE(n.weak_type());
  Array x = tj::array({1.5f, 2.5f});
  Array y = tj::array({0.25, 0.5});
  Array s = x + y;  // f32 with f64: f64, exactly 1.75 and 3.0
  EXPECT_EQ(s.dtype(), DType::f64);
  EXPECT_EQ(s.to_vector<double>(), (std::vector<double>{1.75, 3.0}));
  Array iu = tj::array({-1, 2}) + tj::array({3u, 4u});  // i32 with u32: i32
  EXPECT_EQ(iu.dtype(), DType::i32);
  EXPECT_EQ(iu.to_vector<int32_t>(), (std::vector<int32_t>{2, 6}));
  Array bi = tj::array({true, false}) + tj::array({5, 7});  // bool with i32: i32
  EXPECT_EQ(bi.to_vector<int32_t>(), (std::vector<int32_t>{6, 7}));
  Array lt = tj::array({1, 5}) < tj::array({1.5f, 2.f});  // compared in f32
  EXPECT_EQ(lt.to_vector<bool>(), (std::vector<bool>{true, false}));
  Array q = tj::array({7, -7}) / tj::array({2, 2});  // true division of ints: f32
  EXPECT_EQ(q.dtype(), DType::f32);
  EXPECT_EQ(q.to_vector<float>(), (std::vector<float>{3.5f, -3.5f}));
  Array e = tj::exp(tj::arange(2));  // float functions of ints compute in f32
  EXPECT_EQ(e.dtype(), DType::f32);
  Array m = tj::matmul(tj::array({1, 2}, {1, 2}), tj::array({0.5f, 0.25f}, {2, 1}));
  EXPECT_EQ(m.dtype(), DType::f32);
  EXPECT_EQ(m.item<float>(), 1.0f);
  Array c = tj::concatenate({tj::array({1}), tj::array({2.5})});
  EXPECT_EQ(c.dtype(), DType::f64);
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{1, 2.5}));
  EXPECT_EQ(tj::promote_types(DType::u32, DType::i32), DType::i32);
  EXPECT_EQ(tj::promote_types(DType::i32, DType::f32), DType::f32);
}

TEST(Promotion, GradientOfPromotedOperandHasItsDtype) {
  // d/dx sum(x * y) = y, converted back to x's dtype (f32) from the f64 product.
  const Array y = tj::array({0.5, -2.0, 3.0});
  auto f = [&](const Array& x) { return tj::sum(x * y); };
  const Array x = tj::array({1.f, 2.f, 3.f});
  for (const Array& g : {tj::grad(f)(x), tj::jit(tj::grad(f))(x)}) {
    EXPECT_EQ(g.dtype(), DType::f32);
    EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{0.5f, -2.f, 3.f}));
  }
  auto [out, tangent] = tj::jvp(f, std::tuple{x}, std::tuple{tj::ones({3})});
  EXPECT_EQ(out.dtype(), DType::f64);
  EXPECT_DOUBLE_EQ(tangent.item<double>(), 1.5);
  // An integer operand takes no gradient; the float one gets the integer's values.
  auto g = [](const Array& w, const Array& k) { return tj::sum(w * k); };
  Array gw = tj::grad(g)(tj::array({1.f, 1.f}), tj::array({3, 4}));
  EXPECT_EQ(gw.to_vector<float>(), (std::vector<float>{3, 4}));
}

TEST(Promotion, LoopCarryFollowsWeakRule) {
  // A weak int init takes the body's f32; a strong i32 init does not.
  auto body = [](const Array& i, const Array& c) { return c + tj::astype(i, DType::f32) * 0.5f; };
  Array r = tj::fori_loop(0, 4, body, Array(0));
  EXPECT_EQ(r.dtype(), DType::f32);
  EXPECT_EQ(r.item<float>(), 3.f);  // 0.5 * (0 + 1 + 2 + 3)
  EXPECT_THROW(tj::fori_loop(0, 4, body, tj::zeros({}, DType::i32)), tj::TypeError);
}

TEST(Promotion, StrictModeRaisesAndIsPartOfJitsKey) {
  auto add = tj::jit([](const Array& a, const Array& b) { return a + b; },
                     tj::JitOptions{.name = "mixed_add", .explain_retraces = true});
  const Array i = tj::array({1, 2}), f = tj::array({0.5f, 0.25f});
  EXPECT_EQ(add(i, f).to_vector<float>(), (std::vector<float>{1.5f, 2.25f}));
  {
    StrictPromotion strict;
    EXPECT_EQ(tj::dtype_promotion(), tj::DTypePromotion::strict);
    const std::string msg = ThrowMessage<tj::TypeError>([&] { i + f; });
    for (const char* part : {"[add]", "i32[2]", "f32[2]", "tj::astype", "strict"})
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
    testing::internal::CaptureStderr();
    EXPECT_THROW(add(i, f), tj::TypeError);  // the standard-mode executable is not reused
    const std::string why = testing::internal::GetCapturedStderr();
    EXPECT_NE(why.find("dtype promotion: standard -> strict"), std::string::npos) << why;
    // Weak scalars still promote; equal dtypes need nothing.
    EXPECT_EQ((tj::arange(3) * 0.5).dtype(), DType::f32);
    EXPECT_EQ(add(f, f).to_vector<float>(), (std::vector<float>{1.f, 0.5f}));
  }
  EXPECT_EQ(add(i, f).to_vector<float>(), (std::vector<float>{1.5f, 2.25f}));
  EXPECT_EQ(add.stats().compiles, 2);  // (i, f) standard and (f, f) strict; the last call hits
}

}  // namespace

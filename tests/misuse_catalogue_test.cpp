// The misuse catalogue (issue 6): a systematic walk over the ways a user can get tracejit wrong.
// Each case misuses a function (mostly a jitted one, so the error is raised while tracing),
// expects exactly the right tj::Error subclass with a message that starts with the operation in
// brackets and names the shapes/dtypes and the fix, and then uses the same function correctly
// and checks its values (derived by hand), so that no misuse leaves a function unusable.
// errors_test.cpp covers the eager messages one by one; here every case is a parameterized test
// of its own. The demo CLI's usage errors, an uncreatable dump directory and exceptions thrown
// by the user's own function follow the table.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include "absl/strings/str_split.h"
#include "trace/trace_state.h"
#include "promotion_mode.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using testing::ElementsAre;
using testing::HasSubstr;
using tj::Array;
using tj::DType;

namespace misuse {

struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

// Same fields, different type: trees of one must not unflatten as the other.
struct OtherParams {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(OtherParams, weight, bias);

// Comparable but not hashable: no jit cache key can hold it.
struct NoHash {
  int n = 0;
  bool operator==(const NoHash&) const = default;
};

}  // namespace misuse

namespace {

using misuse::OtherParams;
using misuse::Params;
using Vec = std::vector<Array>;
using Map = std::map<std::string, Array>;

Array F(const tj::Shape& shape) { return tj::zeros(shape, DType::f32); }
Array Floats(std::vector<float> v, const tj::Shape& shape) { return tj::array(v, shape); }
Array Floats(std::vector<float> v) { return tj::array(v); }
Array Ints(std::vector<int32_t> v) { return tj::array(v); }

// 0, 1, 2, ... as f32 of `shape`.
Array Iota(const tj::Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return tj::reshape(tj::astype(tj::arange(n), DType::f32), shape);
}

void ExpectFloats(const Array& a, const tj::Shape& shape, std::vector<float> want) {
  EXPECT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(a.shape(), shape);
  EXPECT_THAT(a.to_vector<float>(), testing::Pointwise(testing::FloatEq(), want));
}

// The failed call cached nothing: the one good signature was traced and compiled exactly once.
template <class J>
void ExpectCompiledOnce(const J& jitted) {
  EXPECT_EQ(jitted.stats().traces, 1);
  EXPECT_EQ(jitted.stats().compiles + jitted.stats().shared_hits, 1);  // compiled, or shared
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Probe {
  std::function<void()> misuse;  // must throw
  std::function<void()> after;   // the same function used correctly, with its values checked
};

struct Case {
  std::string name;
  std::type_index error;
  // parts[0] is the bracketed operation the message starts with; the rest must appear in it.
  std::vector<std::string> parts;
  std::function<Probe()> setup;  // fresh functions for each run
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

template <class E>
Case Expect(std::string name, std::vector<std::string> parts, std::function<Probe()> setup) {
  return Case{std::move(name), std::type_index(typeid(E)), std::move(parts), std::move(setup)};
}

std::string ErrorName(std::type_index t) {
  const std::map<std::type_index, std::string> names = {
      {typeid(tj::Error), "tj::Error"},
      {typeid(tj::ShapeError), "tj::ShapeError"},
      {typeid(tj::TypeError), "tj::TypeError"},
      {typeid(tj::IndexError), "tj::IndexError"},
      {typeid(tj::TreeError), "tj::TreeError"},
      {typeid(tj::ConcretizationError), "tj::ConcretizationError"},
      {typeid(tj::TracerLeakError), "tj::TracerLeakError"},
      {typeid(tj::InternalError), "tj::InternalError"}};
  auto it = names.find(t);
  return it == names.end() ? t.name() : it->second;
}

// Array operations, each misused inside a jitted function.
std::vector<Case> ArrayOpCases() {
  std::vector<Case> cases;
  cases.push_back(
      Expect<tj::ShapeError>("AddBroadcastMismatch", {"[add]", "f32[3]", "f32[4]", "reshape"}, [] {
        auto add = tj::jit([](const Array& a, const Array& b) { return a + b; });
        return Probe{
            [=] { add(F({3}), F({4})); },
            [=] {
              ExpectFloats(add(Floats({1, 2, 3}), Floats({10, 20, 30})), {3}, {11, 22, 33});
              ExpectCompiledOnce(add);
            }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("MulMixedDtypes", {"[mul]", "f32[2]", "f64[2]", "tj::astype"}, [] {
        auto mul = tj::jit([](const Array& a, const Array& b) { return a * b; });
        return Probe{[=] {
                       StrictPromotion strict;
                       mul(F({2}), tj::zeros({2}, DType::f64));
                     },
                     [=] {
                       ExpectFloats(mul(Floats({2, 3}), Floats({4, 5})), {2}, {8, 15});
                       ExpectCompiledOnce(mul);
                     }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("CompareMixedDtypes", {"[lt]", "i32[2]", "f32[2]", "tj::astype"}, [] {
        auto lt = tj::jit([](const Array& a, const Array& b) { return a < b; });
        return Probe{[=] {
                       StrictPromotion strict;
                       lt(Ints({1, 5}), Floats({3, 2}));
                     },
                     [=] {
                       Array r = lt(Ints({1, 5}), Ints({3, 2}));
                       EXPECT_EQ(r.dtype(), DType::bool_);
                       EXPECT_EQ(r.to_vector<bool>(), (std::vector<bool>{true, false}));
                       ExpectCompiledOnce(lt);
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>("BoolArithmetic", {"[add]", "bool[2]", "tj::astype"}, [] {
    auto add = tj::jit([](const Array& a, const Array& b) { return a + b; });
    return Probe{[=] { add(tj::zeros({2}, DType::bool_), tj::ones({2}, DType::bool_)); },
                 [=] {
                   EXPECT_EQ(add(Ints({1, 2}), Ints({3, 4})).to_vector<int32_t>(),
                             (std::vector<int32_t>{4, 6}));
                 }};
  }));
  cases.push_back(Expect<tj::ShapeError>(
      "MatmulInnerDimensions", {"[matmul]", "f32[2,3]", "3 and 2", "transpose"}, [] {
        auto mm = tj::jit([](const Array& a, const Array& b) { return tj::matmul(a, b); });
        return Probe{[=] {
                       mm(F({2, 3}), F({2, 3}));
                     },
                     [=] {
                       // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[5+14, 6+16], [15+28, 18+32]].
                       ExpectFloats(mm(Floats({1, 2, 3, 4}, {2, 2}), Floats({5, 6, 7, 8}, {2, 2})),
                                    {2, 2}, {19, 22, 43, 50});
                       ExpectCompiledOnce(mm);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "MatmulBatchDims", {"[matmul]", "f32[2,2,2]", "f32[3,2,2]", "batch dimensions"}, [] {
        auto mm = tj::jit([](const Array& a, const Array& b) { return tj::matmul(a, b); });
        return Probe{[=] {
                       mm(F({2, 2, 2}), F({3, 2, 2}));
                     },
                     [=] {
                       // 1*4 + 2*5 + 3*6.
                       ExpectFloats(mm(Floats({1, 2, 3}), Floats({4, 5, 6})), {}, {32});
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "ReshapeSize", {"[reshape]", "f32[2,3]", "[4]", "sizes 6 and 4 differ", "must have 6"}, [] {
        auto flat4 = tj::jit([](const Array& a) { return tj::reshape(a, {4}); });
        return Probe{[=] {
                       flat4(F({2, 3}));
                     },
                     [=] {
                       ExpectFloats(flat4(Floats({1, 2, 3, 4}, {2, 2})), {4}, {1, 2, 3, 4});
                       ExpectCompiledOnce(flat4);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "ReshapeMinusOneDoesNotDivide", {"[reshape]", "f32[6]", "[-1,4]", "divide"}, [] {
        auto rows = tj::jit([](const Array& a) { return tj::reshape(a, {-1, 4}); });
        return Probe{[=] { rows(F({6})); },
                     [=] {
                       ExpectFloats(rows(Iota({8})), {2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "BroadcastToIncompatible",
      {"[broadcast_to]", "f32[3]", "[2,4]", "neither 1 nor 4", "only size-1 dimensions stretch"},
      [] {
        auto widen = tj::jit([](const Array& a) { return tj::broadcast_to(a, {2, 4}); });
        return Probe{[=] { widen(F({3})); },
                     [=] {
                       ExpectFloats(widen(Floats({1, 2, 3, 4})), {2, 4}, {1, 2, 3, 4, 1, 2, 3, 4});
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "TransposePermutationLength", {"[transpose]", "f32[2,3,4]", "needs 3 axes"}, [] {
        auto t = tj::jit([](const Array& a) { return tj::transpose(a, {1, 0}); });
        return Probe{[=] {
                       t(F({2, 3, 4}));
                     },
                     [=] {
                       ExpectFloats(t(Iota({2, 3})), {3, 2}, {0, 3, 1, 4, 2, 5});
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "TransposeRepeatedAxis", {"[transpose]", "f32[2,3]", "appears twice", "at most once"}, [] {
        // The permutation is C++ state read while tracing: a failed trace must cache nothing,
        // so that fixing the state and calling again with the same signature works.
        auto perm = std::make_shared<tj::Axes>(tj::Axes{0, 0});
        auto t = tj::jit([perm](const Array& a) { return tj::transpose(a, *perm); });
        return Probe{[=] {
                       t(Iota({2, 3}));
                     },
                     [=] {
                       *perm = {1, 0};
                       ExpectFloats(t(Iota({2, 3})), {3, 2}, {0, 3, 1, 4, 2, 5});
                       ExpectCompiledOnce(t);
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "SumAxisOutOfRange", {"[reduce_sum]", "axis 2", "f32[2,3]", "-2 to 1"}, [] {
        auto s = tj::jit([](const Array& a) { return tj::sum(a, {2}); });
        return Probe{[=] {
                       s(F({2, 3}));
                     },
                     [=] {
                       // [[[0,1,2],[3,4,5]]] summed over its last axis.
                       ExpectFloats(s(Iota({1, 2, 3})), {1, 2}, {3, 12});
                       ExpectCompiledOnce(s);
                     }};
      }));
  cases.push_back(
      Expect<tj::IndexError>("MeanNegativeAxisOutOfRange", {"[mean]", "axis -3", "f32[2,3]"}, [] {
        auto m = tj::jit([](const Array& a) { return tj::mean(a, {-3}); });
        return Probe{[=] {
                       m(F({2, 3}));
                     },
                     [=] {
                       // Mean over axis 0 of [[[1,2]],[[3,6]]].
                       ExpectFloats(m(Floats({1, 2, 3, 6}, {2, 1, 2})), {1, 2}, {2, 4});
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "MaxRepeatedAxes", {"[reduce_max]", "repeated", "(1, -1)", "i32[2,3]", "at most once"}, [] {
        auto axes = std::make_shared<tj::Axes>(tj::Axes{1, -1});
        auto m = tj::jit([axes](const Array& a) { return tj::max(a, *axes); });
        Array x = tj::array({1, 5, 2, 7, 0, 3}, {2, 3});
        return Probe{[=] { m(x); },
                     [=] {
                       *axes = {1};
                       EXPECT_EQ(m(x).to_vector<int32_t>(), (std::vector<int32_t>{5, 7}));
                       ExpectCompiledOnce(m);
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "SliceOutOfRange", {"[slice]", "[1, 5)", "f32[3]", "start <= limit <= 3"}, [] {
        auto s = tj::jit([](const Array& a) { return tj::slice(a, {1}, {5}); });
        return Probe{[=] { s(F({3})); }, [=] { ExpectFloats(s(Iota({6})), {4}, {1, 2, 3, 4}); }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "SliceRankMismatch", {"[slice]", "f32[3,4]", "needs 2 start and limit"}, [] {
        auto s = tj::jit([](const Array& a) { return tj::slice(a, {0}, {1}); });
        return Probe{[=] { s(F({3, 4})); }, [=] { ExpectFloats(s(Floats({7, 8, 9})), {1}, {7}); }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "ConcatenateShapes",
      {"[concatenate]", "f32[2,3]", "f32[2,4]", "equal shapes except along axis 0"}, [] {
        auto cat = tj::jit([](const Array& a, const Array& b) { return tj::concatenate({a, b}); });
        return Probe{[=] {
                       cat(F({2, 3}), F({2, 4}));
                     },
                     [=] {
                       ExpectFloats(cat(Floats({1, 2}), Floats({3})), {3}, {1, 2, 3});
                       ExpectCompiledOnce(cat);
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "ConcatenateDtypes", {"[concatenate]", "f32[2]", "i32[2]", "tj::astype"}, [] {
        auto cat = tj::jit([](const Array& a, const Array& b) { return tj::concatenate({a, b}); });
        return Probe{[=] {
                       StrictPromotion strict;
                       cat(F({2}), Ints({1, 2}));
                     },
                     [=] {
                       ExpectFloats(cat(Floats({1, 2}), Floats({3, 4})), {4}, {1, 2, 3, 4});
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "ConcatenateAxisOutOfRange", {"[concatenate]", "axis 1", "f32[2]", "-1 to 0"}, [] {
        auto cat = tj::jit([](const Array& a, const Array& b) {
          return tj::concatenate({a, b}, 1);
        });
        return Probe{[=] { cat(F({2}), F({2})); },
                     [=] {
                       ExpectFloats(cat(Floats({1, 2}, {2, 1}), Floats({3, 4}, {2, 1})), {2, 2},
                                    {1, 3, 2, 4});
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "BitcastSizeMismatch", {"[bitcast", "f64[2]", "f32", "of one size"}, [] {
        auto as_f32 = tj::jit([](const Array& a) { return tj::bitcast(a, DType::f32); });
        return Probe{[=] { as_f32(tj::zeros({2}, DType::f64)); },
                     [=] {
                       // IEEE-754 single: 0x3F800000 is 1.0, 0x40000000 is 2.0.
                       Array bits = tj::array<uint32_t>({0x3F800000u, 0x40000000u}, {2});
                       ExpectFloats(as_f32(bits), {2}, {1, 2});
                     }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("BitcastBool", {"[bitcast", "bool[2]", "u32", "non-bool"}, [] {
        auto as_u32 = tj::jit([](const Array& a) { return tj::bitcast(a, DType::u32); });
        return Probe{[=] { as_u32(tj::zeros({2}, DType::bool_)); },
                     [=] {
                       EXPECT_EQ(as_u32(Floats({1, -2})).to_vector<uint32_t>(),
                                 (std::vector<uint32_t>{0x3F800000u, 0xC0000000u}));
                     }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("ShiftOfFloats", {"[shift_left]", "f32[2]", "i32 or u32"}, [] {
        auto shl = tj::jit([](const Array& a, const Array& b) { return a << b; });
        return Probe{
            [=] { shl(F({2}), F({2})); },
            [=] {
              Array a = tj::array<uint32_t>({1u, 3u}, {2}), b = tj::array<uint32_t>({4u, 1u}, {2});
              EXPECT_EQ(shl(a, b).to_vector<uint32_t>(), (std::vector<uint32_t>{16, 6}));
            }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("BitwiseAndOfFloats", {"[and]", "f64[2]", "bool, i32 or u32"}, [] {
        auto band = tj::jit([](const Array& a, const Array& b) { return a & b; });
        return Probe{[=] { band(tj::zeros({2}, DType::f64), tj::zeros({2}, DType::f64)); },
                     [=] {
                       // 0b1100 & 0b1010, 0b1010 & 0b0110.
                       EXPECT_EQ(band(Ints({12, 10}), Ints({10, 6})).to_vector<int32_t>(),
                                 (std::vector<int32_t>{8, 2}));
                     }};
      }));
  cases.push_back(
      Expect<tj::IndexError>("IndexOutOfRange", {"[index]", "index 3", "f32[3,2]", "-3 to 2"}, [] {
        auto row3 = tj::jit([](const Array& a) { return a[3]; });
        return Probe{[=] {
                       row3(F({3, 2}));
                     },
                     [=] {
                       ExpectFloats(row3(Iota({4, 2})), {2}, {6, 7});
                       ExpectCompiledOnce(row3);
                     }};
      }));
  cases.push_back(Expect<
                  tj::IndexError>("IndexOfScalar", {"[index]", "0-d", "f32[]", "item()"}, [] {
    auto first = tj::jit([](const Array& a) { return a[0]; });
    return Probe{[=] { first(Array(1.f)); }, [=] { ExpectFloats(first(Floats({5, 6})), {}, {5}); }};
  }));
  cases.push_back(
      Expect<tj::ShapeError>("WhereShapes", {"[select]", "bool[2]", "f32[3]", "reshape"}, [] {
        auto pick = tj::jit(
            [](const Array& c, const Array& a, const Array& b) { return tj::where(c, a, b); });
        return Probe{[=] { pick(tj::zeros({2}, DType::bool_), F({3}), F({3})); },
                     [=] {
                       Array c = tj::array({true, false});
                       ExpectFloats(pick(c, Floats({1, 2}), Floats({3, 4})), {2}, {1, 4});
                     }};
      }));
  cases.push_back(
      Expect<tj::ShapeError>("MaxOfEmpty", {"[reduce_max]", "f32[0]", "no identity"}, [] {
        auto m = tj::jit([](const Array& a) { return tj::max(a); });
        return Probe{[=] { m(F({0})); }, [=] { ExpectFloats(m(Floats({3, -1, 7})), {}, {7}); }};
      }));
  cases.push_back(
      Expect<tj::ShapeError>("FullNegativeDimension", {"[full]", "[2,-1]", "0 or more"}, [] {
        auto shape = std::make_shared<tj::Shape>(tj::Shape{2, -1});
        auto pad = tj::jit([shape](const Array& x) { return x + tj::zeros(*shape); });
        return Probe{[=] { pad(Array(1.f)); },
                     [=] {
                       *shape = {2};
                       ExpectFloats(pad(Array(1.f)), {2}, {1, 1});
                       ExpectCompiledOnce(pad);
                     }};
      }));
  cases.push_back(
      Expect<tj::Error>("EmptyArrayArgument", {"[jit]", "empty tj::Array", "give it a value"}, [] {
        auto twice = tj::jit([](const Array& x) { return x * 2; });
        return Probe{[=] { twice(Array()); },
                     [=] {
                       ExpectFloats(twice(Array(2.f)), {}, {4});
                       ExpectCompiledOnce(twice);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "ItemOfNonScalarResult", {"[item]", "f32[3]", "a[0]", "to_vector()"}, [] {
        auto twice = tj::jit([](const Array& x) { return x * 2; });
        return Probe{[=] {
                       twice(Floats({1, 2, 3})).item<float>();
                     },
                     [=] {
                       Array y = twice(Floats({1, 2, 3}));
                       EXPECT_FLOAT_EQ(y[1].item<float>(), 4);
                       ExpectFloats(y, {3}, {2, 4, 6});
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "TruthValueOfNonScalarResult", {"[bool]", "bool[3]", "ambiguous", "tj::max"}, [] {
        auto positive = tj::jit([](const Array& x) { return x > 0; });
        return Probe{[=] {
                       (void)static_cast<bool>(positive(Floats({-1, 0, 2})));
                     },
                     [=] {
                       EXPECT_TRUE(static_cast<bool>(tj::max(positive(Floats({-1, 0, 2})))));
                       EXPECT_FALSE(static_cast<bool>(tj::max(positive(Floats({-1, -2, 0})))));
                     }};
      }));
  cases.push_back(
      Expect<tj::ShapeError>("ArrayValueCount", {"[array]", "3 values", "[2,2]", "4 elements"}, [] {
        auto total = tj::jit([](const Array& x) { return tj::sum(x); });
        return Probe{[] {
                       tj::array({1.f, 2.f, 3.f}, {2, 2});
                     },
                     [=] {
                       ExpectFloats(total(Floats({1, 2, 3, 4}, {2, 2})), {}, {10});
                     }};
      }));
  return cases;
}

// Pytrees: structures that must match and do not.
std::vector<Case> PytreeCases() {
  std::vector<Case> cases;
  cases.push_back(Expect<tj::TreeError>(
      "UnflattenLeafCount",
      {"[tree_unflatten]", "leaf count", "PyTreeDef([*, *, *])", "3 leaves", "2 leaves",
       "tree_flatten returned"},
      [] {
        auto [leaves, def] = tj::tree_flatten(Vec{Array(1.f), Array(2.f), Array(3.f)});
        auto total = tj::jit([](const Vec& v) { return v[0] + v[1] + v[2]; });
        return Probe{[def, leaves] {
                       std::vector<Array> two(leaves.begin(), leaves.begin() + 2);
                       tj::tree_unflatten<Vec>(def, two);
                     },
                     [=] { ExpectFloats(total(tj::tree_unflatten<Vec>(def, leaves)), {}, {6}); }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "UnflattenVectorAsStdArray",
      {"[tree_unflatten]", "std::array of 3", "std::vector of 2",
       "unflatten with the type that was flattened"},
      [] {
        auto [leaves, def] = tj::tree_flatten(Vec{Array(1.f), Array(2.f)});
        return Probe{[def, leaves] { tj::tree_unflatten<std::array<Array, 3>>(def, leaves); },
                     [def, leaves] {
                       // Only the type that was flattened fits, not a std::array of that size.
                       EXPECT_THROW((tj::tree_unflatten<std::array<Array, 2>>(def, leaves)),
                                    tj::TreeError);
                       Vec two = tj::tree_unflatten<Vec>(def, leaves);
                       ASSERT_EQ(two.size(), 2u);
                       EXPECT_FLOAT_EQ(two[1].item<float>(), 2);
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "UnflattenOtherStruct", {"[tree_unflatten]", "OtherParams", "Params(weight=*, bias=*)"}, [] {
        auto [leaves, def] = tj::tree_flatten(Params{Array(2.f), Array(1.f)});
        auto predict =
            tj::jit([](const Params& p, const Array& x) { return p.weight * x + p.bias; });
        return Probe{[def, leaves] { tj::tree_unflatten<OtherParams>(def, leaves); },
                     [=] {
                       Params p = tj::tree_unflatten<Params>(def, leaves);
                       ExpectFloats(predict(p, Floats({0, 3})), {2}, {1, 7});
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "TreeMapVectorsOfDifferentLength", {"[tree_map]", "tree 1", "[*, *]", "[*, *, *]"}, [] {
        auto add = tj::jit([](const Vec& a, const Vec& b) {
          return tj::tree_map([](const Array& x, const Array& y) { return x + y; }, a, b);
        });
        return Probe{[=] {
                       add(Vec{F({}), F({})}, Vec{F({}), F({}), F({})});
                     },
                     [=] {
                       Vec r = add(Vec{Array(1.f), Array(2.f)}, Vec{Array(10.f), Array(20.f)});
                       ASSERT_EQ(r.size(), 2u);
                       EXPECT_FLOAT_EQ(r[0].item<float>(), 11);
                       EXPECT_FLOAT_EQ(r[1].item<float>(), 22);
                       ExpectCompiledOnce(add);
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "TreeMapMapsWithDifferentKeys", {"[tree_map]", "tree 1", "'b'", "'c'"}, [] {
        auto add = tj::jit([](const Map& a, const Map& b) {
          return tj::tree_map([](const Array& x, const Array& y) { return x + y; }, a, b);
        });
        return Probe{[=] {
                       add(Map{{"a", Array(1.f)}, {"b", Array(2.f)}},
                           Map{{"a", Array(1.f)}, {"c", Array(2.f)}});
                     },
                     [=] {
                       Map r = add(Map{{"a", Array(1.f)}, {"b", Array(2.f)}},
                                   Map{{"a", Array(3.f)}, {"b", Array(5.f)}});
                       EXPECT_FLOAT_EQ(r.at("a").item<float>(), 4);
                       EXPECT_FLOAT_EQ(r.at("b").item<float>(), 7);
                     }};
      }));
  cases.push_back(
      Expect<tj::Error>("MaxRetracesVectorLength",
                        {"[jit]", "'total'", "arg 0: PyTreeDef([*, *]) -> PyTreeDef([*, *, *])",
                         "max_retraces = 0", "keep shapes and dtypes fixed"},
                        [] {
                          // A different structure is a retrace, not an error, until the limit says
                          // otherwise.
                          auto total = tj::jit(
                              [](const Vec& v) {
                                Array s = v[0];
                                for (size_t i = 1; i < v.size(); ++i) s = s + v[i];
                                return s;
                              },
                              {.name = "total", .max_retraces = 0});
                          ExpectFloats(total(Vec{Array(1.f), Array(2.f)}), {}, {3});
                          return Probe{[=] {
                                         total(Vec{Array(1.f), Array(2.f), Array(3.f)});
                                       },
                                       [=] {
                                         ExpectFloats(total(Vec{Array(4.f), Array(5.f)}), {}, {9});
                                         ExpectCompiledOnce(total);
                                         EXPECT_EQ(total.stats().cache_hits, 1);
                                       }};
                        }));
  cases.push_back(Expect<tj::Error>(
      "MaxRetracesMapKeys",
      {"[jit]", "arg 0: PyTreeDef({'a': *, 'b': *}) -> PyTreeDef({'a': *, 'c': *})",
       "max_retraces = 0"},
      [] {
        auto total = tj::jit([](const Map& m) { return m.begin()->second + m.rbegin()->second; },
                             {.max_retraces = 0});
        ExpectFloats(total(Map{{"a", Array(1.f)}, {"b", Array(2.f)}}), {}, {3});
        return Probe{[=] {
                       total(Map{{"a", Array(1.f)}, {"c", Array(2.f)}});
                     },
                     [=] {
                       ExpectFloats(total(Map{{"a", Array(5.f)}, {"b", Array(6.f)}}), {}, {11});
                       ExpectCompiledOnce(total);
                     }};
      }));
  cases.push_back(Expect<tj::Error>(
      "MaxRetracesShape", {"[jit]", "arg 0: f32[3] -> f32[4]", "max_retraces = 1"}, [] {
        auto total = tj::jit([](const Array& x) { return tj::sum(x); }, {.max_retraces = 1});
        total(F({2}));
        total(F({3}));  // the one retrace allowed
        return Probe{[=] { total(F({4})); },
                     [=] {
                       ExpectFloats(total(Floats({1, 2, 3})), {}, {6});
                       ExpectFloats(total(Floats({1, 2})), {}, {3});
                       EXPECT_EQ(total.stats().traces, 2);
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "VjpCotangentVectorLength",
      {"[vjp]", "PyTreeDef([*, *, *])", "PyTreeDef([*, *])", "outputs' structure"}, [] {
        auto f = tj::jit([](const Array& x) { return Vec{x * x, x * 2}; });
        auto [out, vjp_fn] = tj::vjp(f, Floats({1, 2, 3}));
        auto pull = std::make_shared<decltype(vjp_fn)>(vjp_fn);
        return Probe{[pull] {
                       (*pull)(Vec{F({3}), F({3}), F({3})});
                     },
                     [pull] {
                       // d/dx (x^2 + 2x) = 2x + 2 at 1, 2, 3.
                       auto [ct] = (*pull)(Vec{tj::ones({3}), tj::ones({3})});
                       ExpectFloats(ct, {3}, {4, 6, 8});
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "VjpCotangentMapKeys", {"[vjp]", "'c'", "'b'", "outputs' structure"}, [] {
        auto f = tj::jit([](const Array& x) { return Map{{"a", x * x}, {"b", x * 3}}; });
        auto [out, vjp_fn] = tj::vjp(f, Floats({1, 2}));
        auto pull = std::make_shared<decltype(vjp_fn)>(vjp_fn);
        return Probe{[pull] {
                       (*pull)(Map{{"a", tj::ones({2})}, {"c", tj::ones({2})}});
                     },
                     [pull] {
                       auto [ct] = (*pull)(Map{{"a", tj::ones({2})}, {"b", tj::ones({2})}});
                       ExpectFloats(ct, {2}, {5, 7});  // 2x + 3
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "GradOfTreeValuedFunction", {"[grad]", "2 leaves", "[*, *]", "tj::vjp"}, [] {
        auto f = [](const Array& x) { return Vec{x * x, x}; };
        auto g = tj::jit(tj::grad(f));
        return Probe{[=] { g(Array(3.f)); },
                     [=] {
                       // The message's advice: vjp with a cotangent per output, 2x + 1 at 3.
                       auto [out, vjp_fn] = tj::vjp(f, Array(3.f));
                       auto [ct] = vjp_fn(Vec{Array(1.f), Array(1.f)});
                       ExpectFloats(ct, {}, {7});
                     }};
      }));
  return cases;
}

// Transformations: grad and vjp asked for what they cannot give.
std::vector<Case> TransformCases() {
  std::vector<Case> cases;
  auto square = [](const Array& x) { return x * x; };
  cases.push_back(Expect<tj::ShapeError>("GradOfNonScalar", {"[grad]", "f32[3]", "tj::vjp"}, [=] {
    auto g = tj::jit(tj::grad(square));
    return Probe{[=] { g(F({3})); },
                 [=] {
                   ExpectFloats(g(Array(3.f)), {}, {6});
                   ExpectCompiledOnce(g);
                 }};
  }));
  cases.push_back(
      Expect<tj::TypeError>("GradOfIntegerOutput", {"[grad]", "i32[]", "tj::astype"}, [] {
        auto out_dtype = std::make_shared<DType>(DType::i32);
        auto g = tj::jit(
            tj::grad([out_dtype](const Array& x) { return tj::astype(x * x, *out_dtype); }));
        return Probe{[=] { g(Array(3.f)); },
                     [=] {
                       *out_dtype = DType::f32;
                       ExpectFloats(g(Array(3.f)), {}, {6});
                       ExpectCompiledOnce(g);
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>("GradOfBoolOutput", {"[grad]", "bool[]", "tj::astype"}, [] {
    auto compare = std::make_shared<bool>(true);
    auto g = tj::jit(tj::grad([compare](const Array& x) {
      Array y = x * x;
      return *compare ? y > 1.f : y;
    }));
    return Probe{[=] { g(Array(2.f)); },
                 [=] {
                   *compare = false;
                   ExpectFloats(g(Array(2.f)), {}, {4});
                 }};
  }));
  cases.push_back(Expect<tj::TypeError>("GradWithRespectToIntegerArgument",
                                        {"[grad]", "argument 0", "i32", "tj::astype"}, [=] {
                                          auto g = tj::jit(tj::grad(square));
                                          return Probe{[=] { g(Array(3)); },
                                                       [=] {
                                                         ExpectFloats(g(Array(3.f)), {}, {6});
                                                         ExpectCompiledOnce(g);
                                                       }};
                                        }));
  cases.push_back(Expect<tj::IndexError>(
      "GradArgumentIndexOutOfRange", {"[grad]", "argument index 2", "2 arguments", "from 0 to 1"},
      [] {
        auto f = [](const Array& a, const Array& b) { return a * a * b; };
        return Probe{[=] { tj::grad(f, 2)(Array(2.f), Array(5.f)); },
                     [=] {
                       ExpectFloats(tj::jit(tj::grad(f, 0))(Array(2.f), Array(5.f)), {}, {20});
                       ExpectFloats(tj::jit(tj::grad(f, 1))(Array(2.f), Array(5.f)), {}, {4});
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "GradNegativeArgumentIndex", {"[grad]", "argument index -1", "from 0 to 0"}, [=] {
        auto g = tj::jit(tj::grad(square, -1));
        return Probe{[=] { g(Array(1.f)); },
                     [=] { ExpectFloats(tj::jit(tj::grad(square, 0))(Array(-2.f)), {}, {-4}); }};
      }));
  cases.push_back(Expect<tj::ShapeError>("ValueAndGradOfNonScalar",
                                         {"[value_and_grad]", "f32[2]", "tj::vjp"}, [=] {
                                           auto vg = tj::jit(tj::value_and_grad(square));
                                           return Probe{[=] { vg(F({2})); },
                                                        [=] {
                                                          auto [value, grad] = vg(Array(3.f));
                                                          ExpectFloats(value, {}, {9});
                                                          ExpectFloats(grad, {}, {6});
                                                        }};
                                         }));
  cases.push_back(Expect<tj::ShapeError>(
      "VjpCotangentShape", {"[vjp]", "f32[2]", "f32[3]", "output's shape"}, [=] {
        auto [out, vjp_fn] = tj::vjp(tj::jit(square), Floats({1, 2, 3}));
        auto pull = std::make_shared<decltype(vjp_fn)>(vjp_fn);
        return Probe{[pull] { (*pull)(F({2})); },
                     [pull] {
                       ExpectFloats(std::get<0>((*pull)(tj::ones({3}))), {3}, {2, 4, 6});
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "VjpCotangentDtype", {"[vjp]", "f64[3]", "f32[3]", "output's dtype"}, [=] {
        auto [out, vjp_fn] = tj::vjp(tj::jit(square), Floats({1, 2, 3}));
        auto pull = std::make_shared<decltype(vjp_fn)>(vjp_fn);
        return Probe{[pull] { (*pull)(tj::ones({3}, DType::f64)); },
                     [pull] {
                       ExpectFloats(std::get<0>((*pull)(Floats({1, 0, -1}))), {3}, {2, 0, -6});
                     }};
      }));
  cases.push_back(Expect<tj::TreeError>(
      "VjpCotangentTupleForOneOutput", {"[vjp]", "PyTreeDef((*, *))", "PyTreeDef(*)"}, [=] {
        auto [out, vjp_fn] = tj::vjp(square, Array(3.f));
        auto pull = std::make_shared<decltype(vjp_fn)>(vjp_fn);
        return Probe{[pull] { (*pull)(std::make_tuple(Array(1.f), Array(1.f))); },
                     [pull] { ExpectFloats(std::get<0>((*pull)(Array(1.f))), {}, {6}); }};
      }));
  return cases;
}

// Tracers: values asked of them, and tracers that outlive their trace.
std::vector<Case> TracerCases() {
  std::vector<Case> cases;
  cases.push_back(Expect<tj::ConcretizationError>(
      "IfOnTracer", {"[bool]", "tracer bool[]", "'abs_value'", "tj::where"}, [] {
        auto use_if = std::make_shared<bool>(true);
        auto abs_value = tj::jit(
            [use_if](const Array& x) {
              if (*use_if) return (x > 0) ? x : -x;
              return tj::where(x > 0, x, -x);
            },
            {.name = "abs_value"});
        return Probe{[=] { abs_value(Array(-2.f)); },
                     [=] {
                       *use_if = false;  // the fix the message names
                       ExpectFloats(abs_value(Array(-2.f)), {}, {2});
                       ExpectFloats(abs_value(Array(3.f)), {}, {3});
                       ExpectCompiledOnce(abs_value);
                     }};
      }));
  cases.push_back(Expect<tj::ConcretizationError>(
      "ItemOnTracer", {"[item]", "tracer f32[]", "only when the compiled code runs"}, [] {
        auto read = std::make_shared<bool>(true);
        auto scale = tj::jit([read](const Array& x) {
          float s = *read ? x.item<float>() : 2.f;
          return x * s;
        });
        return Probe{[=] { scale(Array(3.f)); },
                     [=] {
                       *read = false;
                       ExpectFloats(scale(Array(3.f)), {}, {6});
                       ExpectCompiledOnce(scale);
                     }};
      }));
  cases.push_back(Expect<tj::ConcretizationError>(
      "ToVectorOnTracer", {"[to_vector]", "tracer f32[3]", "Return it from the function"}, [] {
        auto read = std::make_shared<bool>(true);
        auto first = tj::jit(
            [read](const Array& x) { return *read ? Array(x.to_vector<float>()[0]) : x[0]; });
        return Probe{[=] {
                       first(Floats({4, 5, 6}));
                     },
                     [=] {
                       *read = false;
                       ExpectFloats(first(Floats({4, 5, 6})), {}, {4});
                     }};
      }));
  cases.push_back(Expect<tj::ConcretizationError>(
      "IfOnTracerUnderGrad", {"[bool]", "tracer bool[]", "tj::where"}, [] {
        auto use_if = std::make_shared<bool>(true);
        auto g = tj::jit(tj::grad([use_if](const Array& x) {
          if (*use_if) return (x > 0) ? x * x : -x;
          return tj::where(x > 0, x * x, -x);
        }));
        return Probe{[=] { g(Array(-2.f)); },
                     [=] {
                       *use_if = false;
                       ExpectFloats(g(Array(-2.f)), {}, {-1});
                       ExpectFloats(g(Array(3.f)), {}, {6});
                     }};
      }));
  cases.push_back(Expect<tj::ConcretizationError>(
      "ScalarParameterReceivesTracer",
      {"[trace]", "argument 1", "C++ arithmetic", "i32[]", "tj::Array parameter", "capture"}, [] {
        auto scale = tj::jit([](const Array& x, int n) { return x * n; });
        return Probe{[=] {
                       scale(Floats({1, 2}), 3);
                     },
                     [] {
                       // The fix the message names: an Array parameter; 3 stays weakly typed.
                       auto fixed = tj::jit([](const Array& x, const Array& n) { return x * n; });
                       ExpectFloats(fixed(Floats({1, 2}), 3), {2}, {3, 6});
                     }};
      }));

  // A tracer kept past the end of its trace, used in every way that must be refused.
  struct Leak {
    Array leaked;
  };
  auto leaky = [] {
    auto leak = std::make_shared<Leak>();
    auto f = tj::jit(
        [leak](const Array& x) {
          leak->leaked = x * 2;
          return x + 1;
        },
        {.name = "leaky"});
    f(Array(1.f));
    return std::make_pair(leak, f);
  };
  auto leaky_still_works = [](const auto& f) {
    ExpectFloats(f(Array(4.f)), {}, {5});
    ExpectFloats(f(Floats({1, 2})), {2}, {2, 3});
  };
  cases.push_back(Expect<tj::TracerLeakError>(
      "LeakedTracerUsedEagerly",
      {"[add]", "f32[]", "'leaky'", "after that trace had ended", "return them"}, [=] {
        auto [leak, f] = leaky();
        return Probe{[leak] { leak->leaked + 1; }, [=] { leaky_still_works(f); }};
      }));
  cases.push_back(Expect<tj::TracerLeakError>(
      "LeakedTracerItem", {"[item]", "f32[]", "'leaky'", "after that trace had ended"}, [=] {
        auto [leak, f] = leaky();
        return Probe{[leak] { leak->leaked.item<float>(); }, [=] { leaky_still_works(f); }};
      }));
  cases.push_back(Expect<tj::TracerLeakError>(
      "LeakedTracerCapturedBySecondJit", {"[add]", "'leaky'", "after that trace had ended"}, [=] {
        auto [leak, f] = leaky();
        auto second = tj::jit([leak](const Array& y) { return y + leak->leaked; });
        return Probe{[=] { second(Array(1.f)); },
                     [=] {
                       leaky_still_works(f);
                       leak->leaked = Array(10.f);  // a concrete value is fine to capture
                       ExpectFloats(second(Array(1.f)), {}, {11});
                     }};
      }));
  cases.push_back(
      Expect<tj::TracerLeakError>("LeakedTracerAsJitArgument",
                                  {"[jit]", "f32[]", "'leaky'", "after that trace had ended"}, [=] {
                                    auto [leak, f] = leaky();
                                    auto inc = tj::jit([](const Array& y) { return y + 1; });
                                    return Probe{[=] { inc(leak->leaked); },
                                                 [=] {
                                                   ExpectFloats(inc(Array(1.f)), {}, {2});
                                                   leaky_still_works(f);
                                                 }};
                                  }));
  cases.push_back(Expect<tj::TracerLeakError>(
      "LeakedTracerUnderGrad", {"[mul]", "'leaky'", "after that trace had ended"}, [=] {
        auto [leak, f] = leaky();
        return Probe{
            [leak] { tj::grad([leak](const Array& x) { return x * leak->leaked; })(Array(1.f)); },
            [=] { leaky_still_works(f); }};
      }));
  cases.push_back(Expect<tj::TracerLeakError>(
      "LeakedVjpFunction", {"[vjp]", "f32[]", "'with_vjp'", "after that trace had ended"}, [] {
        using Pull = std::function<Array(const Array&)>;
        auto kept = std::make_shared<Pull>();
        auto f = tj::jit(
            [kept](const Array& x) {
              auto [y, vjp_fn] = tj::vjp([](const Array& v) { return tj::sin(v); }, x);
              *kept = [vjp_fn](const Array& ct) { return std::get<0>(vjp_fn(ct)); };
              return y;
            },
            {.name = "with_vjp"});
        f(Array(0.f));
        return Probe{[kept] { (*kept)(Array(1.f)); },
                     [=] {
                       ExpectFloats(f(Array(0.f)), {}, {0});
                       // Called inside the trace, as vjp's contract asks: cos(0) = 1.
                       auto g = tj::jit([](const Array& x) {
                         auto [y, vjp_fn] = tj::vjp([](const Array& v) { return tj::sin(v); }, x);
                         return std::get<0>(vjp_fn(Array(1.f)));
                       });
                       ExpectFloats(g(Array(0.f)), {}, {1});
                     }};
      }));
  cases.push_back(Expect<tj::Error>(
      "LowerInsideTrace", {"[jit.lower]", "captures values of an enclosing trace", "outside jit"},
      [] {
        auto lower = std::make_shared<bool>(true);
        auto outer = tj::jit([lower](const Array& x) {
          auto inner = tj::jit([x](const Array& y) { return y * x; });
          if (*lower) (void)inner.lower(x);
          return inner(x);
        });
        return Probe{[=] { outer(Array(2.f)); },
                     [=] {
                       *lower = false;
                       ExpectFloats(outer(Array(3.f)), {}, {9});
                       ExpectCompiledOnce(outer);
                     }};
      }));
  return cases;
}

// The PRNG: keys that are not keys, counts and shapes that cannot be.
std::vector<Case> RandomCases() {
  std::vector<Case> cases;
  auto normal3 = [] {
    return tj::jit([](const Array& key) { return tj::random::normal(key, {3}); });
  };
  // A jitted draw equals the eager one: the same bits through threefry, then within 4 ulps
  // (f32 normal's erf_inv compiles to polynomials, 1-3 ulps from libm's; under the original
  // threefry scheme key(1)'s draws differ by 1).
  auto expect_same_draw = [](const Array& jitted, const Array& eager) {
    EXPECT_EQ(jitted.shape(), eager.shape());
    EXPECT_THAT(jitted.to_vector<float>(), testing::Pointwise(testing::FloatEq(), eager.to_vector<float>()));
  };
  cases.push_back(Expect<tj::TypeError>(
      "KeyOfWrongDtype", {"[random.normal]", "u32[2]", "f32[2]", "tj::random::key(seed)"}, [=] {
        auto draw = normal3();
        return Probe{[=] { draw(F({2})); },
                     [=] {
                       expect_same_draw(draw(tj::random::key(0)),
                                        tj::random::normal(tj::random::key(0), {3}));
                       ExpectCompiledOnce(draw);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "KeyOfWrongShape", {"[random.normal]", "u32[2]", "u32[3]", "tj::random::key(seed)"}, [=] {
        auto draw = normal3();
        return Probe{[=] { draw(tj::zeros({3}, DType::u32)); },
                     [=] {
                       expect_same_draw(draw(tj::random::key(7)),
                                        tj::random::normal(tj::random::key(7), {3}));
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "SplitKeysNotIndexed", {"[random.normal]", "u32[2,2]", "keys[i]"}, [=] {
        auto draw = normal3();
        Array keys = tj::random::split(tj::random::key(1));
        return Probe{[=] { draw(keys); },
                     [=] { expect_same_draw(draw(keys[1]), tj::random::normal(keys[1], {3})); }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "SplitNegativeCount", {"[random.split]", "num >= 1", "got -1", "u32[2]", "at least one"}, [] {
        auto num = std::make_shared<int>(-1);
        auto split = tj::jit([num](const Array& key) { return tj::random::split(key, *num); });
        return Probe{[=] { split(tj::random::key(0)); },
                     [=] {
                       *num = 3;
                       Array keys = split(tj::random::key(0));
                       EXPECT_EQ(keys.shape(), (tj::Shape{3, 2}));
                       EXPECT_EQ(keys.to_vector<uint32_t>(),
                                 tj::random::split(tj::random::key(0), 3).to_vector<uint32_t>());
                       ExpectCompiledOnce(split);
                     }};
      }));
  cases.push_back(
      Expect<tj::ShapeError>("NormalNegativeShape", {"[random.normal]", "[-2]", "0 or more"}, [] {
        auto shape = std::make_shared<tj::Shape>(tj::Shape{-2});
        auto draw = tj::jit([shape](const Array& key) { return tj::random::normal(key, *shape); });
        return Probe{[=] { draw(tj::random::key(0)); },
                     [=] {
                       *shape = {2};
                       EXPECT_EQ(draw(tj::random::key(0)).to_vector<float>(),
                                 tj::random::normal(tj::random::key(0), {2}).to_vector<float>());
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "UniformOfIntegers", {"[random.uniform]", "i32", "f32 or f64", "tj::random::bits"}, [] {
        auto dtype = std::make_shared<DType>(DType::i32);
        auto draw = tj::jit(
            [dtype](const Array& key) { return tj::random::uniform(key, {64}, *dtype, -1, 1); });
        return Probe{[=] { draw(tj::random::key(3)); },
                     [=] {
                       *dtype = DType::f32;
                       Array u = draw(tj::random::key(3));
                       for (float v : u.to_vector<float>()) {
                         EXPECT_GE(v, -1.f);
                         EXPECT_LT(v, 1.f);
                       }
                     }};
      }));
  cases.push_back(
      Expect<tj::TypeError>("FoldInIntegerKey", {"[random.fold_in]", "i32[2]", "u32[2]"}, [] {
        auto fold = tj::jit([](const Array& key) { return tj::random::fold_in(key, 5); });
        return Probe{[=] {
                       fold(Ints({0, 1}));
                     },
                     [=] {
                       EXPECT_EQ(fold(tj::random::key(2)).to_vector<uint32_t>(),
                                 tj::random::fold_in(tj::random::key(2), 5).to_vector<uint32_t>());
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "BitsOfEmptyKey", {"[random.bits]", "empty tj::Array", "tj::random::key(seed)"}, [] {
        auto draw = tj::jit([](const Array& key) { return tj::random::bits(key, {2}); });
        return Probe{[] { tj::random::bits(Array(), {2}); },
                     [=] {
                       EXPECT_EQ(draw(tj::random::key(4)).to_vector<uint32_t>(),
                                 tj::random::bits(tj::random::key(4), {2}).to_vector<uint32_t>());
                     }};
      }));
  return cases;
}

std::vector<Case> DiagnosticCases() {
  std::vector<Case> cases;
  cases.push_back(Expect<tj::Error>(
      "DebugPrintPlaceholders",
      {"[debug.print]", "'x={} y={}'", "2 placeholders", "1 argument", "one {} per argument"}, [] {
        auto fmt = std::make_shared<std::string>("x={} y={}");
        auto f = tj::jit([fmt](const Array& x) {
          tj::debug::print(*fmt, x);
          return x * 2;
        });
        return Probe{[=] { f(Array(3.f)); },
                     [=] {
                       *fmt = "x={}";
                       testing::internal::CaptureStdout();
                       Array y = f(Array(3.f));
                       EXPECT_EQ(testing::internal::GetCapturedStdout(), "x=3.0\n");
                       ExpectFloats(y, {}, {6});
                       ExpectCompiledOnce(f);
                     }};
      }));
  return cases;
}

// The wider jnp surface (issue 14): einsum specs, indices, windows and updates that cannot be.
std::vector<Case> JnpSurfaceCases() {
  std::vector<Case> cases;
  // A jitted einsum of two operands whose spec the probe changes; [[1,2,3],[4,5,6]] @
  // [[1,0],[0,1],[1,1]] = [[1+3, 2+3], [4+6, 5+6]].
  auto einsum2 = [](std::string spec) {
    auto s = std::make_shared<std::string>(std::move(spec));
    auto f = tj::jit([s](const Array& a, const Array& b) { return tj::einsum(*s, a, b); });
    return std::pair{s, f};
  };
  auto expect_matmul = [](const auto& f) {
    ExpectFloats(f(Iota({2, 3}) + 1.f, Floats({1, 0, 0, 1, 1, 1}, {3, 2})), {2, 2}, {4, 5, 10, 11});
  };
  cases.push_back(Expect<tj::ShapeError>(
      "EinsumOutputLetterInNoOperand",
      {"[einsum]", "'ij,jk->il'", "output subscript 'l'", "appears in no operand", "label an axis"},
      [=] {
        auto [spec, f] = einsum2("ij,jk->il");
        return Probe{[=] { f(F({2, 3}), F({3, 2})); },
                     [=] {
                       *spec = "ij,jk->ik";
                       expect_matmul(f);
                       ExpectCompiledOnce(f);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "EinsumOperandCount",
      {"[einsum]", "'ij,jk->ik'", "2 operand subscripts for 1 operands", "one comma-separated"}, [] {
        auto spec = std::make_shared<std::string>("ij,jk->ik");
        auto f = tj::jit([spec](const Array& a) { return tj::einsum(*spec, a); });
        return Probe{[=] { f(F({2, 3})); },
                     [=] {
                       *spec = "ij->ji";  // a transpose
                       ExpectFloats(f(Iota({2, 3})), {3, 2}, {0, 3, 1, 4, 2, 5});
                       ExpectCompiledOnce(f);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "EinsumSubscriptsVsRank",
      {"[einsum]", "operand 0", "'ijk'", "f32[2,3]", "rank 2", "one letter per axis"}, [=] {
        auto [spec, f] = einsum2("ijk,jk->ik");
        return Probe{[=] { f(F({2, 3}), F({3, 2})); },
                     [=] {
                       *spec = "ij,jk->ik";
                       expect_matmul(f);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "EinsumLetterWithTwoSizes",
      {"[einsum]", "subscript 'j'", "size 3", "size 4", "f32[4,2]", "must have one size"}, [=] {
        auto [spec, f] = einsum2("ij,jk->ik");
        return Probe{[=] { f(F({2, 3}), F({4, 2})); }, [=] { expect_matmul(f); }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "EinsumEllipsis",
      {"[einsum]", "'...ij,...jk->...ik'", "'.'", "ellipses are not supported", "'bij,bjk->bik'"},
      [=] {
        auto [spec, f] = einsum2("...ij,...jk->...ik");
        return Probe{[=] { f(F({1, 2, 3}), F({1, 3, 2})); },
                     [=] {
                       *spec = "bij,bjk->bik";
                       // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[5+14, 6+16], [15+28, 18+32]].
                       ExpectFloats(f(Floats({1, 2, 3, 4}, {1, 2, 2}), Floats({5, 6, 7, 8}, {1, 2, 2})),
                                    {1, 2, 2}, {19, 22, 43, 50});
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "TakeFloatIndices",
      {"[take]", "indices must be an integer array", "f32[2]", "tj::astype(indices, tj::DType::i32)"},
      [] {
        auto take = tj::jit([](const Array& a, const Array& i) { return tj::take(a, i, 0); });
        return Probe{[=] { take(Floats({1, 2, 3}), Floats({0, 2})); },
                     [=] {
                       // Index 5 is past the end: clamped to 2 (jnp's mode='clip').
                       ExpectFloats(take(Floats({10, 20, 30}), Ints({2, 0, 5})), {3}, {30, 10, 30});
                       ExpectCompiledOnce(take);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "DynamicSliceLargerThanTheArray",
      {"[dynamic_slice]", "size 5 along axis 1", "dimension 4 of f32[3,4]", "between 0 and the dimension"},
      [] {
        auto sizes = std::make_shared<tj::Shape>(tj::Shape{2, 5});
        auto window = tj::jit([sizes](const Array& m, const Array& i, const Array& j) {
          return tj::dynamic_slice(m, {i, j}, *sizes);
        });
        return Probe{[=] { window(Iota({3, 4}), Ints({0})[0], Ints({0})[0]); },
                     [=] {
                       *sizes = {2, 2};
                       // Start row 2 is clamped to 1 so that two rows fit: rows 1-2, columns 1-2
                       // of 0..11 as [3,4].
                       ExpectFloats(window(Iota({3, 4}), Ints({2})[0], Ints({1})[0]), {2, 2}, {5, 6, 9, 10});
                       ExpectCompiledOnce(window);
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "DynamicUpdateSliceUpdateTooLarge",
      {"[dynamic_update_slice]", "the update f32[4]", "larger than the operand f32[3]", "axis 0",
       "slice the update"},
      [] {
        auto write = tj::jit([](const Array& a, const Array& u, const Array& i) {
          return tj::dynamic_update_slice(a, u, {i});
        });
        return Probe{[=] { write(F({3}), F({4}), Ints({0})[0]); },
                     [=] {
                       // Start 3 is clamped to 2 so that the update fits.
                       ExpectFloats(write(Floats({1, 2, 3, 4}), Floats({9, 8}), Ints({3})[0]), {4},
                                    {1, 2, 9, 8});
                     }};
      }));
  cases.push_back(Expect<tj::ShapeError>(
      "StackMismatchedShapes", {"[stack]", "one shape", "[2]", "[3]", "reshape or broadcast"}, [] {
        auto stack = tj::jit([](const Array& a, const Array& b) { return tj::stack({a, b}); });
        return Probe{[=] { stack(F({2}), F({3})); },
                     [=] {
                       ExpectFloats(stack(Floats({1, 2}), Floats({3, 4})), {2, 2}, {1, 2, 3, 4});
                       ExpectCompiledOnce(stack);
                     }};
      }));
  cases.push_back(Expect<tj::IndexError>(
      "ArgmaxAxisOutOfRange", {"[argmax]", "axis 2", "f32[2,3]", "rank 2", "from -2 to 1"}, [] {
        auto axis = std::make_shared<int64_t>(2);
        auto best = tj::jit([axis](const Array& a) { return tj::argmax(a, *axis); });
        return Probe{[=] { best(F({2, 3})); },
                     [=] {
                       *axis = -1;
                       // Row [7, 0, 7] has two maxima: the first one counts, as in jnp.
                       Array r = best(Floats({1, 5, 2, 7, 0, 7}, {2, 3}));
                       EXPECT_EQ(r.dtype(), DType::i32);
                       EXPECT_EQ(r.to_vector<int32_t>(), (std::vector<int32_t>{1, 0}));
                       ExpectCompiledOnce(best);
                     }};
      }));
  cases.push_back(Expect<tj::TypeError>(
      "AtFloatIndex",
      {"[at.set]", "index must be an integer array", "f32[]", "tj::astype(index, tj::DType::i32)"}, [] {
        auto set = tj::jit([](const Array& a, const Array& i) { return a.at(i).set(0.f); });
        return Probe{[=] { set(Floats({1, 2, 3}), Floats({1})[0]); },
                     [=] {
                       ExpectFloats(set(Floats({1, 2, 3}), Ints({-1})[0]), {3}, {1, 2, 0});
                       ExpectCompiledOnce(set);
                     }};
      }));
  return cases;
}

std::vector<Case> AllCases() {
  std::vector<Case> all;
  for (auto group :
       {ArrayOpCases, PytreeCases, TransformCases, TracerCases, RandomCases, DiagnosticCases,
        JnpSurfaceCases}) {
    std::vector<Case> cases = group();
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

class MisuseCatalogue : public testing::TestWithParam<Case> {};

TEST_P(MisuseCatalogue, RightErrorThenCorrectResults) {
  const Case& c = GetParam();
  ASSERT_FALSE(c.parts.empty());
  Probe probe = c.setup();
  try {
    probe.misuse();
    ADD_FAILURE() << "the misuse did not throw";
  } catch (const tj::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(std::type_index(typeid(e)), c.error)
        << "threw " << ErrorName(typeid(e)) << " instead of " << ErrorName(c.error) << ": " << msg;
    EXPECT_TRUE(msg.starts_with(c.parts[0])) << msg;
    for (const std::string& part : c.parts) EXPECT_THAT(msg, HasSubstr(part));
  }
  EXPECT_FALSE(tj::detail::tracing()) << "the error left a trace open";
  probe.after();
}

INSTANTIATE_TEST_SUITE_P(Misuse, MisuseCatalogue, testing::ValuesIn(AllCases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(MisuseCatalogueTable, HasAtLeastFortyDistinctCases) {
  std::vector<Case> cases = AllCases();
  EXPECT_GE(cases.size(), 40u);
  std::set<std::string> names;
  for (const Case& c : cases) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

// ---------------------------------------------------------------------------------------------
// Misuses caught at compile time, checked with requires-expressions.

template <class T>
concept StaticOf = requires { typename tj::Static<T>; };

TEST(MisuseCompileTime, StaticOfATypeWithoutHashDoesNotCompile) {
  // jit's cache key compares and hashes static arguments: a tj::Static<T> of a T without ==
  // or absl::Hash is refused where it is written (the StaticValue constraint), not at a call.
  static_assert(StaticOf<int> && StaticOf<std::string>);
  static_assert(!StaticOf<misuse::NoHash>);
  static_assert(StaticOf<std::vector<int>>);  // absl::Hash and == of the elements
}

// ---------------------------------------------------------------------------------------------
// What looks like a misuse but JAX defines: out-of-range indices and windows, clip bounds that
// cross. Each gives JAX's value, eagerly and jitted with traced indices.

TEST(MisuseJaxSemantics, OutOfRangeIndicesAndCrossedClipBounds) {
  const Array x = Floats({1, 2, 3});
  auto set = tj::jit([](const Array& a, const Array& i) { return a.at(i).set(9.f); });
  auto get = tj::jit([](const Array& a, const Array& i) { return a.at(i).get(); });
  for (int i : {3, 7, -4}) {  // x.at[i].set: an update out of range is dropped
    ExpectFloats(x.at(i).set(9.f), {3}, {1, 2, 3});
    ExpectFloats(set(x, Ints({i})[0]), {3}, {1, 2, 3});
  }
  ExpectFloats(set(x, Ints({-3})[0]), {3}, {9, 2, 3});  // negative indices count from the end
  ExpectFloats(get(x, Ints({7})[0]), {}, {3});           // x.at[i].get: clamped
  // take clamps (mode='clip'); dynamic_slice clamps its start so that the window fits.
  ExpectFloats(tj::take(x, Ints({-2, 5}), 0), {2}, {1, 3});
  auto window = tj::jit([](const Array& a, const Array& i) { return tj::dynamic_slice(a, {i}, {2}); });
  ExpectFloats(window(x, Ints({-5})[0]), {2}, {1, 2});
  ExpectFloats(window(x, Ints({9})[0]), {2}, {2, 3});
  // jnp.clip is minimum(maximum(x, lo), hi): with lo > hi every element is hi.
  ExpectFloats(tj::clip(x, 2.5f, 1.5f), {3}, {1.5f, 1.5f, 1.5f});
  auto clip = tj::jit([](const Array& a, const Array& lo, const Array& hi) { return tj::clip(a, lo, hi); });
  ExpectFloats(clip(x, Floats({2.5f})[0], Floats({1.5f})[0]), {3}, {1.5f, 1.5f, 1.5f});
}

// ---------------------------------------------------------------------------------------------
// An uncreatable dump directory: one clear warning, and the calls still compute.

// A path below a regular file, which no one can create.
std::string UncreatableDir(const std::string& tag) {
  std::filesystem::path file = std::filesystem::temp_directory_path() /
                               ("tracejit-misuse-" + tag + "-" + std::to_string(getpid()));
  std::ofstream(file) << "a file, not a directory\n";
  return (file / "dumps").string();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(MisuseDumpDir, UncreatableDirectoryWarnsOnceAndCallsStillWork) {
  const std::string dir = UncreatableDir("env");
  setenv("TRACEJIT_DUMP_DIR", dir.c_str(), 1);
  auto inc = tj::jit([](const Array& x) { return x + 1; }, {.name = "dumped"});
  testing::internal::CaptureStderr();
  Array a = inc(Array(1.f));
  Array b = inc(Floats({1, 2}));  // a second compilation: no second warning
  std::string err = testing::internal::GetCapturedStderr();
  unsetenv("TRACEJIT_DUMP_DIR");
  std::filesystem::remove(std::filesystem::path(dir).parent_path());
  ExpectFloats(a, {}, {2});
  ExpectFloats(b, {2}, {2, 3});
  EXPECT_EQ(inc.stats().compiles, 2);
  std::vector<std::string> lines = Lines(err);
  ASSERT_EQ(lines.size(), 1u) << err;
  EXPECT_THAT(lines[0], HasSubstr("[jit] warning: cannot write dump files"));
  EXPECT_THAT(lines[0], HasSubstr("cannot create the directory (Not a directory)"));
  EXPECT_THAT(lines[0], HasSubstr(dir));
  EXPECT_THAT(lines[0], HasSubstr("writable directory"));
}

// ---------------------------------------------------------------------------------------------
// The demo CLI: each usage error exits with status 2 and one line on stderr, nothing on stdout.

struct DemoRun {
  int status = -1;
  std::string out, err;
};

#ifdef TRACEJIT_DEMO_PATH
DemoRun RunDemo(const std::string& args) {
  const std::filesystem::path tmp = std::filesystem::temp_directory_path();
  const std::string stem = "tracejit-misuse-demo-" + std::to_string(getpid());
  const std::string out = (tmp / (stem + ".out")).string(), err = (tmp / (stem + ".err")).string();
  const std::string cmd =
      std::string("'") + TRACEJIT_DEMO_PATH + "' " + args + " >'" + out + "' 2>'" + err + "'";
  int raw = std::system(cmd.c_str());
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::filesystem::remove(path);
    return ss.str();
  };
  DemoRun r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}
#endif

struct CliCase {
  std::string name;
  std::string args;
  std::vector<std::string> parts;  // in the single stderr line
};

void PrintTo(const CliCase& c, std::ostream* os) { *os << c.name; }

std::vector<CliCase> CliCases() {
  const std::string missing_dir = "/nonexistent-tracejit-dir/plot.svg";
  const std::string tmp = std::filesystem::temp_directory_path().string();
  return {
      {"UnknownSubcommand",
       "frobnicate",
       {"unknown subcommand 'frobnicate'", "counter or regression"}},
      {"UnknownFlag", "counter --nope=1", {"unknown flag --nope", "--steps", "--dump_dir"}},
      {"FlagWithoutValue", "regression --steps", {"flag --steps needs a value"}},
      {"BadIntegerValue",
       "regression --steps=abc",
       {"bad value 'abc' for --steps", "SGD steps", "--steps=1000"}},
      {"BadFloatValue",
       "regression --lr=fast",
       {"bad value 'fast' for --lr", "learning rate", "--lr=0.005"}},
      {"BadUnsignedValue", "regression --seed=-1", {"bad value '-1' for --seed", "--seed=42"}},
      {"NegativeSteps", "regression --steps=-5", {"--steps must be non-negative, got -5"}},
      {"UnknownThreefryScheme",
       "regression --threefry=philox",
       {"--threefry must be partitionable or original", "'philox'"}},
      {"UnknownLoopMode", "regression --loop=while", {"--loop must be step or scan", "'while'"}},
      {"StrayArgument", "counter extra", {"unexpected argument 'extra'"}},
      {"UnwritablePlotPath",
       "regression --steps=1 --plot=" + missing_dir,
       {"cannot write the plot to '" + missing_dir + "'", "No such file or directory", "--plot",
        "writable"}},
      {"PlotPathIsADirectory",
       "regression --steps=1 --plot=" + tmp,
       {"cannot write the plot to '" + tmp + "'", "Is a directory", "writable"}},
  };
}

class MisuseDemo : public testing::TestWithParam<CliCase> {};

TEST_P(MisuseDemo, ExitsWithStatusTwoAndOneLine) {
#ifndef TRACEJIT_DEMO_PATH
  GTEST_SKIP() << "tracejit-demo is not built (TRACEJIT_BUILD_TOOLS=OFF)";
#else
  const CliCase& c = GetParam();
  DemoRun r = RunDemo(c.args);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.out, "") << "usage errors are reported before any work";
  std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_THAT(lines[0], testing::StartsWith("tracejit-demo: "));
  for (const std::string& part : c.parts) EXPECT_THAT(lines[0], HasSubstr(part));
#endif
}

INSTANTIATE_TEST_SUITE_P(Misuse, MisuseDemo, testing::ValuesIn(CliCases()),
                         [](const testing::TestParamInfo<CliCase>& info) {
                           return info.param.name;
                         });

TEST(MisuseDemoDumpDir, UncreatableDumpDirWarnsOnceAndTheRunSucceeds) {
#ifndef TRACEJIT_DEMO_PATH
  GTEST_SKIP() << "tracejit-demo is not built (TRACEJIT_BUILD_TOOLS=OFF)";
#else
  const std::string dir = UncreatableDir("demo");
  const std::string plot = (std::filesystem::path(dir).parent_path().string() + ".svg");
  DemoRun r = RunDemo("regression --steps=3 --plot=" + plot + " --dump-dir=" + dir);
  std::filesystem::remove(std::filesystem::path(dir).parent_path());
  std::filesystem::remove(plot);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("weight="));
  EXPECT_THAT(r.out, HasSubstr("plot written to " + plot));
  std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_THAT(lines[0], HasSubstr("cannot create the directory"));
  EXPECT_THAT(lines[0], HasSubstr(dir));
#endif
}

// ---------------------------------------------------------------------------------------------
// A C++ scalar passed where the function takes an Array is traced like a Python scalar under
// jax.jit (weakly typed), not refused with a ConcretizationError naming [item] as it once was.

TEST(MisuseScalarArguments, ScalarForAnArrayParameterIsTraced) {
  auto twice = tj::jit([](const Array& x) { return x * 2; });
  ExpectFloats(twice(3.f), {}, {6});
  ExpectFloats(twice(4.f), {}, {8});  // same signature: weak f32[]
  ExpectCompiledOnce(twice);
  Array d = twice(2.0);  // a double is a weak f64
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_DOUBLE_EQ(d.item<double>(), 4);
  auto square = [](const Array& x) { return x * x; };
  ExpectFloats(tj::grad(square)(3.f), {}, {6});
  ExpectFloats(tj::jit(tj::grad(square))(-1.f), {}, {-2});
  auto [y, vjp_fn] = tj::vjp(square, 5.f);
  ExpectFloats(y, {}, {25});
  ExpectFloats(std::get<0>(vjp_fn(Array(1.f))), {}, {10});
  EXPECT_THAT(tj::make_ir(square)(1.f).str(), HasSubstr("mul"));
}

// ---------------------------------------------------------------------------------------------
// Exceptions thrown by the user's own function while it is traced: they reach the caller
// unchanged (same type, same what()), leave no trace behind, and cache nothing.

struct UserError : std::exception {
  explicit UserError(int c) : code(c) {}
  const char* what() const noexcept override { return "user error: bad configuration"; }
  int code;
};

// No trace is left open: eager ops, a fresh jit and make_ir all work.
void ExpectNoTraceState() {
  EXPECT_FALSE(tj::detail::tracing());
  Array eager = Floats({1, 2}) * 3;
  EXPECT_FALSE(eager.is_tracer());
  ExpectFloats(eager, {2}, {3, 6});
  ExpectFloats(tj::jit([](const Array& x) { return x - 1; })(Array(5.f)), {}, {4});
  tj::IR ir = tj::make_ir([](const Array& x) { return tj::exp(x); })(Array(0.f));
  EXPECT_THAT(ir.str(), HasSubstr("exp"));
}

TEST(MisuseUserException, CustomTypePropagatesUnchangedAndCachesNothing) {
  auto fail = std::make_shared<bool>(true);
  auto f = tj::jit([fail](const Array& x) {
    Array y = tj::sin(x) * 2;  // some equations are recorded before the throw
    if (*fail) throw UserError(7);
    return y + 1;
  });
  try {
    f(Array(0.f));
    ADD_FAILURE() << "did not throw";
  } catch (const tj::Error& e) {
    ADD_FAILURE() << "wrapped in a tj::Error: " << e.what();
  } catch (const UserError& e) {
    EXPECT_EQ(e.code, 7);
    EXPECT_STREQ(e.what(), "user error: bad configuration");
  }
  ExpectNoTraceState();
  EXPECT_EQ(f.stats().traces, 0);
  EXPECT_EQ(f.stats().compiles, 0);
  EXPECT_EQ(f.stats().cache_hits, 0);
  // Same signature again: it traces again (nothing was cached) and now succeeds.
  EXPECT_THROW(f(Array(0.f)), UserError);
  *fail = false;
  ExpectFloats(f(Array(0.f)), {}, {1});  // sin(0) * 2 + 1
  ExpectFloats(f(Array(0.f)), {}, {1});
  EXPECT_EQ(f.stats().traces, 1);
  EXPECT_EQ(f.stats().compiles, 1);
  EXPECT_EQ(f.stats().cache_hits, 1);
}

TEST(MisuseUserException, RuntimeErrorPropagatesUnchanged) {
  auto fail = std::make_shared<bool>(true);
  auto f = tj::jit([fail](const Array& x) {
    if (*fail) throw std::runtime_error("bad input 42");
    return x * x;
  });
  try {
    f(Floats({1, 2}));
    ADD_FAILURE() << "did not throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::type_index(typeid(e)), std::type_index(typeid(std::runtime_error)))
        << typeid(e).name();
    EXPECT_STREQ(e.what(), "bad input 42");
  }
  ExpectNoTraceState();
  EXPECT_EQ(f.stats().compiles, 0);
  *fail = false;
  ExpectFloats(f(Floats({1, 2})), {2}, {1, 4});
  ExpectCompiledOnce(f);
}

TEST(MisuseUserException, ThrownUnderGradInsideJit) {
  auto fail = std::make_shared<bool>(true);
  auto g = tj::jit(tj::grad([fail](const Array& x) {
    if (*fail) throw UserError(1);
    return x * x * x;
  }));
  EXPECT_THROW(g(Array(2.f)), UserError);
  ExpectNoTraceState();
  EXPECT_EQ(g.stats().traces, 0);
  *fail = false;
  ExpectFloats(g(Array(2.f)), {}, {12});  // 3x^2
  ExpectCompiledOnce(g);
}

TEST(MisuseUserException, ThrownByAnInnerJitLeavesBothUsable) {
  auto fail = std::make_shared<bool>(true);
  auto inner = tj::jit([fail](const Array& x) {
    if (*fail) throw std::runtime_error("inner failed");
    return x + 10;
  });
  auto outer = tj::jit([inner](const Array& x) { return inner(x * 2); });
  try {
    outer(Array(1.f));
    ADD_FAILURE() << "did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "inner failed");
  }
  ExpectNoTraceState();
  EXPECT_EQ(outer.stats().compiles, 0);
  EXPECT_EQ(inner.stats().compiles, 0);
  *fail = false;
  ExpectFloats(outer(Array(1.f)), {}, {12});
  ExpectFloats(inner(Array(1.f)), {}, {11});
  ExpectCompiledOnce(outer);
}

TEST(MisuseUserException, ThrownOnANewSignatureKeepsTheCachedOne) {
  auto fail_on_vectors = std::make_shared<bool>(true);
  auto f = tj::jit([fail_on_vectors](const Array& x) {
    if (*fail_on_vectors && x.ndim() > 0) throw UserError(2);
    return x * 3;
  });
  ExpectFloats(f(Array(2.f)), {}, {6});
  EXPECT_THROW(f(Floats({1, 2})), UserError);
  ExpectNoTraceState();
  ExpectFloats(f(Array(4.f)), {}, {12});  // the cached signature still runs
  ExpectCompiledOnce(f);
  EXPECT_EQ(f.stats().cache_hits, 1);
  *fail_on_vectors = false;
  ExpectFloats(f(Floats({1, 2})), {2}, {3, 6});
  EXPECT_EQ(f.stats().traces, 2);
}

TEST(MisuseUserException, ThrownUnderMakeIrAndVjp) {
  auto thrower = [](const Array& x) -> Array {
    Array y = x * 2;
    throw UserError(3);
    return y;
  };
  EXPECT_THROW(tj::make_ir(thrower)(Array(1.f)), UserError);
  ExpectNoTraceState();
  EXPECT_THROW(tj::vjp(thrower, Array(1.f)), UserError);
  ExpectNoTraceState();
}

TEST(MisuseUserException, TracersOfTheAbortedTraceAreLeaks) {
  auto kept = std::make_shared<Array>();
  auto f = tj::jit([kept](const Array& x) -> Array {
    *kept = x * 2;
    throw UserError(4);
  });
  EXPECT_THROW(f(Array(1.f)), UserError);
  EXPECT_THROW(*kept + 1, tj::TracerLeakError);
  ExpectNoTraceState();
}

}  // namespace

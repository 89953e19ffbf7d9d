// The errors of eager misuse: for each, the exception class and a message that names the
// operation in brackets, the shapes and dtypes involved, and what to do instead (API.md,
// "Errors"). Errors of tracers (ConcretizationError, TracerLeakError) are tested with the
// tracing layers.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "promotion_mode.h"
#include "tracejit/array.h"
#include "tracejit/error.h"
#include "tracejit/ops.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

Array F(const tj::Shape& shape) { return tj::zeros(shape, DType::f32); }
Array I(const tj::Shape& shape) { return tj::zeros(shape, DType::i32); }
Array B(const tj::Shape& shape) { return tj::zeros(shape, DType::bool_); }

// `f` throws E (or a subclass of it) whose message contains every one of `parts`.
template <class E, class Fn>
testing::AssertionResult Throws(Fn&& f, std::initializer_list<std::string_view> parts) {
  try {
    f();
  } catch (const E& e) {
    std::string msg = e.what();
    for (std::string_view part : parts)
      if (msg.find(part) == std::string::npos)
        return testing::AssertionFailure() << "message lacks \"" << part << "\": " << msg;
    return testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return testing::AssertionFailure()
           << "threw " << typeid(e).name() << " instead of " << typeid(E).name() << ": "
           << e.what();
  }
  return testing::AssertionFailure() << "did not throw";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Broadcasting and shapes.

TEST(ErrorsBroadcast, IncompatibleOperands) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { F({3}) + F({4}); },
                                     {"[add]", "f32[3]", "f32[4]", "3 and 4", "reshape"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { I({2, 3}) * I({3, 2}); },
                                     {"[mul]", "i32[2,3]", "i32[3,2]", "neither is 1"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { F({0}) - F({2}); }, {"[sub]", "f32[0]", "f32[2]"}));
}

TEST(ErrorsBroadcast, ComparisonsAndWhere) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { F({2, 3}) < F({2}); }, {"[lt]", "f32[2,3]", "f32[2]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::where(B({2}), F({3}), 0.f); },
                                     {"[select]", "bool[2]", "f32[3]", "reshape"}));
}

TEST(ErrorsBroadcast, BroadcastToAShapeThatDoesNotFit) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::broadcast_to(F({2, 3}), {3}); },
                                     {"[broadcast_to]", "f32[2,3]", "[3]", "lower-rank"}));
  // Dimension 0 of size 3 cannot stretch to 4.
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::broadcast_to(F({3}), {2, 4}); },
                                     {"[broadcast", "f32[3]", "[2,4]", "neither 1 nor 4"}));
}

TEST(ErrorsReshape, SizeMismatch) {
  EXPECT_TRUE(Throws<tj::ShapeError>(
      [] { tj::reshape(F({3, 4}), {5}); },
      {"[reshape]", "f32[3,4]", "[5]", "sizes 12 and 5 differ", "must have 12 elements"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::reshape(I({}), {0}); },
                                     {"[reshape]", "i32[]", "must have 1 elements"}));
}

TEST(ErrorsReshape, MinusOne) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::reshape(F({3, 4}), {-1, 5}); },
                                     {"[reshape]", "f32[3,4]", "[-1,5]", "divide"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::reshape(F({3, 4}), {-1, -1}); },
                                     {"[reshape]", "[-1,-1]", "at most one"}));
}

TEST(ErrorsMatmul, ContractingDimensionsDiffer) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::matmul(F({2, 3}), F({4, 2})); },
                                     {"[matmul]", "f32[2,3]", "f32[4,2]", "3 and 4 differ"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::matmul(F({3}), F({4})); },
                                     {"[matmul]", "f32[3]", "f32[4]", "3 and 4 differ"}));
}

TEST(ErrorsMatmul, ContractingMismatchSaysWhatToDo) {
  // The message explains the mismatch but, unlike the others, suggests no fix.
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::matmul(F({2, 3}), F({2, 3})); },
                                     {"[matmul]", "f32[2,3]", "transpose"}));
}

TEST(ErrorsMatmul, BatchDimsDisagreeOrRankZero) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::matmul(F({2, 2, 2}), F({3, 2, 2})); },
                                     {"[matmul]", "f32[2,2,2]", "f32[3,2,2]", "batch dimensions",
                                      "[2]", "[3]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::matmul(F({3}), Array(2.f)); },
                                     {"[matmul]", "f32[3]", "f32[]", "use *"}));
}

// ---------------------------------------------------------------------------------------------
// Dtypes.

TEST(ErrorsDtype, MixedStrongDtypesUnderStrictPromotion) {
  StrictPromotion strict;
  EXPECT_TRUE(Throws<tj::TypeError>([] { F({3}) + I({3}); },
                                    {"[add]", "f32[3]", "i32[3]", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::TypeError>(
      [] { tj::zeros({2}, DType::u32) == tj::zeros({2}, DType::f64); },
      {"[eq]", "u32[2]", "f64[2]", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::maximum(F({}), tj::astype(Array(1), DType::f64)); },
                                    {"[max]", "f32[]", "f64[]", "tj::astype"}));
}

TEST(ErrorsDtype, BoolArithmetic) {
  EXPECT_TRUE(Throws<tj::TypeError>([] { B({2}) + B({2}); },
                                    {"[add]", "bool", "bool[2]", "tj::astype", "| and ^"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { B({2}) * true; }, {"[mul]", "bool[2]", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { -B({2}); }, {"[neg]", "bool[2]", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::matmul(B({2}), B({2})); },
                                    {"[matmul]", "bool", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { B({2}) - B({2}); }, {"bool[2]", "tj::astype"}));
}

TEST(ErrorsDtype, BoolSubtractionNamesSub) {
  // `a - b` is add(a, neg(b)); on bools the error names [neg], an op the user did not call.
  EXPECT_TRUE(Throws<tj::TypeError>([] { B({2}) - B({2}); }, {"[sub]", "bool[2]", "^"}));
}

TEST(ErrorsDtype, ShiftsAndBitwiseOfFloats) {
  EXPECT_TRUE(Throws<tj::TypeError>([] { F({2}) << F({2}); },
                                    {"[shift_left]", "f32", "f32[2]", "i32 or u32"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { F({2}) >> 1; },
                                    {"[shift_right]", "f32[2]", "i32 or u32"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { B({2}) << B({2}); },
                                    {"[shift_left]", "bool[2]", "i32 or u32"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::zeros({2}, DType::f64) & 1; },
                                    {"[and]", "f64[2]", "bool, i32 or u32"}));
}

TEST(ErrorsDtype, BitcastSizeMismatch) {
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::bitcast(tj::zeros({2}, DType::f64), DType::f32); },
                                    {"[bitcast", "f64[2]", "f32", "of one size"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::bitcast(B({2}), DType::u32); },
                                    {"[bitcast", "bool[2]", "u32", "non-bool"}));
}

// ---------------------------------------------------------------------------------------------
// Axes and indices.

TEST(ErrorsAxes, ReductionAxisOutOfRange) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::sum(F({2, 3}), {2}); },
                                     {"[reduce_sum]", "axis 2", "rank 2"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::mean(F({2, 3}), {-3}); },
                                     {"[mean]", "axis -3", "rank 2"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::max(F({}), {0}); }, {"[reduce_max]", "rank 0"}));
}

TEST(ErrorsAxes, ReductionAxisRepeated) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::sum(F({2, 3}), {0, -2}); },
                                     {"[reduce_sum]", "repeated", "(0, -2)"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::max(I({2, 3}), {1, 1}); },
                                     {"[reduce_max]", "repeated", "(1, 1)"}));
}

TEST(ErrorsAxes, ReductionAxisErrorsNameTheTypeAndRange) {
  // The reduction axis errors name the rank but not the operand's type, and give no valid range.
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::sum(F({2, 3}), {2}); },
                                     {"[reduce_sum]", "f32[2,3]", "-2 to 1"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::sum(F({2, 3}), {0, 0}); },
                                     {"[reduce_sum]", "f32[2,3]", "at most once"}));
}

TEST(ErrorsAxes, TransposePermutation) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::transpose(F({2, 3}), {0, 0}); },
                                     {"[transpose]", "f32[2,3]", "appears twice", "at most once"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::transpose(F({2, 3}), {0, 2}); },
                                     {"[transpose]", "f32[2,3]", "axis 2", "-2 to 1"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::transpose(F({2, 3}), {0}); },
                                     {"[transpose]", "f32[2,3]", "needs 2 axes"}));
}

TEST(ErrorsIndex, OutOfRange) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { F({3, 2})[3]; },
                                     {"[index]", "index 3", "size 3", "f32[3,2]"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { I({3})[-4]; }, {"[index]", "index -4", "i32[3]"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { F({0})[0]; }, {"[index]", "f32[0]"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { Array(1.f)[0]; }, {"[index]", "0-d", "f32[]"}));
}

TEST(ErrorsIndex, OutOfRangeSaysWhatToDo) {
  // Neither message says which indices are valid or what to use instead.
  EXPECT_TRUE(Throws<tj::IndexError>([] { F({3, 2})[3]; }, {"[index]", "f32[3,2]", "-3 to 2"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { Array(1.f)[0]; }, {"[index]", "f32[]", "item()"}));
}

TEST(ErrorsSlice, OutOfRange) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::slice(F({3}), {0}, {5}); },
                                     {"[slice]", "[0, 5)", "f32[3]", "start <= limit <= 3"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::slice(I({3, 4}), {0, 3}, {3, 2}); },
                                     {"[slice]", "[3, 2)", "dimension 1", "i32[3,4]", "<= 4"}));
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::slice(F({3}), {-1}, {2}); }, {"[slice]", "f32[3]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::slice(F({3, 4}), {0}, {1}); },
                                     {"[slice]", "f32[3,4]", "needs 2 start and limit"}));
}

// ---------------------------------------------------------------------------------------------
// Concatenate.

TEST(ErrorsConcatenate, OperandsThatDoNotFit) {
  EXPECT_TRUE(Throws<tj::TypeError>([] {
    StrictPromotion strict;
    tj::concatenate({F({2}), I({2})});
  }, {"[concatenate]", "f32[2]", "i32[2]", "tj::astype"}));
  EXPECT_TRUE(Throws<tj::ShapeError>(
      [] { tj::concatenate({F({2, 3}), F({2, 4})}); },
      {"[concatenate]", "f32[2,3]", "f32[2,4]", "equal shapes except along axis 0"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::concatenate({F({2}), F({2, 2})}); },
                                     {"[concatenate]", "f32[2]", "f32[2,2]", "equal shapes"}));
}

TEST(ErrorsConcatenate, AxisAndArity) {
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::concatenate({F({2}), F({2})}, 1); },
                                     {"[concatenate]", "axis 1", "f32[2]", "-1 to 0"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::concatenate({F({}), F({})}); },
                                     {"[concatenate]", "0-d", "reshape them to [1]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::concatenate({}); },
                                     {"[concatenate]", "at least one"}));
}

TEST(ErrorsConcatenate, SingleArrayStillChecksTheAxis) {
  // With one operand concatenate returns it before checking the axis (jnp raises AxisError).
  EXPECT_TRUE(Throws<tj::IndexError>([] { tj::concatenate({F({2})}, 3); },
                                     {"[concatenate]", "axis 3", "f32[2]"}));
}

// ---------------------------------------------------------------------------------------------
// Reading values, constructing arrays, empty handles.

TEST(ErrorsRead, ItemOfSizeThree) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { F({3}).item<float>(); },
                                     {"[item]", "size 1", "f32[3]", "a[0]", "to_vector()"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { I({0}).item<int>(); }, {"[item]", "i32[0]"}));
}

TEST(ErrorsRead, TruthValueOfSizeThree) {
  EXPECT_TRUE(Throws<tj::ShapeError>(
      [] {
        if (B({3})) FAIL() << "an ambiguous truth value was taken";
      },
      {"[bool]", "bool[3]", "ambiguous", "tj::max"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { static_cast<bool>(F({0})); }, {"[bool]", "f32[0]"}));
}

TEST(ErrorsArray, WrongValueCountOrNegativeDimension) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::array({1.f, 2.f, 3.f, 4.f, 5.f}, {2, 3}); },
                                     {"[array]", "5 values", "[2,3]", "6 elements"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::array(std::vector<int32_t>{}, {1}); },
                                     {"[array]", "0 values", "[1]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::array({1.f}, {-1}); }, {"[array]", "[-1]"}));
}

TEST(ErrorsConstruct, NegativeSizesAndBoolIota) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::zeros({2, -1}); }, {"[full]", "[2,-1]"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::arange(-1); }, {"[arange]", "-1"}));
  EXPECT_TRUE(Throws<tj::TypeError>([] { tj::arange(3, DType::bool_); },
                                    {"[iota]", "bool", "i32, u32 or a float"}));
}

TEST(ErrorsReduce, MaxOfZeroSizeReduction) {
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::max(F({0})); },
                                     {"[reduce_max]", "f32[0]", "no identity"}));
  EXPECT_TRUE(Throws<tj::ShapeError>([] { tj::max(I({3, 0}), {1}); },
                                     {"[reduce_max]", "i32[3,0]"}));
}

TEST(ErrorsEmpty, DefaultConstructedArray) {
  // Exactly tj::Error, naming the operation, with the fix.
  auto exact_error = [](auto f, std::string_view op) {
    try {
      f();
    } catch (const tj::Error& e) {
      EXPECT_EQ(typeid(e), typeid(tj::Error)) << e.what();
      EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("empty tj::Array"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("give it a value"), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << op << " did not throw";
  };
  Array e;
  exact_error([&] { e + 1; }, "[add]");
  exact_error([&] { 2.f * e; }, "[mul]");
  exact_error([&] { tj::exp(e); }, "[exp]");
  exact_error([&] { tj::sum(e, {0}); }, "[reduce_sum]");
  exact_error([&] { tj::reshape(e, {1}); }, "[reshape]");
  exact_error([&] { e.shape(); }, "[shape]");
  exact_error([&] { e.item<float>(); }, "[item]");
  exact_error([&] { static_cast<bool>(e); }, "[bool]");
  exact_error([&] { e[0]; }, "[index]");
}

TEST(ErrorsEmpty, ReductionsWithoutAxesNameTheirOp) {
  // sum(a), mean(a) and max(a) read a.ndim() before checking `a`, so the error names [shape].
  Array e;
  EXPECT_TRUE(Throws<tj::Error>([&] { tj::sum(e); }, {"[reduce_sum]", "empty tj::Array"}));
  EXPECT_TRUE(Throws<tj::Error>([&] { tj::mean(e); }, {"[mean]", "empty tj::Array"}));
  EXPECT_TRUE(Throws<tj::Error>([&] { tj::max(e); }, {"[reduce_max]", "empty tj::Array"}));
}

TEST(ErrorsHierarchy, EverySubclassIsATjErrorAndARuntimeError) {
  EXPECT_THROW(F({3}) + F({4}), tj::Error);
  EXPECT_THROW(F({3})[5], std::runtime_error);
  EXPECT_THROW(F({3})[5], tj::Error);
  static_assert(std::is_base_of_v<tj::Error, tj::ShapeError>);
  static_assert(std::is_base_of_v<tj::Error, tj::TypeError>);
  static_assert(std::is_base_of_v<tj::Error, tj::IndexError>);
  static_assert(std::is_base_of_v<tj::Error, tj::TreeError>);
  static_assert(std::is_base_of_v<tj::Error, tj::ConcretizationError>);
  static_assert(std::is_base_of_v<tj::Error, tj::TracerLeakError>);
  static_assert(std::is_base_of_v<std::runtime_error, tj::Error>);
  // A failed call leaves its operands usable.
  Array a = F({3});
  EXPECT_THROW(a + F({4}), tj::ShapeError);
  EXPECT_EQ((a + 1).to_vector<float>(), (std::vector<float>{1, 1, 1}));
}

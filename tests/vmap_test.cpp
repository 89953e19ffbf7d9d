// tj::vmap: every batching rule against a loop of unbatched calls (the case table shared with
// the AD tests, plus cases whose control flow depends on the mapped values), random in_axes,
// vmap over PRNG keys against a loop over the keys, batched matmul against hand products,
// compositions with jit, grad and jvp, and the errors.
#include <gtest/gtest.h>

#include <random>

#include "rule_cases.h"
#include "throw_message.h"

namespace {

using namespace transform_cases;  // NOLINT: the shared case vocabulary

// Lane `b` of `x` along `axis`: the slice with that axis removed.
Array lane(const Array& x, int64_t axis, int64_t b) {
  tj::Axes starts(static_cast<size_t>(x.ndim()), 0), limits(x.shape().begin(), x.shape().end());
  starts[static_cast<size_t>(axis)] = b;
  limits[static_cast<size_t>(axis)] = b + 1;
  Shape shape = x.shape();
  shape.erase(shape.begin() + axis);
  return tj::reshape(tj::slice(x, starts, limits), shape);
}

// The lanes' results stacked along a new axis 0, computed one unbatched call per lane.
Array loop_over_lanes(Fn f, const std::vector<Array>& args, const std::vector<std::optional<int>>& axes,
                      int64_t size) {
  std::vector<Array> rows;
  for (int64_t b = 0; b < size; ++b) {
    std::vector<Array> one;
    for (size_t i = 0; i < args.size(); ++i)
      one.push_back(axes[i] ? lane(args[i], *axes[i], b) : args[i]);
    Array r = f(one);
    Shape s = r.shape();
    s.insert(s.begin(), 1);
    rows.push_back(tj::reshape(r, s));
  }
  return tj::concatenate(rows, 0);
}

// A batched argument for input `in` with the batch of `size` at `axis` (none: unbatched).
Array batched_input(std::mt19937& rng, const Input& in, std::optional<int> axis, int64_t size,
                    DType dtype) {
  Shape shape = in.shape;
  if (axis) shape.insert(shape.begin() + *axis, size);
  return random_array(rng, shape, in.lo, in.hi, dtype);
}

// Cases whose control flow or loop length depends on the mapped values: the rules' masked
// and per-lane paths, which the AD table (with static predicates) does not reach.
std::vector<RuleCase> lane_dependent_cases() {
  using V = const std::vector<Array>&;
  using C = std::pair<Array, Array>;
  // clang-format off
  return {
    {"cond_on_lane", Prim::kCond, {{{3}}, {{3}}}, [](V x) {
       return tj::cond(tj::sum(x[0]) > 0, [&](const Array& a) { return a * x[1]; },
                       [](const Array& a) { return tj::sin(a) - 1; }, x[0]); }},
    {"while_lane_steps", Prim::kWhile, {{{2}, 0.1, 2}}, [](V x) {
       // Doubles until the sum passes 10: 2 to 7 steps, depending on the lane.
       return tj::while_loop([](const C& c) { return tj::sum(c.second) < 10; },
                             [](const C& c) { return C{c.first + 1, c.second * 2}; },
                             C{tj::zeros({2}), x[0]}).first; }},
    {"fori_traced_bound", Prim::kWhile, {{{}, 1, 4}, {{3}}}, [](V x) {
       const Array n = tj::astype(x[0], DType::i32);
       return tj::fori_loop(0, n, [](const Array&, const Array& c) { return c * 1.5 + 1; }, x[1]); }},
    {"scan_batched_consts", Prim::kScan, {{{2}}, {{2}}}, [](V x) {
       auto [c, ys] = tj::scan([&](const Array& c, const std::tuple<>&) {
         return std::pair<Array, Array>{c * x[1] + 1, tj::sum(c)};
       }, x[0], std::tuple<>{}, tj::ScanOptions{.length = 3});
       return tj::concatenate({c, ys}, 0); }},
    {"iota_and_lane", Prim::kIota, {{{4}}}, [](V x) {
       return x[0] * tj::astype(tj::arange(4), x[0].dtype()); }},
    {"batched_matmul_both", Prim::kMatmul, {{{2, 3}}, {{3, 2}}}, [](V x) {
       return tj::matmul(tj::tanh(x[0]), x[1]); }},
    {"custom_vjp", Prim::kCustomVjp, {{{3}}, {{3}}}, [](V x) {
       auto f = tj::custom_vjp([](const Array& a, const Array& b) { return tj::sin(a) * b; },
                               [](const Array& a, const Array& b) { return std::pair{tj::sin(a) * b, a}; },
                               [](const Array& a, const Array& ct) { return std::tuple{ct, ct * a}; });
       return f(x[0], x[1]); }},
  };
  // clang-format on
}

std::vector<RuleCase> all_cases() {
  std::vector<RuleCase> cases = rule_cases();
  for (RuleCase& c : lane_dependent_cases()) cases.push_back(std::move(c));
  return cases;
}

// Reductions and contractions may sum in another order once batched; everything else moves
// the same elements through the same operations and matches bit for bit.
double tolerance(const RuleCase& rc) {
  const tj::ir::PrimKind kind = tj::ir::prim_info(rc.prim).kind;
  return kind == tj::ir::PrimKind::Reduce || kind == tj::ir::PrimKind::Contract ||
                 kind == tj::ir::PrimKind::Region
             ? 1e-12
             : 0;
}

class VmapRuleTest : public ::testing::TestWithParam<RuleCase> {
 protected:
  static constexpr int64_t kSize = 3;

  // vmap with these in_axes (eagerly, and under jit) against the loop over lanes.
  void check(const std::vector<std::optional<int>>& axes, std::mt19937& rng) {
    const RuleCase& rc = GetParam();
    std::vector<Array> args;
    for (size_t i = 0; i < rc.inputs.size(); ++i)
      args.push_back(batched_input(rng, rc.inputs[i], axes[i], kSize, DType::f64));
    const Array want = loop_over_lanes(rc.f, args, axes, kSize);
    // The case functions take one std::vector argument, whose in_axes entry would apply to
    // every leaf: per-input axes go through a wrapper taking the inputs one by one.
    std::vector<Array> got;
    switch (args.size()) {
      case 1: {
        auto g = tj::vmap([&](const Array& a) { return rc.f({a}); }, {.in_axes = {axes[0]}});
        got = {g(args[0]), tj::jit(g)(args[0])};
        break;
      }
      case 2: {
        auto g = tj::vmap([&](const Array& a, const Array& b) { return rc.f({a, b}); },
                          {.in_axes = {axes[0], axes[1]}});
        got = {g(args[0], args[1]), tj::jit(g)(args[0], args[1])};
        break;
      }
      case 3: {
        auto g = tj::vmap([&](const Array& a, const Array& b, const Array& c) { return rc.f({a, b, c}); },
                          {.in_axes = {axes[0], axes[1], axes[2]}});
        got = {g(args[0], args[1], args[2]), tj::jit(g)(args[0], args[1], args[2])};
        break;
      }
      default:
        FAIL() << "case with " << args.size() << " inputs";
    }
    ASSERT_EQ(got[0].shape(), want.shape());
    expect_close(got[0], values(want), tolerance(rc), rc.name + " eager");
    ASSERT_EQ(got[1].shape(), want.shape());
    expect_close(got[1], values(want), std::max(tolerance(rc), 1e-12), rc.name + " jit");
  }
};

TEST_P(VmapRuleTest, EveryInputMappedOnAxisZero) {
  std::mt19937 rng(11);
  check(std::vector<std::optional<int>>(GetParam().inputs.size(), 0), rng);
}

TEST_P(VmapRuleTest, RandomInAxes) {
  // Each input mapped on a random axis or not at all; at least one mapped. Seeded per case.
  const RuleCase& rc = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(rc.name)));
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<std::optional<int>> axes;
    bool any = false;
    for (const Input& in : rc.inputs) {
      const int choice = std::uniform_int_distribution<int>(-1, static_cast<int>(in.shape.size()))(rng);
      axes.push_back(choice < 0 ? std::nullopt : std::optional<int>(choice));
      any = any || choice >= 0;
    }
    if (!any) axes[0] = 0;
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    check(axes, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(VmapRules, VmapRuleTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

TEST(VmapRuleTable, EveryPrimitiveHasACase) {
  std::vector<bool> covered(tj::ir::kNumPrims, false);
  for (const RuleCase& rc : all_cases()) covered[static_cast<size_t>(rc.prim)] = true;
  // Reached through other cases' programs rather than a case of their own: convert (astype in
  // the iota case), comparisons (select, cond, while), debug_print (its own test below),
  // all_sum (vmap over rank-dependent rows in the MPI check, tests/mpi_check).
  for (Prim p : {Prim::kConvert, Prim::kLt, Prim::kGt, Prim::kDebugPrint, Prim::kAllSum})
    covered[static_cast<size_t>(p)] = true;
  for (Prim p : tj::ir::all_prims()) {
    const bool bits = tj::ir::prim_info(p).kind == tj::ir::PrimKind::Compare ||
                      p == Prim::kAnd || p == Prim::kOr || p == Prim::kXor || p == Prim::kShl ||
                      p == Prim::kShr || p == Prim::kBitcast || p == Prim::kSign ||
                      p == Prim::kStopGradient;
    if (!bits) {
      EXPECT_TRUE(covered[static_cast<size_t>(p)]) << tj::ir::prim_name(p);
    }
  }
}

TEST(VmapBits, IntegerAndBitPrimitivesMatchTheLoop) {
  // The primitives without a float case: bit operations, comparisons, sign, bitcast, on u32/i32.
  auto f = [](const Array& a, const Array& b) {
    Array u = tj::astype(a, DType::u32), v = tj::astype(b, DType::u32);
    Array bits = ((u & v) | (u ^ (v << 2u))) >> 1u;
    Array cmp = tj::astype(a == b, DType::i32) + tj::astype(a != b, DType::i32) * 2 +
                tj::astype(a <= b, DType::i32) * 4 + tj::astype(a >= b, DType::i32) * 8;
    return tj::astype(bits, DType::i32) + cmp + tj::astype(tj::sign(tj::stop_gradient(a - b)), DType::i32) +
           tj::bitcast(tj::bitcast(a - b, DType::u32), DType::i32);
  };
  const Array a = tj::array(std::vector<int32_t>{3, 9, -4, 7, 0, 12}, {2, 3});
  const Array b = tj::array(std::vector<int32_t>{5, 9, 1}, {3});
  const Array got = tj::vmap(f, {.in_axes = {0, std::nullopt}})(a, b);
  for (int64_t r = 0; r < 2; ++r)
    EXPECT_EQ(lane(got, 0, r).to_vector<int32_t>(), f(a[r], b).to_vector<int32_t>()) << "row " << r;
}

TEST(VmapValues, BatchedMatmulByHand) {
  // Two 2x2 products: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]] and
  // [[1,0],[0,1]] @ [[2,3],[4,5]] = [[2,3],[4,5]].
  const Array a = tj::array(std::vector<float>{1, 2, 3, 4, 1, 0, 0, 1}, {2, 2, 2});
  const Array b = tj::array(std::vector<float>{5, 6, 7, 8, 2, 3, 4, 5}, {2, 2, 2});
  const std::vector<double> want{19, 22, 43, 50, 2, 3, 4, 5};
  expect_close(tj::matmul(a, b), want, 0);
  expect_close(tj::jit([](const Array& x, const Array& y) { return tj::matmul(x, y); })(a, b), want, 0);
  expect_close(tj::vmap([](const Array& x, const Array& y) { return tj::matmul(x, y); })(a, b), want, 0);
  // Broadcast batch dimensions: one left matrix for both right ones.
  const Array one = tj::array(std::vector<float>{1, 2, 3, 4}, {2, 2});
  expect_close(tj::matmul(tj::reshape(one, {1, 2, 2}), b),
               {19, 22, 43, 50, 10, 13, 22, 29}, 0);
  // The batched product is one matmul equation of rank 3 in the IR, not a loop.
  auto ir = tj::make_ir(tj::vmap([](const Array& x, const Array& y) { return tj::matmul(x, y); }))(a, b);
  EXPECT_EQ(count_prim(ir.function(), Prim::kMatmul), 1);
  EXPECT_EQ(count_prim(ir.function(), Prim::kWhile) + count_prim(ir.function(), Prim::kScan), 0);
}

TEST(VmapValues, MatmulGradientOverBatches) {
  // d/dA sum((A B)^2) = 2 (A B) B^T per batch. With A = ones, every row of A B is B's column
  // sums: [12, 14] for B = [[5,6],[7,8]], so the gradient rows are 2 [12*5 + 14*6, 12*7 + 14*8]
  // = [288, 392]; [6, 8] for [[2,3],[4,5]], giving 2 [6*2 + 8*3, 6*4 + 8*5] = [72, 128].
  const Array a = tj::ones({2, 2, 2});
  const Array b = tj::array(std::vector<float>{5, 6, 7, 8, 2, 3, 4, 5}, {2, 2, 2});
  auto loss = [&](const Array& x) { return tj::sum(tj::square(tj::matmul(x, b))); };
  const std::vector<double> want{288, 392, 288, 392, 72, 128, 72, 128};
  expect_close(tj::grad(loss)(a), want, 1e-6);
  expect_close(tj::jit(tj::grad(loss))(a), want, 1e-6);
}

TEST(VmapRandom, NormalAndUniformOverSplitKeysEqualALoopInBothSchemes) {
  // JAX documents vmap over keys as equal to a loop over them; bit for bit here too.
  const bool saved = tj::random::threefry_partitionable();  // restored: later tests see the default
  for (bool partitionable : {false, true}) {
    tj::random::set_threefry_partitionable(partitionable);
    const Array keys = tj::random::split(tj::random::key(42), 4);
    const Array n = tj::vmap([](const Array& k) { return tj::random::normal(k, {3}); })(keys);
    const Array u = tj::jit(tj::vmap([](const Array& k) { return tj::random::uniform(k, {2, 2}); }))(keys);
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_EQ(lane(n, 0, i).to_vector<float>(), tj::random::normal(keys[i], {3}).to_vector<float>())
          << "partitionable " << partitionable << " key " << i;
      EXPECT_EQ(lane(u, 0, i).to_vector<float>(), tj::random::uniform(keys[i], {2, 2}).to_vector<float>())
          << "partitionable " << partitionable << " key " << i;
    }
  }
  tj::random::set_threefry_partitionable(saved);
}

TEST(VmapCompose, PerExampleGradientsUnderJit) {
  // The seed's loss per example: (w x + b - y)^2, so dL/dw = 2 (w x + b - y) x.
  auto loss = [](const Array& w, const Array& x, const Array& y) { return tj::square(w * x + 0.5 - y); };
  const Array w = tj::full({}, 2.0, DType::f32);
  const Array xs = tj::array(std::vector<float>{1, 2, 3}, {3});
  const Array ys = tj::array(std::vector<float>{1, 1, 1}, {3});
  auto per_example = tj::jit(tj::vmap(tj::grad(loss), {.in_axes = {std::nullopt, 0, 0}}));
  expect_close(per_example(w, xs, ys), {2 * 1.5 * 1, 2 * 3.5 * 2, 2 * 5.5 * 3}, 1e-6);
  // grad of the summed vmap is the sum of the per-example gradients.
  auto total = [&](const Array& w2) {
    return tj::sum(tj::vmap(loss, {.in_axes = {std::nullopt, 0, 0}})(w2, xs, ys));
  };
  expect_close(tj::grad(total)(w), {3 + 14 + 33}, 1e-6);
  // vmap of a jitted function; jvp of a vmapped one.
  auto sq = tj::jit([](const Array& x) { return x * x; });
  expect_close(tj::vmap(sq)(xs), {1, 4, 9}, 0);
  auto [out, tan] = tj::jvp(tj::vmap(sq), std::tuple{xs}, std::tuple{tj::ones({3})});
  expect_close(tan, {2, 4, 6}, 0);
}

TEST(VmapCompose, PytreeArgumentsAndOutAxes) {
  std::vector<Array> pair{tj::reshape(tj::astype(tj::arange(6), DType::f32), {2, 3}), tj::ones({2, 3})};
  auto f = [](const std::vector<Array>& v) { return v[0] + v[1]; };
  // Mapped over axis 1 of both leaves, batch axis placed last in the output.
  const Array got = tj::vmap(f, {.in_axes = {1}, .out_axes = -1})(pair);
  ASSERT_EQ(got.shape(), (Shape{2, 3}));
  expect_close(got, {1, 2, 3, 4, 5, 6}, 0);
  // An unbatched output gets the batch axis too.
  const Array c = tj::vmap([](const Array&) { return Array(7.f); })(tj::ones({4}));
  expect_close(c, {7, 7, 7, 7}, 0);
}

// As JAX's documented example (vmap of f over arange(3.) prints x: 0.0, x: 1.0, x: 2.0, then the
// y lines): one line per lane, in lane order, each print's lanes before the next print's.
// Unbatched operands print the same in every lane; eager, jitted and batched-in-jit alike.
TEST(VmapEffects, DebugPrintInsideVmapPrintsEachLane) {
  const Array k = tj::array({7.f, 8.f});
  auto f = [&](const Array& x) {
    tj::debug::print("x = {} k = {}", x, k);
    const Array y = x * 2;
    tj::debug::print("y = {}", y);
    return y;
  };
  const std::string want = "x = [1. 2.] k = [7. 8.]\nx = [3. 4.] k = [7. 8.]\n"
                           "y = [2. 4.]\ny = [6. 8.]\n";
  const Array xs = tj::array(std::vector<float>{1, 2, 3, 4}, {2, 2});
  testing::internal::CaptureStdout();
  const Array eager = tj::vmap(f)(xs);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), want);
  auto jitted = tj::jit(tj::vmap(f));
  jitted(xs);  // the first call traces (no print) and runs the compiled prints
  testing::internal::CaptureStdout();
  const Array again = jitted(xs);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), want);
  expect_close(again, {2, 4, 6, 8}, 0);
  // Mapped over axis 1: lane i is column i.
  testing::internal::CaptureStdout();
  tj::vmap([](const Array& x) {
    tj::debug::print("{}", x);
    return x;
  }, {.in_axes = {1}})(xs);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "[1. 3.]\n[2. 4.]\n");
}

void ExpectMentions(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts) EXPECT_NE(message.find(part), std::string::npos) << part << " in: " << message;
}

TEST(VmapErrors, SizesAxesAndCounts) {
  auto f = [](const Array& a, const Array& b) { return a + b; };
  ExpectMentions(ThrowMessage<tj::ShapeError>([&] { tj::vmap(f)(tj::ones({3}), tj::ones({4})); }),
                 {"[vmap]", "argument 0", "argument 1", "size 3", "size 4"});
  auto first = [](const std::vector<Array>& v) { return v[0]; };
  ExpectMentions(ThrowMessage<tj::ShapeError>([&] {
                   tj::vmap(first)(std::vector<Array>{tj::ones({2}), tj::ones({5})});
                 }),
                 {"[vmap]", "argument 0 leaf [0]", "argument 0 leaf [1]"});
  ExpectMentions(ThrowMessage<tj::ShapeError>(
                     [&] { tj::vmap(f, {.in_axes = {1, 0}})(tj::ones({3}), tj::ones({3})); }),
                 {"[vmap]", "in_axes 1", "out of range", "f32[3]"});
  ExpectMentions(ThrowMessage<tj::Error>(
                     [&] { tj::vmap(f, {.in_axes = {0}})(tj::ones({3}), tj::ones({3})); }),
                 {"[vmap]", "1 entries for 2 arguments"});
  ExpectMentions(ThrowMessage<tj::Error>([&] {
                   tj::vmap(f, {.in_axes = {std::nullopt, std::nullopt}})(tj::ones({3}), tj::ones({3}));
                 }),
                 {"[vmap]", "no argument is mapped"});
  ExpectMentions(ThrowMessage<tj::ShapeError>(
                     [&] { tj::vmap(f, {.out_axes = 2})(tj::ones({3}), tj::ones({3})); }),
                 {"[vmap]", "out_axes 2", "f32[3]"});
  // The function still works afterwards.
  expect_close(tj::vmap(f)(tj::ones({2}), tj::ones({2})), {2, 2}, 0);
}

}  // namespace

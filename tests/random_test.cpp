// tj::random against the values JAX itself published (tests, docstrings, notebooks; see
// shared/JAX-PRNG-FACTS.md for each source). Keys, bits and uniforms compare exactly; normals
// within 1e-6 (the 2021 XLA:CPU transcendentals differ from today's in the last bits); values
// JAX printed to 2 decimals compare after rounding to 2 decimals.
#include "tracejit/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "random/erf_inv.h"
#include "random/threefry.h"
#include "tracejit/detail/trace.h"
#include "tracejit/error.h"
#include "tracejit/ops.h"

namespace tj = tracejit;
namespace rnd = tracejit::random;

namespace {

using U32s = std::vector<uint32_t>;

// Selects a threefry scheme for a scope and restores the previous one after.
class SchemeGuard {
 public:
  explicit SchemeGuard(bool partitionable) : saved_(rnd::threefry_partitionable()) {
    rnd::set_threefry_partitionable(partitionable);
  }
  ~SchemeGuard() { rnd::set_threefry_partitionable(saved_); }
  SchemeGuard(const SchemeGuard&) = delete;
  SchemeGuard& operator=(const SchemeGuard&) = delete;

 private:
  bool saved_;
};

class RandomOriginal : public ::testing::Test {
  SchemeGuard guard_{false};
};
class RandomPartitionable : public ::testing::Test {
  SchemeGuard guard_{true};
};

U32s u32s(const tj::Array& a) { return a.to_vector<uint32_t>(); }
std::vector<float> f32s(const tj::Array& a) { return a.to_vector<float>(); }

// JAX printed these with precision=2: compare the values rounded to 2 decimals.
void expect_2dp(const std::vector<double>& got, const std::vector<double>& published) {
  ASSERT_EQ(got.size(), published.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::lround(got[i] * 100), std::lround(published[i] * 100))
        << "element " << i << ": got " << got[i] << ", published " << published[i];
}
void expect_2dp(const tj::Array& got, const std::vector<double>& published) {
  expect_2dp(got.to_vector<double>(), published);
}

void expect_near(const tj::Array& got, const std::vector<double>& published, double tol) {
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), published.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], published[i], tol) << "element " << i;
}

// scipy.fft.dct (type II, norm=None) along `axis` of a rows x cols matrix, the input
// truncated to n along that axis: y[k] = 2 * sum_i x[i] cos(pi k (2i + 1) / (2n)).
std::vector<double> dct2(const std::vector<double>& x, int rows, int cols, int n, int axis) {
  const int out_rows = axis == 0 ? n : rows, out_cols = axis == 1 ? n : cols;
  std::vector<double> y(static_cast<size_t>(out_rows * out_cols));
  for (int r = 0; r < out_rows; ++r)
    for (int c = 0; c < out_cols; ++c) {
      const int k = axis == 0 ? r : c;
      double s = 0;
      for (int i = 0; i < n; ++i) {
        double xi =
            axis == 0 ? x[static_cast<size_t>(i * cols + c)] : x[static_cast<size_t>(r * cols + i)];
        s += xi * std::cos(std::numbers::pi * k * (2 * i + 1) / (2.0 * n));
      }
      y[static_cast<size_t>(r * out_cols + c)] = 2 * s;
    }
  return y;
}

tj::Array u32_scalar(uint32_t v) { return tj::array<uint32_t>({v}, {}); }

}  // namespace

// --- The hash: Random123's known-answer tests, as JAX's testThreefry2x32 ---------------------

TEST(RandomThreefry, KnownAnswers) {
  struct Kat {
    uint32_t k0, k1, x0, x1, y0, y1;
  };
  const Kat kats[] = {
      {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6b200159, 0x99ba4efe},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x1cb996fc, 0xbb002be7},
      {0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3, 0xc4923a9c, 0x483df7a0},
  };
  for (const Kat& k : kats) {
    auto [y0, y1] = tj::detail::threefry2x32(u32_scalar(k.k0), u32_scalar(k.k1), u32_scalar(k.x0),
                                             u32_scalar(k.x1));
    EXPECT_EQ(y0.item<uint32_t>(), k.y0);
    EXPECT_EQ(y1.item<uint32_t>(), k.y1);
  }
}

// testThreefry2x32Large, on fewer lanes: every lane of a vector hashes alike.
TEST(RandomThreefry, ManyLanesHashAlike) {
  const int64_t n = 100'000;
  auto [y0, y1] = tj::detail::threefry2x32(u32_scalar(0x13198a2e), u32_scalar(0x03707344),
                                           tj::full({n}, 0x243f6a88, tj::DType::u32),
                                           tj::full({n}, 0x85a308d3, tj::DType::u32));
  EXPECT_EQ(u32s(y0), U32s(n, 0xc4923a9c));
  EXPECT_EQ(u32s(y1), U32s(n, 0x483df7a0));
}

// --- Keys ------------------------------------------------------------------------------------

TEST(RandomKey, SeedSplitsIntoTwoWords) {
  tj::Array k = rnd::key(42);
  EXPECT_EQ(k.dtype(), tj::DType::u32);
  EXPECT_EQ(k.shape(), tj::Shape{2});
  EXPECT_EQ(u32s(k), (U32s{0, 42}));
  // threefry_seed: [seed >> 32, seed & 0xFFFFFFFF].
  EXPECT_EQ(u32s(rnd::key((uint64_t{7} << 32) | 9)), (U32s{7, 9}));
}

TEST(RandomKey, PartitionableIsTheDefaultAndGuardsRestoreIt) {
  EXPECT_TRUE(rnd::threefry_partitionable());
  {
    SchemeGuard original(false);
    EXPECT_FALSE(rnd::threefry_partitionable());
    {
      SchemeGuard partitionable(true);
      EXPECT_TRUE(rnd::threefry_partitionable());
    }
    EXPECT_FALSE(rnd::threefry_partitionable());
  }
  EXPECT_TRUE(rnd::threefry_partitionable());
  // The default draws today's JAX values (jax/random.py module docstring).
  EXPECT_EQ(rnd::uniform(rnd::key(0), {}).item<float>(), 0.947667f);
}

// --- Original scheme (jax < 0.5.0) -----------------------------------------------------------

TEST_F(RandomOriginal, SplitKey42) {
  tj::Array keys = rnd::split(rnd::key(42));
  EXPECT_EQ(keys.shape(), (tj::Shape{2, 2}));
  EXPECT_EQ(u32s(keys[0]), (U32s{2465931498u, 3679230171u}));
  EXPECT_EQ(u32s(keys[1]), (U32s{255383827u, 267815257u}));
}

TEST_F(RandomOriginal, SplitKey0Into4) {
  EXPECT_EQ(u32s(rnd::split(rnd::key(0), 4)),
            (U32s{2285895361u, 1501764800u, 1518642379u, 4090693311u, 433833334u, 4221794875u,
                  839183663u, 3740430601u}));
}

TEST_F(RandomOriginal, FoldIn) {
  EXPECT_EQ(u32s(rnd::fold_in(rnd::key(0), 4)), (U32s{2285895361u, 433833334u}));
}

TEST_F(RandomOriginal, Bits) {
  EXPECT_EQ(u32s(rnd::bits(rnd::key(1701), {3})), (U32s{56197195u, 4200222568u, 961309823u}));
}

TEST_F(RandomOriginal, Bits64) {
  // bits(key(1701), (3,), uint64) with x64: the words are (value >> 32, value & 0xFFFFFFFF).
  const uint64_t published[] = {3982329540505020460u, 16822122385914693683u, 7882654074788531506u};
  auto [hi, lo] = tj::detail::threefry_bits64(rnd::key(1701), {3}, /*partitionable=*/false);
  U32s h = u32s(hi), l = u32s(lo);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(h[i], static_cast<uint32_t>(published[i] >> 32)) << i;
    EXPECT_EQ(l[i], static_cast<uint32_t>(published[i])) << i;
  }
}

TEST_F(RandomOriginal, UniformF64FromPublishedBits64) {
  // _uniform for f64: bitcast((bits >> 12) | bits(1.0)) - 1, which is exactly (bits >> 12) / 2^52.
  const uint64_t published[] = {3982329540505020460u, 16822122385914693683u, 7882654074788531506u};
  std::vector<double> want;
  for (uint64_t b : published) want.push_back(std::ldexp(static_cast<double>(b >> 12), -52));
  EXPECT_EQ(rnd::uniform(rnd::key(1701), {3}, tj::DType::f64).to_vector<double>(), want);
}

TEST_F(RandomOriginal, Uniform) {
  EXPECT_EQ(rnd::uniform(rnd::key(0), {}).item<float>(), 0.41845703f);
  EXPECT_EQ(rnd::uniform(rnd::split(rnd::key(0))[1], {}).item<float>(), 0.10536897f);
  EXPECT_EQ(f32s(rnd::uniform(rnd::key(0), {3})),
            (std::vector<float>{0.9653214f, 0.31468165f, 0.63302994f}));
}

TEST_F(RandomOriginal, UniformRange) {
  tj::Array x = rnd::uniform(rnd::key(42), {3, 3}, tj::DType::f32, -5, 5);
  EXPECT_EQ(x.shape(), (tj::Shape{3, 3}));
  expect_2dp(x, {1.44, -1.77, -3.07, 3.86, 2.25, -3.08, -1.55, -2.48, 1.32});
}

TEST_F(RandomOriginal, Normal) {
  const double tol = 1e-6;
  tj::Array key = rnd::key(42);
  expect_near(rnd::normal(key, {}), {-0.18471184}, tol);
  expect_near(rnd::normal(rnd::split(key)[1], {}), {1.3694694}, tol);
  tj::Array keys = rnd::split(key, 3);
  const double each[] = {-0.04838839, 0.10796146, -1.2226542};
  for (int i = 0; i < 3; ++i) expect_near(rnd::normal(keys[i], {}), {each[i]}, tol);
  expect_near(rnd::normal(key, {3}), {0.18693541, -1.2806507, -1.5593133}, tol);
}

TEST_F(RandomOriginal, NormalDct) {
  std::vector<double> x = rnd::normal(rnd::key(0), {3, 3}).to_vector<double>();
  expect_2dp(dct2(x, 3, 3, 3, 1), {-0.58, -0.33, -1.08, -0.88, -1.01, -1.79, -1.06, -2.43, 1.24});
}

// --- Partitionable scheme (the default since jax 0.5.0) --------------------------------------

TEST_F(RandomPartitionable, Uniform) {
  EXPECT_EQ(rnd::uniform(rnd::key(0), {}).item<float>(), 0.947667f);
  // Printed by NumPy to its 8 decimal places (the float's shortest form is 0.0072938204).
  float u = rnd::uniform(rnd::split(rnd::key(0))[1], {}).item<float>();
  EXPECT_EQ(std::llround(double{u} * 1e8), 729382);
  EXPECT_EQ(f32s(rnd::uniform(rnd::key(0), {3})),
            (std::vector<float>{0.947667f, 0.9785799f, 0.33229148f}));
}

TEST_F(RandomPartitionable, UniformRange) {
  expect_2dp(rnd::uniform(rnd::key(42), {3, 3}, tj::DType::f32, -5, 5),
             {-0.11, 1.8, 1.16, 0.61, -0.49, 0.86, -4.25, 2.75, 1.99});
  expect_2dp(rnd::uniform(rnd::key(1), {3, 3}, tj::DType::f32, -5, 5),
             {-0.61, 0.34, -0.54, -0.62, 3.97, 0.59, 4.84, 3.42, -1.14});
  expect_2dp(rnd::uniform(rnd::key(42), {3, 3}, tj::DType::f32, -10, 10),
             {-0.23, 3.6, 2.33, 1.22, -0.99, 1.72, -8.5, 5.5, 3.98});
}

TEST_F(RandomPartitionable, NormalDct) {
  std::vector<double> x = rnd::normal(rnd::key(0), {3, 3}).to_vector<double>();
  expect_2dp(dct2(x, 3, 3, 3, 1), {6.43, 3.56, -2.86, -1.75, 1.55, -1.4, 1.33, -2.01, -0.82});
  expect_2dp(dct2(x, 3, 3, 2, 1), {7.3, -0.57, 0.19, -0.36, -0., -1.4});
  expect_2dp(dct2(x, 3, 3, 2, 0), {3.09, 4.4, -2.81, 2.41, 2.62, 0.76});
}

TEST_F(RandomPartitionable, FoldInSplitSymmetry) {
  for (uint64_t seed : {0u, 42u, 1701u}) {
    tj::Array key = rnd::key(seed);
    tj::Array keys = rnd::split(key, 7);
    for (uint32_t i = 0; i < 7; ++i) EXPECT_EQ(u32s(rnd::fold_in(key, i)), u32s(keys[i])) << i;
  }
  // fold_in is scheme-independent: the published original-scheme fold_in(key(0), 4).
  EXPECT_EQ(u32s(rnd::split(rnd::key(0), 5)[4]), (U32s{2285895361u, 433833334u}));
}

TEST_F(RandomPartitionable, SplitShapes) {
  EXPECT_EQ(rnd::split(rnd::key(3), 1).shape(), (tj::Shape{1, 2}));
  EXPECT_EQ(rnd::bits(rnd::key(3), {2, 0, 4}).shape(), (tj::Shape{2, 0, 4}));
  EXPECT_EQ(rnd::normal(rnd::key(3), {0}).shape(), (tj::Shape{0}));
  // A shape's elements are numbered row-major, so a draw does not depend on how it is shaped.
  EXPECT_EQ(u32s(rnd::bits(rnd::key(3), {2, 3})), u32s(rnd::bits(rnd::key(3), {6})));
}

// --- Both schemes ----------------------------------------------------------------------------

TEST(RandomStats, NormalMomentsAndUniformBounds) {
  for (bool partitionable : {false, true}) {
    SchemeGuard guard(partitionable);
    const int64_t n = 100'000;
    for (tj::DType d : {tj::DType::f32, tj::DType::f64}) {
      std::vector<double> z = rnd::normal(rnd::key(7), {n}, d).to_vector<double>();
      double mean = 0, sq = 0;
      for (double v : z) mean += v;
      mean /= n;
      for (double v : z) sq += (v - mean) * (v - mean);
      const double sd = std::sqrt(sq / n);
      // Standard errors: 1/sqrt(n) = 0.0032 for the mean, 1/sqrt(2n) = 0.0022 for the std;
      // the tolerances are 6 of them.
      EXPECT_NEAR(mean, 0, 0.019) << partitionable << " " << d;
      EXPECT_NEAR(sd, 1, 0.014) << partitionable << " " << d;

      std::vector<double> u = rnd::uniform(rnd::key(8), {n}, d, -2, 3).to_vector<double>();
      double lo = 1e9, hi = -1e9, umean = 0;
      for (double v : u) lo = std::min(lo, v), hi = std::max(hi, v), umean += v;
      umean /= n;
      EXPECT_GE(lo, -2);
      EXPECT_LT(hi, 3);
      EXPECT_NEAR(umean, 0.5, 6 * 5 / std::sqrt(12.0 * n));  // std of U(-2,3) is 5/sqrt(12)
    }
  }
}

TEST(RandomStats, EmptyRangeGivesMinval) {
  // As JAX: max(minval, u * (maxval - minval) + minval) with maxval <= minval is minval.
  EXPECT_EQ(f32s(rnd::uniform(rnd::key(0), {3}, tj::DType::f32, 2, 2)),
            (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(f32s(rnd::uniform(rnd::key(0), {3}, tj::DType::f32, 2, 1)),
            (std::vector<float>{2, 2, 2}));
}

TEST(RandomErfInv, EdgesAndInverse) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32s(tj::detail::erf_inv(tj::array({-1.f, 0.f, 1.f}, {3}))),
            (std::vector<float>{-inf, 0, inf}));
  // erf(erf_inv(x)) == x up to the approximations' error.
  std::vector<double> xs;
  for (int i = -99; i <= 99; ++i) xs.push_back(i / 100.0);
  xs.push_back(1 - 1e-7);
  std::vector<double> y64 = tj::detail::erf_inv(tj::array(xs)).to_vector<double>();
  std::vector<float> xf(xs.begin(), xs.end());
  xf.back() = std::nextafter(1.f, 0.f);
  std::vector<float> y32 = f32s(tj::detail::erf_inv(tj::array(xf)));
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(std::erf(y64[i]), xs[i], 1e-15) << xs[i];
    EXPECT_NEAR(std::erf(double{y32[i]}), double{xf[i]}, 2e-7) << xf[i];
  }
}

// Everything is built from primitives: drawing from a traced key records IR that, replayed on
// the concrete key, gives the eager values.
TEST(RandomTrace, TracedKeyReplaysToEagerValues) {
  for (bool partitionable : {false, true}) {
    SchemeGuard guard(partitionable);
    tj::detail::Traced traced;
    {
      tj::detail::TraceScope scope("random");
      tj::Array key = scope.new_input(tj::DType::u32, {2}, false);
      EXPECT_TRUE(key.is_tracer());
      traced = scope.finish({rnd::split(key, 3), rnd::fold_in(key, 5), rnd::bits(key, {4}),
                             rnd::uniform(key, {2, 3}), rnd::normal(key, {5}, tj::DType::f64)});
    }
    tj::Array key = rnd::key(1234);
    std::vector<tj::Array> replay = tj::detail::eval_ir(*traced.fn, {&key, 1}, traced.captured);
    ASSERT_EQ(replay.size(), 5u);
    EXPECT_EQ(u32s(replay[0]), u32s(rnd::split(key, 3)));
    EXPECT_EQ(u32s(replay[1]), u32s(rnd::fold_in(key, 5)));
    EXPECT_EQ(u32s(replay[2]), u32s(rnd::bits(key, {4})));
    EXPECT_EQ(f32s(replay[3]), f32s(rnd::uniform(key, {2, 3})));
    EXPECT_EQ(replay[4].to_vector<double>(),
              rnd::normal(key, {5}, tj::DType::f64).to_vector<double>());
  }
}

// --- Errors ----------------------------------------------------------------------------------

template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

TEST(RandomErrors, BadKeys) {
  expect_error<tj::TypeError>(
      [] {
        rnd::split(tj::array({1.f, 2.f}, {2}));
      },
      {"[random.split]", "f32[2]", "tj::random::key(seed)"});
  expect_error<tj::ShapeError>([] { rnd::normal(rnd::split(rnd::key(0)), {3}); },
                               {"[random.normal]", "u32[2,2]", "keys[i]"});
  expect_error<tj::ShapeError>(
      [] {
        rnd::fold_in(tj::array<uint32_t>({1, 2, 3}, {3}), 1);
      },
      {"[random.fold_in]", "u32[3]", "tj::random::key(seed)"});
  expect_error<tj::TypeError>([] { rnd::bits(tj::Array(), {3}); }, {"[random.bits]", "empty"});
}

TEST(RandomErrors, BadShapesAndDtypes) {
  expect_error<tj::ShapeError>([] { rnd::split(rnd::key(0), 0); }, {"[random.split]", "num >= 1"});
  expect_error<tj::ShapeError>(
      [] {
        rnd::uniform(rnd::key(0), {2, -1});
      },
      {"[random.uniform]", "negative", "[2,-1]"});
  expect_error<tj::ShapeError>(
      [] {
        rnd::bits(rnd::key(0), {1 << 16, 1 << 16});
      },
      {"[random.bits]", "2^32"});
  expect_error<tj::TypeError>([] { rnd::uniform(rnd::key(0), {3}, tj::DType::i32); },
                              {"[random.uniform]", "i32", "f32 or f64"});
  expect_error<tj::TypeError>([] { rnd::normal(rnd::key(0), {3}, tj::DType::u32); },
                              {"[random.normal]", "u32"});
}

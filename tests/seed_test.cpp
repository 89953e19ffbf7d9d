// The seed tutorial in C++, as API.md writes it: the Counter prints 1 2 3 and, jitted, 1 1 1;
// CounterV2 prints 1 2 3 jitted or not; the jitted SGD step fits the notebook's regression.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace {

struct Counter {
  int n = 0;
  int count() { n += 1; return n; }
  void reset() { n = 0; }
};

struct CounterV2 {
  std::tuple<Array, Array> count(Array n) { return {n + 1, n + 1}; }
  Array reset() { return Array(0); }
};

using seed::Params;

Params init(Array rng) {
  Array keys = tj::random::split(rng);
  return {tj::random::normal(keys[0], {}), tj::random::normal(keys[1], {})};
}

using seed::loss;

TEST(Seed, CountersPrintWhatTheTutorialSays) {
  std::ostringstream out;
  Counter counter;
  for (int i = 0; i < 3; ++i) out << counter.count() << "\n";
  counter.reset();
  auto fast_count = tj::jit([&] { return counter.count(); }, {.warn_constant_outputs = false});
  for (int i = 0; i < 3; ++i) out << fast_count() << "\n";
  CounterV2 counter2;
  Array state = counter2.reset();
  auto fast_count2 = tj::jit([&](Array n) { return counter2.count(n); });
  for (int i = 0; i < 3; ++i) {
    auto [value, next] = fast_count2(state);
    state = next;
    out << value << "\n";
  }
  EXPECT_EQ(out.str(), "1\n2\n3\n1\n1\n1\n1\n2\n3\n");
}

// Fits the seed's regression and compares it with the closed-form least-squares line of the
// same data, computed here in double precision.
void check_regression(bool partitionable) {
  bool saved = tj::random::threefry_partitionable();
  tj::random::set_threefry_partitionable(partitionable);
  const float learning_rate = 0.005f;
  auto update = tj::jit([&](const Params& params, const Array& x, const Array& y) {
    Params g = tj::grad(loss)(params, x, y);
    return tj::tree_map([&](const Array& p, const Array& d) { return p - d * learning_rate; },
                        params, g);
  });
  Array rng = tj::random::key(42);
  Array keys = tj::random::split(rng);
  Array xs = tj::random::normal(keys[0], {128, 1});
  Array noise = tj::random::normal(keys[1], {128, 1}) * 0.5f;
  Array ys = xs * 2 + (-1) + noise;
  Params params = init(rng);
  for (int i = 0; i < 1000; ++i) params = update(params, xs, ys);
  tj::random::set_threefry_partitionable(saved);

  std::vector<float> x = xs.to_vector<float>(), y = ys.to_vector<float>();
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / 128.0, my += y[i] / 128.0;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  double w = sxy / sxx, b = my - w * mx;
  // 1000 steps at 0.005 shrink the initial error by about (1 - 0.01)^1000 = 4e-5.
  EXPECT_NEAR(params.weight.item<float>(), w, 1e-3);
  EXPECT_NEAR(params.bias.item<float>(), b, 1e-3);
  EXPECT_NEAR(w, 2, 0.15);  // and the data were drawn around w = 2, b = -1
  EXPECT_NEAR(b, -1, 0.15);
  EXPECT_EQ(update.stats().traces, 1);
}

TEST(Seed, RegressionMatchesLeastSquaresPartitionable) { check_regression(true); }
TEST(Seed, RegressionMatchesLeastSquaresOriginal) { check_regression(false); }

TEST(Seed, TracedIrOfLossPrints) {
  Params p{Array(2.f), Array(-1.f)};
  std::ostringstream out;
  out << tj::make_ir(loss)(p, tj::zeros({128, 1}), tj::zeros({128, 1}));
  EXPECT_THAT(out.str(), ::testing::StartsWith("{ lambda ; a:f32[] b:f32[] c:f32[128,1] d:f32[128,1]. let"));
}

}  // namespace

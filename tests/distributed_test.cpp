// tj::distributed in one process (no mpirun): a group of one where all_sum is the identity, and
// the all_sum equation's life in the compiler: traced once per call, never merged or removed,
// a host step between kernels, in program order with other effects, not differentiable. The
// multi-process checks run under mpirun (tests/mpi_check, ctest Mpi.*).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using testing::HasSubstr;
using tj::Array;

namespace {

struct Grads {
  Array w;
  Array b;
};
TRACEJIT_PYTREE(Grads, w, b);

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::vector<float> vec(const Array& a) { return a.to_vector<float>(); }

TEST(Distributed, WithoutMpirunAGroupOfOne) {
  tj::distributed::Group g = tj::distributed::init();
  EXPECT_EQ(g.rank(), 0);
  EXPECT_EQ(g.size(), 1);
  EXPECT_EQ(tj::distributed::init().size(), 1);  // joining again: the same group
  Array x = tj::array({1.f, -2.f, 3.5f}, {3});
  EXPECT_EQ(vec(tj::distributed::all_sum(x)), vec(x));
  EXPECT_EQ(tj::distributed::all_sum(tj::arange(4)).to_vector<int32_t>(),
            (std::vector<int32_t>{0, 1, 2, 3}));
  auto f = tj::jit([](const Array& v) { return tj::distributed::all_sum(v * 2.f) + 1.f; });
  EXPECT_EQ(vec(f(x)), (std::vector<float>{3, -3, 8}));
}

TEST(Distributed, AllSumOfBoolIsATypeError) {
  std::string message = ThrowMessage<tj::TypeError>([] {
    tj::distributed::all_sum(tj::array({true, false}, {2}));
  });
  EXPECT_THAT(message, HasSubstr("all_sum"));
  EXPECT_THAT(message, HasSubstr("astype"));
}

TEST(Distributed, JittedAllSumIsAHostStepBetweenKernels) {
  auto f = tj::jit([](const Array& v) {
    Array total = tj::distributed::all_sum(v * 2.f);  // a kernel, then the host step...
    return tj::sum(total * v);                        // ...then a kernel reading its result
  });
  Array x = tj::array({1.f, 2.f, 3.f}, {3});
  EXPECT_EQ(f(x).item<float>(), 2.f * (1 + 4 + 9));
  const std::string plan = f.lower(x).optimized_ir();
  const size_t host = plan.find("host: ");
  ASSERT_NE(host, std::string::npos) << plan;
  EXPECT_THAT(plan.substr(host, plan.find('\n', host) - host), HasSubstr("= all_sum "));
  const size_t first = plan.find("kernel 0"), reduce = plan.find("(reduce");
  EXPECT_LT(first, host) << plan;
  EXPECT_GT(reduce, host) << plan;
}

TEST(Distributed, EveryCallIsKeptAndNoneIsMerged) {
  auto f = tj::jit([](const Array& v) {
    tj::distributed::all_sum(v);  // unused: still a collective every rank takes part in
    Array a = tj::distributed::all_sum(v), b = tj::distributed::all_sum(v);  // equal, not merged
    return a + b;
  });
  Array x = tj::array({1.f, 2.f}, {2});
  EXPECT_EQ(vec(f(x)), (std::vector<float>{2, 4}));
  EXPECT_EQ(count(tj::make_ir([](const Array& v) {
                    tj::distributed::all_sum(v);
                    return tj::distributed::all_sum(v) + tj::distributed::all_sum(v);
                  })(x)
                      .str(),
                  "all_sum"),
            3);
  EXPECT_EQ(count(f.lower(x).optimized_ir(), "= all_sum"), 3) << f.lower(x).optimized_ir();
}

TEST(Distributed, KeepsProgramOrderWithPrints) {
  auto f = tj::jit([](const Array& v) {
    tj::debug::print("before {}", v);
    Array s = tj::distributed::all_sum(v + 1.f);
    tj::debug::print("after {}", s);
    return s;
  });
  const std::string plan = f.lower(tj::ones({2})).optimized_ir();
  const size_t before = plan.find("before"), sum = plan.find("= all_sum"),
               after = plan.find("after");
  ASSERT_NE(sum, std::string::npos) << plan;
  EXPECT_LT(before, sum) << plan;
  EXPECT_LT(sum, after) << plan;
  testing::internal::CaptureStdout();
  f(tj::ones({2}));
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "before [1. 1.]\nafter [2. 2.]\n");
}

TEST(Distributed, InsideACompiledLoop) {
  auto f = tj::jit([](const Array& x0) {
    return tj::fori_loop(
        0, 5, [](const Array&, const Array& x) { return tj::distributed::all_sum(x) * 2.f; }, x0);
  });
  EXPECT_EQ(vec(f(tj::array({1.f, 3.f}, {2}))), (std::vector<float>{32, 96}));
}

TEST(Distributed, GradThroughAllSumSaysToAverageGradients) {
  auto loss = [](const Array& w) { return tj::sum(tj::distributed::all_sum(w * w)); };
  for (const std::string& message :
       {ThrowMessage<tj::Error>([&] { tj::grad(loss)(tj::ones({3})); }),
        ThrowMessage<tj::Error>([&] { tj::jit(tj::grad(loss))(tj::ones({3})); }),
        ThrowMessage<tj::Error>(
            [&] { tj::jvp(loss, std::tuple{tj::ones({3})}, std::tuple{tj::ones({3})}); })}) {
    EXPECT_THAT(message, HasSubstr("all_sum is not differentiable"));
    EXPECT_THAT(message, HasSubstr("average_gradients"));
  }
  // A sum over ranks that the gradient does not flow through is fine (a global count).
  auto scaled = [](const Array& w, const Array& n) {
    return tj::sum(w * w) / tj::distributed::all_sum(n);
  };
  EXPECT_EQ(vec(tj::grad(scaled)(tj::array({1.f, 2.f}, {2}), Array(2.f))),
            (std::vector<float>{1, 2}));
}

TEST(Distributed, AverageGradientsPacksLeavesIntoOneReduction) {
  Grads g{Array(2.f), tj::array({1.f, 2.f, 3.f, 4.f}, {2, 2})};
  Grads avg = tj::distributed::average_gradients(g);
  EXPECT_EQ(avg.w.item<float>(), 2.f);
  EXPECT_EQ(avg.b.shape(), (tj::Shape{2, 2}));
  EXPECT_EQ(vec(avg.b), (std::vector<float>{1, 2, 3, 4}));
  auto traced = [](const Grads& t) { return tj::distributed::average_gradients(t); };
  EXPECT_EQ(count(tj::make_ir(traced)(g).str(), "all_sum"), 1);
  // One reduction per dtype.
  Grads mixed{Array(2.0), tj::ones({3})};
  EXPECT_EQ(count(tj::make_ir(traced)(mixed).str(), "all_sum"), 2);
  Grads jitted = tj::jit(traced)(mixed);
  EXPECT_EQ(jitted.w.dtype(), tj::DType::f64);
  EXPECT_EQ(jitted.w.item<double>(), 2.0);
  std::string message = ThrowMessage<tj::TypeError>(
      [] { tj::distributed::average_gradients(std::vector<Array>{tj::arange(3)}); });
  EXPECT_THAT(message, HasSubstr("i32[3]"));
}

}  // namespace

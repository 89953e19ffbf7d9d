// Big programs (issue 16): 100,000-op elementwise chains in every mode, and jit nested in jit
// thousands deep, under the default stack. Each case runs in a child process (gtest's threadsafe
// death-test style re-executes this binary), so a stack overflow fails the test instead of
// killing the suite. Values are checked against closed forms: the chain alternates y = y * y and
// y = y + 0.25, whose fixed point 0.5 is exact in f32 and where each pair's derivative is
// 2 * 0.5 * 1 = 1, so sum(chain(0.5)) over 16 elements is 8 and its gradient is all ones.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "backend/fusion.h"
#include "base/sanitizer.h"
#include "passes/pipeline.h"
#include "tracejit/tracejit.h"

namespace {

namespace tj = tracejit;
using tj::Array;

constexpr int kChainOps = 100000;

Array chain(const Array& x, int ops) {
  Array y = x;
  for (int i = 0; i < ops; ++i) y = i % 2 ? y + 0.25f : y * y;
  return tj::sum(y);
}

Array half() { return tj::full({16}, 0.5, tj::DType::f32); }

// Runs `body` in a fresh process; it returns what went wrong, or "" when every check passed.
void in_child_process(const std::function<std::string()>& body) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::string error;
        try {
          error = body();
        } catch (const std::exception& e) {
          error = std::string("threw: ") + e.what();
        }
        if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
        std::_Exit(error.empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

std::string expect_value(const Array& got, float want) {
  float v = got.item<float>();
  return v == want ? "" : "value " + std::to_string(v) + ", expected " + std::to_string(want);
}

std::string expect_all(const Array& got, float want) {
  for (float v : got.to_vector<float>())
    if (v != want) return "element " + std::to_string(v) + ", expected " + std::to_string(want);
  return "";
}

TEST(BigPrograms, RunsUnderTheDefaultStack) {
  // The cases below are meant for the usual 8 MiB main-thread stack; say so when it is larger.
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_STACK, &limit), 0);
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (rlim_t{8} << 20))
    std::fprintf(stderr, "note: the stack limit is above 8 MiB here\n");
}

TEST(BigPrograms, ChainEager) {
  in_child_process([] { return expect_value(chain(half(), kChainOps), 8.f); });
}

TEST(BigPrograms, ChainMakeIr) {
  in_child_process([] {
    tj::IR ir = tj::make_ir([](const Array& x) { return chain(x, kChainOps); })(half());
    std::string text = ir.str();
    size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    return lines > kChainOps ? "" : "printed " + std::to_string(lines) + " lines";
  });
}

TEST(BigPrograms, ChainJit) {
  in_child_process([] {
    auto f = tj::jit([](const Array& x) { return chain(x, kChainOps); });
    return expect_value(f(half()), 8.f);
  });
}

TEST(BigPrograms, ChainGrad) {
  in_child_process([] {
    return expect_all(tj::grad([](const Array& x) { return chain(x, kChainOps); })(half()), 1.f);
  });
}

// The reverse sweep has about three equations per forward one: 100,000 in all.
TEST(BigPrograms, ChainJitOfGrad) {
  in_child_process([] {
    auto g = tj::jit(tj::grad([](const Array& x) { return chain(x, kChainOps / 3); }));
    return expect_all(g(half()), 1.f);
  });
}

// Fusion bounds every kernel, so that LLVM's superlinear cost in one function's size stays out
// of reach (one kernel of 100,000 equations took 34 s to optimize) and the lowering's recursion
// over an inline expression stays shallow.
TEST(BigPrograms, FusedKernelsAreBounded) {
  for (bool with_grad : {false, true}) {
    tj::IR ir = with_grad
                    ? tj::make_ir(tj::grad([](const Array& x) { return chain(x, 5000); }))(half())
                    : tj::make_ir([](const Array& x) { return chain(x, 20000); })(half());
    tj::ir::Function fn = tj::passes::optimize(ir.function());
    tj::backend::FusionPlan plan = tj::backend::plan_fusion(fn);
    size_t eqns = 0;
    for (const tj::backend::Kernel& k : plan.kernels) {
      EXPECT_LE(k.eqns.size(), 512u);
      EXPECT_LE(k.reads.size() + k.writes.size(), 64u);
      eqns += k.eqns.size();
    }
    EXPECT_GE(eqns, fn.eqns.size() / 2) << "most equations are in some kernel";
    EXPECT_GT(plan.kernels.size(), 10u);
  }
}

// Level d calls a jitted level d - 1 inside its trace: d nested traces on the C++ stack.
struct Nested {
  int depth;
  Array operator()(const Array& x) const {
    if (depth == 0) return x + 1.f;
    return tj::jit(Nested{depth - 1})(x) + 1.f;
  }
};

// AddressSanitizer's redzones make each level's frames several times larger: the default 8 MiB
// stack then holds ~2700 levels, and the stack check rightly stops deeper traces.
constexpr int kNestedDepth = tracejit::base::kAddressSanitizer ? 2000 : 3000;

TEST(BigPrograms, JitNestedThousandsDeep) {
  in_child_process([] {
    return expect_all(tj::jit(Nested{kNestedDepth})(tj::zeros({4})), static_cast<float>(kNestedDepth + 1));
  });
}

// Deeper than the stack holds: a ResourceError saying so, not a SIGSEGV; the function then
// works for a depth that fits.
TEST(BigPrograms, JitNestedTooDeepIsAResourceError) {
  in_child_process([] {
    std::string message;
    try {
      tj::jit(Nested{100000})(tj::zeros({4}));
      return std::string("no error");
    } catch (const tj::ResourceError& e) {
      message = e.what();
    }
    if (message.find("nested") == std::string::npos || message.find("fori_loop") == std::string::npos)
      return "message: " + message;
    return expect_all(tj::jit(Nested{10})(tj::zeros({4})), 11.f);
  });
}

}  // namespace

// tj::debug::print in every mode: eager, traced (make_ir), jitted, differentiated, and their
// compositions; the printed text is captured from stdout.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>

#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace {

// What `body` writes to stdout.
std::string captured(const std::function<void()>& body) {
  testing::internal::CaptureStdout();
  body();
  return testing::internal::GetCapturedStdout();
}

TEST(DebugPrint, EagerFormatsArraysAsStreamOutput) {
  Array x = tj::array({0.5f, 1.f, 2.f});
  std::string out = captured([&] { tj::debug::print("x = {}, n = {}", x, 3); });
  std::ostringstream want;
  want << "x = " << x << ", n = " << Array(3) << "\n";
  EXPECT_EQ(out, want.str());
  EXPECT_EQ(out, "x = [0.5 1.  2. ], n = 3\n");
  EXPECT_EQ(captured([] { tj::debug::print("no args {{}}"); }), "no args {}\n");
}

TEST(DebugPrint, TracedShowsEquationAndDoesNotPrintWhileTracing) {
  std::string text;
  std::string out = captured([&] {
    text = tj::make_ir([](const Array& x) {
             tj::debug::print("x is {}", x);
             return x * 2.f;
           })(tj::array({1.f, 2.f}))
               .str();
  });
  EXPECT_EQ(out, "");
  EXPECT_NE(text.find("debug_print[fmt='x is {}'] a"), std::string::npos) << text;
}

TEST(DebugPrint, TwoEqualPrintsAreBothRecorded) {
  std::string text = tj::make_ir([](const Array& x) {
                       tj::debug::print("{}", x);
                       tj::debug::print("{}", x);
                       return x;
                     })(tj::array({1.f}))
                         .str();
  size_t first = text.find("debug_print");
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_NE(text.find("debug_print", first + 1), std::string::npos) << text;
}

TEST(DebugPrint, JitPrintsOnEveryCallInProgramOrder) {
  auto step = tj::jit([](const Array& i, const Array& w) {
    Array loss = tj::sum(w * w) / 2.f;
    tj::debug::print("step {} loss {}", i, loss);
    Array w2 = w - 0.5f * w;
    tj::debug::print("w {}", w2);
    return w2;
  });
  Array w = tj::array({1.f});
  std::string out = captured([&] {
    for (int i = 1; i <= 3; ++i) w = step(Array(i), w);
  });
  EXPECT_EQ(out,
            "step 1 loss 0.5\nw [0.5]\n"
            "step 2 loss 0.125\nw [0.25]\n"
            "step 3 loss 0.03125\nw [0.125]\n");
}

TEST(DebugPrint, JitPrintWhoseValueIsOtherwiseDeadStillRuns) {
  auto f = tj::jit([](const Array& x) {
    tj::debug::print("exp {}", tj::exp(x * 0.f));
    tj::debug::print("input {}", x);
    return x + 1.f;
  });
  std::string out = captured([&] { f(tj::array({2.f, 3.f})); });
  EXPECT_EQ(out, "exp [1. 1.]\ninput [2. 3.]\n");
  std::string again = captured([&] { f(tj::array({4.f, 5.f})); });
  EXPECT_EQ(again, "exp [1. 1.]\ninput [4. 5.]\n");
}

TEST(DebugPrint, GradPrintsPrimalOnce) {
  auto loss = [](const Array& x) {
    tj::debug::print("x {}", x);
    return tj::sum(x * x);
  };
  Array g;
  std::string out = captured([&] { g = tj::grad(loss)(tj::array({1.f, 2.f})); });
  EXPECT_EQ(out, "x [1. 2.]\n");
  EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{2.f, 4.f}));

  auto jg = tj::jit(tj::grad(loss));
  out = captured([&] {
    g = jg(tj::array({1.f, 2.f}));
    g = jg(tj::array({3.f, 4.f}));
  });
  EXPECT_EQ(out, "x [1. 2.]\nx [3. 4.]\n");
  EXPECT_EQ(g.to_vector<float>(), (std::vector<float>{6.f, 8.f}));
}

TEST(DebugPrint, ResultsAreBitIdenticalWithAndWithoutPrints) {
  auto program = [](bool print) {
    return [print](const Array& x, const Array& y) {
      Array a = tj::tanh(x) * y + tj::exp(-x);
      if (print) tj::debug::print("a {}", a);
      Array b = tj::sum(a * a, {1});
      if (print) tj::debug::print("b {} x {}", b, x);
      return tj::matmul(a, tj::transpose(a, {1, 0})) + tj::reshape(b, {4, 1});
    };
  };
  Array x = tj::reshape(tj::astype(tj::arange(12), tj::DType::f32), {4, 3}) / 7.f;
  Array y = tj::ones({4, 3}) * 0.3f;
  Array plain = tj::jit(program(false))(x, y);
  Array printed;
  captured([&] { printed = tj::jit(program(true))(x, y); });
  ASSERT_EQ(plain.shape(), printed.shape());
  std::vector<float> p = plain.to_vector<float>(), q = printed.to_vector<float>();
  EXPECT_EQ(std::memcmp(p.data(), q.data(), p.size() * sizeof(float)), 0);
  Array eager;
  captured([&] { eager = program(true)(x, y); });
  EXPECT_EQ(eager.shape(), plain.shape());
}

TEST(DebugPrint, PlaceholderCountMismatchIsAnError) {
  Array x = tj::array({1.f});
  try {
    tj::debug::print("{} and {}", x);
    FAIL() << "expected tj::Error";
  } catch (const tj::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[debug.print]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tj::debug::print("none", x), tj::Error);
  EXPECT_THROW(tj::jit([](const Array& v) {
                 tj::debug::print("{}{}", v);
                 return v;
               })(x),
               tj::Error);
}

}  // namespace

namespace {

TEST(DebugPrint, EdgeCasesInsideJit) {
  // Only prints, no kernel; a constant operand; a nested jit; a size-0 operand.
  auto f = tj::jit([](const Array& x) {
    tj::debug::print("c {} x {}", Array(3.f), x);
    Array y = tj::jit([](const Array& v) {
      tj::debug::print("inner {}", v + 1.f);
      return v * 2.f;
    })(x);
    tj::debug::print("empty {}", tj::zeros({0}));
    return y;
  });
  Array r;
  std::string out = captured([&] { r = f(tj::array({1.f, 2.f})); });
  EXPECT_EQ(out, "c 3.0 x [1. 2.]\ninner [2. 3.]\nempty []\n");
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{2.f, 4.f}));
  auto g = tj::jit([](const Array& x) {
    tj::debug::print("only {}", x);
    return x;
  });
  EXPECT_EQ(captured([&] { g(Array(5)); }), "only 5\n");
}

TEST(DebugPrint, SecondOrderGradAndVjpPrintPrimalOnce) {
  auto f = [](const Array& x) {
    tj::debug::print("x {}", x);
    return x * x * x;
  };
  Array g2;
  std::string out = captured([&] { g2 = tj::grad(tj::grad(f))(Array(2.f)); });
  EXPECT_EQ(out, "x 2.0\n");
  EXPECT_EQ(g2.item<float>(), 12.f);
  out = captured([&] { g2 = tj::jit(tj::grad(tj::grad(f)))(Array(1.f)); });
  EXPECT_EQ(out, "x 1.0\n");
  EXPECT_EQ(g2.item<float>(), 6.f);
}

}  // namespace

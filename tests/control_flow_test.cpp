// Structured control flow (tj::scan, tj::fori_loop, tj::while_loop, tj::cond) in every mode:
// eager, traced (make_ir: one equation with its regions printed once, nested), jitted, and
// differentiated (grad, jit(grad), grad(grad)). Every expected value is derived independently:
// by hand in a comment, from a closed form, from a plain C++ loop, or from f64 central finite
// differences computed here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "throw_message.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

// A pytree struct carry: a particle integrated by scan.
struct Particle {
  Array pos;
  Array vel;
};
TRACEJIT_PYTREE(Particle, pos, vel);

namespace {

using Map = std::map<std::string, Array>;

// ---- helpers ----

std::string captured(const std::function<void()>& body) {
  testing::internal::CaptureStdout();
  body();
  return testing::internal::GetCapturedStdout();
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<float> F(const Array& a) { return a.to_vector<float>(); }
std::vector<double> D(const Array& a) { return a.to_vector<double>(); }
std::vector<int32_t> I(const Array& a) { return a.to_vector<int32_t>(); }

Array f32s(std::vector<float> v, tj::Shape s) { return tj::array(v, s); }
Array f32s(std::vector<float> v) { return tj::array(v, {static_cast<int64_t>(v.size())}); }
Array f64s(std::vector<double> v, tj::Shape s) { return tj::array(v, s); }
Array f64s(std::vector<double> v) { return tj::array(v, {static_cast<int64_t>(v.size())}); }
Array i32(int v) { return tj::full({}, v, DType::i32); }      // a strong i32 scalar
Array f32(float v) { return tj::full({}, v, DType::f32); }    // a strong f32 scalar
Array f64(double v) { return tj::full({}, v, DType::f64); }   // a strong f64 scalar
Array boolean(bool v) { return tj::full({}, v ? 1 : 0, DType::bool_); }

void ExpectFloats(const Array& a, const std::vector<float>& want, float tol = 1e-5f) {
  std::vector<float> got = F(a);
  ASSERT_EQ(got.size(), want.size()) << a;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.f, std::fabs(want[i]))) << "element " << i << " of " << a;
}

void ExpectDoubles(const std::vector<double>& got, const std::vector<double>& want,
                   double rtol = 1e-6, double atol = 1e-9) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << "element " << i;
}

// f64 central differences of the scalar function `f` at `x` (an f64 array of any shape).
std::vector<double> fd(const std::function<double(const Array&)>& f, const Array& x,
                       double h = 1e-6) {
  std::vector<double> v = D(x);
  std::vector<double> g(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double plus = f(tj::array(v, x.shape()));
    v[i] = keep - h;
    const double minus = f(tj::array(v, x.shape()));
    v[i] = keep;
    g[i] = (plus - minus) / (2 * h);
  }
  return g;
}

// The message of the E that `body` throws; a test failure if it throws nothing or another type.

// The gradients w.r.t. arguments 0 and 1 (0, 1 and 2), by grad or (with `jitted`) jit(grad).
template <class Fn, class A, class B>
auto grad01(Fn f, bool jitted, const A& a, const B& b) {
  if (jitted) return std::pair{tj::jit(tj::grad<0>(f))(a, b), tj::jit(tj::grad<1>(f))(a, b)};
  return std::pair{tj::grad<0>(f)(a, b), tj::grad<1>(f)(a, b)};
}
template <class Fn, class A, class B, class C>
auto grad012(Fn f, bool jitted, const A& a, const B& b, const C& c) {
  if (jitted)
    return std::tuple{tj::jit(tj::grad<0>(f))(a, b, c), tj::jit(tj::grad<1>(f))(a, b, c),
                      tj::jit(tj::grad<2>(f))(a, b, c)};
  return std::tuple{tj::grad<0>(f)(a, b, c), tj::grad<1>(f)(a, b, c), tj::grad<2>(f)(a, b, c)};
}

// grad and jit(grad) of `loss` w.r.t. both its arguments agree with f64 central differences.
template <class Fn>
void ExpectGradsMatchFd(Fn loss, const Array& a, const Array& b) {
  const std::vector<double> da = fd([&](const Array& x) { return Array(loss(x, b)).item<double>(); }, a);
  const std::vector<double> db = fd([&](const Array& x) { return Array(loss(a, x)).item<double>(); }, b);
  for (bool jitted : {false, true}) {
    auto [ga, gb] = grad01(loss, jitted, a, b);
    ExpectDoubles(D(ga), da);
    ExpectDoubles(D(gb), db);
  }
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

// A tuple/pair child k in a message: tracejit spells it <k> (JAX's keystr would print [k]).
bool HasPath(const std::string& msg, int k) {
  return msg.find("<" + std::to_string(k) + ">") != std::string::npos ||
         msg.find("[" + std::to_string(k) + "]") != std::string::npos;
}

// The printed IR holds exactly one `prim` equation, each of its regions printed once, nested
// (indented below the equation).
void ExpectOneRegionEqn(const std::string& ir, const std::string& prim,
                        const std::vector<std::string>& regions) {
  EXPECT_EQ(count(ir, prim + "["), 1) << ir;
  for (const std::string& r : regions) {
    EXPECT_EQ(count(ir, r + "={"), 1) << r << " in\n" << ir;
    EXPECT_EQ(count(ir, "\n      " + r + "={ lambda"), 1) << r << " not nested in\n" << ir;
    EXPECT_GT(ir.find(r + "={"), ir.find(prim + "[")) << ir;
  }
}

// ---- scan ----

auto cumsum = [](const Array& init, const Array& xs) {
  return tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c + x}; }, init, xs);
};

TEST(ControlFlowScan, CumulativeSum) {
  {  // cumulative sum eager jit and ir
    Array xs = f32s({1, 2, 3, 4});
    // Running sums of 1 2 3 4: 1 3 6 10; the final carry is 10.
    auto [c, ys] = cumsum(f32(0), xs);
    ExpectFloats(c, {10});
    ExpectFloats(ys, {1, 3, 6, 10});
    EXPECT_EQ(ys.shape(), (tj::Shape{4}));
    auto jitted = tj::jit(cumsum);
    auto [jc, jys] = jitted(f32(0), xs);
    ExpectFloats(jc, {10});
    ExpectFloats(jys, {1, 3, 6, 10});
    // A second call with other values runs the same code: init 1 over 2 2 2 2 gives 3 5 7 9.
    auto [jc2, jys2] = jitted(f32(1), f32s({2, 2, 2, 2}));
    ExpectFloats(jc2, {9});
    ExpectFloats(jys2, {3, 5, 7, 9});
    EXPECT_EQ(jitted.stats().traces, 1);
    // Another length is another signature: traced again, 1 2 from 0 gives 1 3.
    auto [jc3, jys3] = jitted(f32(0), f32s({1, 2}));
    ExpectFloats(jc3, {3});
    ExpectFloats(jys3, {1, 3});
    EXPECT_EQ(jitted.stats().traces, 2);
    ExpectFloats(jitted(f32(0), xs).first, {10});
    EXPECT_EQ(jitted.stats().traces, 2);

    std::string ir = tj::make_ir(cumsum)(f32(0), xs).str();
    ExpectOneRegionEqn(ir, "scan", {"body"});
    EXPECT_HAS(ir, "length=4 num_carry=1 num_consts=0 reverse=False");
    EXPECT_EQ(count(ir, " add "), 1) << "the body is traced once, not unrolled:\n" << ir;
  }
  {  // cumulative sum gradients
    // L = c + sum(ys): x_i (0-based, n = 4) enters c once and ys_i..ys_3 (4 - i of them):
    // dL/dx = 5 4 3 2; init enters c and all four ys: dL/dinit = 5.
    auto loss = [](const Array& init, const Array& xs) {
      auto [c, ys] = cumsum(init, xs);
      return c + tj::sum(ys);
    };
    Array xs = f32s({1, 2, 3, 4});
    ExpectFloats(tj::grad<1>(loss)(f32(0), xs), {5, 4, 3, 2});
    ExpectFloats(tj::grad<0>(loss)(f32(0), xs), {5});
    ExpectFloats(tj::jit(tj::grad<1>(loss))(f32(0), xs), {5, 4, 3, 2});
    ExpectFloats(tj::jit(tj::grad<0>(loss))(f32(0), xs), {5});
    // The gradient is traced as scans too: the forward and one reverse scan, not unrolled.
    std::string ir = tj::make_ir(tj::grad<1>(loss))(f32(0), xs).str();
    EXPECT_EQ(count(ir, "scan["), 2) << ir;
    EXPECT_EQ(count(ir, "reverse=True"), 1) << ir;
  }
  {  // jit results of one call survive the next
    auto jitted = tj::jit(cumsum);
    auto [c1, ys1] = jitted(f32(0), f32s({1, 1, 1}));
    auto [c2, ys2] = jitted(f32(10), f32s({2, 2, 2}));
    ExpectFloats(c1, {3});
    ExpectFloats(ys1, {1, 2, 3});
    ExpectFloats(c2, {16});
    ExpectFloats(ys2, {12, 14, 16});
  }
}

TEST(ControlFlowScan, CumulativeProduct) {
  {  // cumulative product all modes
    auto cumprod = [](const Array& init, const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c * x, c * x}; }, init, xs);
    };
    Array xs = f32s({1, 2, 3, 4});
    // 1, 1*2 = 2, 2*3 = 6, 6*4 = 24.
    auto [c, ys] = cumprod(f32(1), xs);
    ExpectFloats(c, {24});
    ExpectFloats(ys, {1, 2, 6, 24});
    auto [jc, jys] = tj::jit(cumprod)(f32(1), xs);
    ExpectFloats(jc, {24});
    ExpectFloats(jys, {1, 2, 6, 24});
    std::string ir = tj::make_ir(cumprod)(f32(1), xs).str();
    ExpectOneRegionEqn(ir, "scan", {"body"});
    EXPECT_EQ(count(ir, " mul "), 1) << ir;
    // c = init * x0 x1 x2 x3: dc/dx_i = 24 / x_i = 24 12 8 6, dc/dinit = 24.
    auto final_carry = [&](const Array& init, const Array& x) { return cumprod(init, x).first; };
    ExpectFloats(tj::grad<1>(final_carry)(f32(1), xs), {24, 12, 8, 6});
    ExpectFloats(tj::grad<0>(final_carry)(f32(1), xs), {24});
    ExpectFloats(tj::jit(tj::grad<1>(final_carry))(f32(1), xs), {24, 12, 8, 6});
  }
  {  // vjp with chosen cotangents
    // cumprod over xs = 1 2 3 from 1: c = 6, ys = 1 2 6. With cotangents (c: 1, ys: 1 0 2):
    // c = x0 x1 x2 gives x1 x2, x0 x2, x0 x1 = 6 3 2; ys[0] = x0 gives 1 0 0 (weight 1); ys[2] = c
    // gives 2 x (6 3 2). Total: 6+1+12, 3+0+6, 2+0+4 = 19 9 6.
    auto f = [](const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c * x, c * x}; }, f32(1), xs);
    };
    auto [out, back] = tj::vjp(f, f32s({1, 2, 3}));
    ExpectFloats(out.first, {6});
    ExpectFloats(out.second, {1, 2, 6});
    auto [g] = back(std::pair<Array, Array>{f32(1), f32s({1, 0, 2})});
    ExpectFloats(g, {19, 9, 6});
    auto [g2] = back(std::pair<Array, Array>{f32(0), f32s({0, 1, 0})});  // ys[1] = x0 x1: 2 1 0
    ExpectFloats(g2, {2, 1, 0});
  }
}

TEST(ControlFlowScan, GradOfGradThroughScan) {
  // p(a) = a^3, by a carry multiplied by the captured a three times (no xs): p' = 3a^2,
  // p'' = 6a; at a = 1.5: 3.375, 6.75, 9.
  auto cube = [](const Array& a) {
    return tj::scan([&](const Array& c, const std::tuple<>&) { return std::pair{c * a, c}; },
                    f32(1), std::tuple<>{}, tj::ScanOptions{.length = 3})
        .first;
  };
  ExpectFloats(cube(f32(1.5f)), {3.375f});
  ExpectFloats(tj::grad(cube)(f32(1.5f)), {6.75f});
  ExpectFloats(tj::grad(tj::grad(cube))(f32(1.5f)), {9});
  ExpectFloats(tj::jit(tj::grad(tj::grad(cube)))(f32(1.5f)), {9});
  // q(a) = Horner over xs = 1 2 3: ((1)a + 2)a + 3 = a^2 + 2a + 3; q' = 2a + 2, q'' = 2.
  auto horner = [](const Array& a) {
    return tj::scan([&](const Array& c, const Array& x) { return std::pair{c * a + x, c}; },
                    f32(0), f32s({1, 2, 3}))
        .first;
  };
  ExpectFloats(horner(f32(1.5f)), {1.5f * 1.5f + 3 + 3});
  ExpectFloats(tj::grad(horner)(f32(1.5f)), {5});
  ExpectFloats(tj::grad(tj::grad(horner))(f32(1.5f)), {2});
  ExpectFloats(tj::jit(tj::grad(tj::grad(horner)))(f32(1.5f)), {2});
  // grad(grad) in f64 against a central difference of grad.
  auto smooth = [](const Array& a) {
    return tj::scan([&](const Array& c, const Array& x) { return std::pair{tj::sin(c * a) + x, c}; },
                    f64(0.3), f64s({0.5, -0.2, 0.1}))
        .first;
  };
  const double want = fd([&](const Array& a) { return tj::grad(smooth)(a).item<double>(); }, f64(0.7))[0];
  EXPECT_NEAR(tj::grad(tj::grad(smooth))(f64(0.7)).item<double>(), want, 1e-6 * std::fabs(want) + 1e-8);
  // grad(grad) through a cond inside the body, and through a scan inside the body.
  auto with_cond = [](const Array& w) {
    return tj::scan([&](const Array& c, const Array& x) {
      Array n = tj::cond(x > 0., [&](const Array& a) { return tj::sin(a * w) + x; },
                         [&](const Array& a) { return a * w * w; }, c);
      return std::pair{n, n};
    }, f64(0.5), f64s({0.3, -0.2, 0.7})).first;
  };
  auto nested = [](const Array& w) {
    return tj::scan([&](const Array& c, const Array& row) {
      Array inner = tj::scan([&](const Array& d, const Array& x) { return std::pair{tj::sin(d * w + x), d}; }, c, row).first;
      return std::pair{inner, c};
    }, f64(0.5), f64s({0.3, -0.2, 0.7, 0.1}, {2, 2})).first;
  };
  const double wc = fd([&](const Array& a) { return tj::grad(with_cond)(a).item<double>(); }, f64(0.9))[0];
  EXPECT_NEAR(tj::grad(tj::grad(with_cond))(f64(0.9)).item<double>(), wc, 1e-6 * std::fabs(wc));
  EXPECT_NEAR(tj::jit(tj::grad(tj::grad(with_cond)))(f64(0.9)).item<double>(), wc, 1e-6 * std::fabs(wc));
  const double wn = fd([&](const Array& a) { return tj::grad(nested)(a).item<double>(); }, f64(0.9))[0];
  EXPECT_NEAR(tj::grad(tj::grad(nested))(f64(0.9)).item<double>(), wn, 1e-6 * std::fabs(wn));
}

TEST(ControlFlowScan, ReverseWritesYsFromTheLastIndex) {
  auto rev_cumsum = [](const Array& xs) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c + x}; }, f32(0), xs,
                    tj::ScanOptions{.reverse = true});
  };
  // From the end: ys[3] = 4, ys[2] = 4+3 = 7, ys[1] = 9, ys[0] = 10.
  auto [c, ys] = rev_cumsum(f32s({1, 2, 3, 4}));
  ExpectFloats(c, {10});
  ExpectFloats(ys, {10, 9, 7, 4});
  auto [jc, jys] = tj::jit(rev_cumsum)(f32s({1, 2, 3, 4}));
  ExpectFloats(jc, {10});
  ExpectFloats(jys, {10, 9, 7, 4});
  std::string ir = tj::make_ir(rev_cumsum)(f32s({1, 2, 3, 4})).str();
  ExpectOneRegionEqn(ir, "scan", {"body"});
  EXPECT_HAS(ir, "reverse=True");

  // An order-sensitive body, c * 10 + x: forward gives digits 1 2 3 4, reverse 4 3 2 1.
  auto digits = [](const Array& xs, bool reverse) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{c * 10.f + x, c * 10.f + x}; },
                    f32(0), xs, tj::ScanOptions{.reverse = reverse});
  };
  Array xs = f32s({1, 2, 3, 4});
  auto [fc, fys] = digits(xs, false);
  ExpectFloats(fc, {1234});
  ExpectFloats(fys, {1, 12, 123, 1234});
  auto [rc, rys] = digits(xs, true);
  ExpectFloats(rc, {4321});
  ExpectFloats(rys, {4321, 432, 43, 4});
  auto [jrc, jrys] = tj::jit([&](const Array& x) { return digits(x, true); })(xs);
  ExpectFloats(jrc, {4321});
  ExpectFloats(jrys, {4321, 432, 43, 4});
  // Reverse: c = ((x3*10 + x2)*10 + x1)*10 + x0, so dc/dx = 1 10 100 1000; forward 1000 100 10 1.
  auto rev_final = [&](const Array& x) { return digits(x, true).first; };
  auto fwd_final = [&](const Array& x) { return digits(x, false).first; };
  ExpectFloats(tj::grad(rev_final)(xs), {1, 10, 100, 1000});
  ExpectFloats(tj::grad(fwd_final)(xs), {1000, 100, 10, 1});
  ExpectFloats(tj::jit(tj::grad(rev_final))(xs), {1, 10, 100, 1000});
  // Through the ys of the reverse scan: sum(ys) = 4321 + 432 + 43 + 4; x0 is only in ys[0]
  // (weight 1), x1 in ys[0] (10) and ys[1] (1), x2: 100 + 10 + 1, x3: 1000 + 100 + 10 + 1.
  auto rev_ys = [&](const Array& x) { return tj::sum(digits(x, true).second); };
  ExpectFloats(tj::grad(rev_ys)(xs), {1, 11, 111, 1111});
  ExpectFloats(tj::jit(tj::grad(rev_ys))(xs), {1, 11, 111, 1111});
}

TEST(ControlFlowScan, LengthWithoutXs) {
  // Doubling five times from 1: carry 32; y is the carry entering each step: 1 2 4 8 16.
  auto doubling = [](const Array& init) {
    return tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c * 2.f, c}; }, init,
                    std::tuple<>{}, tj::ScanOptions{.length = 5});
  };
  auto [c, ys] = doubling(f32(1));
  ExpectFloats(c, {32});
  ExpectFloats(ys, {1, 2, 4, 8, 16});
  auto [jc, jys] = tj::jit(doubling)(f32(1));
  ExpectFloats(jc, {32});
  ExpectFloats(jys, {1, 2, 4, 8, 16});
  std::string ir = tj::make_ir(doubling)(f32(1)).str();
  ExpectOneRegionEqn(ir, "scan", {"body"});
  EXPECT_HAS(ir, "length=5");
  // c = 32 init: dc/dinit = 32; sum(ys) = 31 init.
  ExpectFloats(tj::grad([&](const Array& i) { return doubling(i).first; })(f32(1)), {32});
  ExpectFloats(tj::jit(tj::grad([&](const Array& i) { return tj::sum(doubling(i).second); }))(f32(1)), {31});
}

TEST(ControlFlowScan, ZeroLengthReturnsInitAndEmptyYs) {
  auto step = [](const Array& init, const Array& xs) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c * x}; }, init, xs);
  };
  Array init = f32s({1, 2, 3});
  Array xs = tj::zeros({0, 3});
  auto [c, ys] = step(init, xs);
  ExpectFloats(c, {1, 2, 3});
  EXPECT_EQ(ys.shape(), (tj::Shape{0, 3}));
  EXPECT_EQ(ys.dtype(), DType::f32);
  auto [jc, jys] = tj::jit(step)(init, xs);
  ExpectFloats(jc, {1, 2, 3});
  EXPECT_EQ(jys.shape(), (tj::Shape{0, 3}));
  // No steps: the carry is the identity of init (d sum(c^2)/dinit = 2 init), xs get zeros of
  // their own (empty) shape.
  auto loss = [&](const Array& i, const Array& x) {
    auto [cc, yy] = step(i, x);
    return tj::sum(cc * cc) + tj::sum(yy);
  };
  ExpectFloats(tj::grad<0>(loss)(init, xs), {2, 4, 6});
  ExpectFloats(tj::jit(tj::grad<0>(loss))(init, xs), {2, 4, 6});
  EXPECT_EQ(tj::grad<1>(loss)(init, xs).shape(), (tj::Shape{0, 3}));
  EXPECT_EQ(tj::jit(tj::grad<1>(loss))(init, xs).shape(), (tj::Shape{0, 3}));
  // Zero steps with no xs.
  auto none = [](const Array& i) {
    return tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c * 3.f, c}; }, i,
                    std::tuple<>{}, tj::ScanOptions{.length = 0});
  };
  auto [nc, nys] = tj::jit(none)(f32(7));
  ExpectFloats(nc, {7});
  EXPECT_EQ(nys.shape(), (tj::Shape{0}));
  ExpectFloats(none(f32(7)).first, {7});
  ExpectFloats(tj::grad([&](const Array& i) { return none(i).first; })(f32(7)), {1});
}

TEST(ControlFlowScan, StructCarry) {
  // vel += a dt, pos += vel dt with dt = 0.5 over a = 1 2 3 from pos 0, vel 1:
  //   a=1: vel 1.5, pos 0.75;  a=2: vel 2.5, pos 2.0;  a=3: vel 4.0, pos 4.0.
  auto integrate = [](const Particle& p0, const Array& acc) {
    const float dt = 0.5f;
    return tj::scan(
        [&](const Particle& p, const Array& a) {
          Array vel = p.vel + a * dt;
          Array pos = p.pos + vel * dt;
          return std::pair{Particle{pos, vel}, pos};
        },
        p0, acc);
  };
  Particle p0{f32(0), f32(1)};
  Array acc = f32s({1, 2, 3});
  for (int mode = 0; mode < 2; ++mode) {
    auto [p, ys] = mode == 0 ? integrate(p0, acc) : tj::jit(integrate)(p0, acc);
    ExpectFloats(p.pos, {4});
    ExpectFloats(p.vel, {4});
    ExpectFloats(ys, {0.75f, 2, 4});
  }
  std::string ir = tj::make_ir(integrate)(p0, acc).str();
  ExpectOneRegionEqn(ir, "scan", {"body"});
  EXPECT_HAS(ir, "num_carry=2");
  // pos_final = pos0 + 3 dt vel0 + (terms in a): d/dpos0 = 1, d/dvel0 = 1.5; vel_final = vel0 + ...
  auto final_pos = [&](const Particle& p, const Array& a) { return integrate(p, a).first.pos; };
  for (int mode = 0; mode < 2; ++mode) {
    Particle g = mode == 0 ? tj::grad(final_pos)(p0, acc) : tj::jit(tj::grad(final_pos))(p0, acc);
    ExpectFloats(g.pos, {1});
    ExpectFloats(g.vel, {1.5f});
  }
  // d pos_final / d a_k: a_k enters vel from step k on, each later pos gets vel * dt:
  // (3 - k) steps of dt * dt = 0.25 each: 0.75 0.5 0.25.
  ExpectFloats(tj::grad<1>(final_pos)(p0, acc), {0.75f, 0.5f, 0.25f});
}

TEST(ControlFlowScan, MapCarry) {
  // Running sum and running max of 3 -1 5 2: sum 9, max 5; ys the running max 3 3 5 5.
  auto stats = [](const Map& init, const Array& xs) {
    return tj::scan(
        [](const Map& c, const Array& x) {
          Array mx = tj::maximum(c.at("max"), x);
          return std::pair{Map{{"sum", c.at("sum") + x}, {"max", mx}}, mx};
        },
        init, xs);
  };
  Map init{{"sum", f32(0)}, {"max", f32(-100)}};
  Array xs = f32s({3, -1, 5, 2});
  for (int mode = 0; mode < 2; ++mode) {
    auto [c, ys] = mode == 0 ? stats(init, xs) : tj::jit(stats)(init, xs);
    ExpectFloats(c.at("sum"), {9});
    ExpectFloats(c.at("max"), {5});
    ExpectFloats(ys, {3, 3, 5, 5});
  }
  // d(sum + max)/dx: 1 each for the sum, plus 1 at the maximum (x2 = 5, no ties).
  auto loss = [&](const Array& x) {
    Map c = stats(init, x).first;
    return c.at("sum") + c.at("max");
  };
  ExpectFloats(tj::grad(loss)(xs), {1, 1, 2, 1});
  ExpectFloats(tj::jit(tj::grad(loss))(xs), {1, 1, 2, 1});
  // The gradient w.r.t. the map init: d/dsum0 = 1; max0 = -100 never wins: 0.
  Map g = tj::grad([&](const Map& m) {
    Map c = stats(m, xs).first;
    return c.at("sum") + c.at("max");
  })(init);
  ExpectFloats(g.at("sum"), {1});
  ExpectFloats(g.at("max"), {0});
}

TEST(ControlFlowScan, PairXs) {
  // dot(a, b) by a carry, ys = a - b: a = 1 2 3, b = 4 5 6: 4 + 10 + 18 = 32, ys -3 -3 -3.
  auto dot = [](const std::pair<Array, Array>& ab) {
    return tj::scan([](const Array& c, const std::pair<Array, Array>& x) {
      return std::pair{c + x.first * x.second, x.first - x.second};
    }, f32(0), ab);
  };
  std::pair<Array, Array> ab{f32s({1, 2, 3}), f32s({4, 5, 6})};
  for (int mode = 0; mode < 2; ++mode) {
    auto [c, ys] = mode == 0 ? dot(ab) : tj::jit(dot)(ab);
    ExpectFloats(c, {32});
    ExpectFloats(ys, {-3, -3, -3});
  }
  std::string ir = tj::make_ir(dot)(ab).str();
  ExpectOneRegionEqn(ir, "scan", {"body"});
  // d dot / da = b, d dot / db = a.
  auto loss = [&](const std::pair<Array, Array>& p) { return dot(p).first; };
  for (int mode = 0; mode < 2; ++mode) {
    std::pair<Array, Array> g = mode == 0 ? tj::grad(loss)(ab) : tj::jit(tj::grad(loss))(ab);
    ExpectFloats(g.first, {4, 5, 6});
    ExpectFloats(g.second, {1, 2, 3});
  }
}

TEST(ControlFlowScan, WeakInitTakesTheBodyDtype) {
  {  // weak float init becomes strong
    // A C++ 0.f init with an f32 body: the carry is a strong f32 (as jax.lax.scan with init 0.).
    auto sum_from_weak = [](const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c}; }, 0.f, xs);
    };
    Array xs = f32s({1, 2.5f, 3});
    auto [c, ys] = sum_from_weak(xs);
    ExpectFloats(c, {6.5f});
    EXPECT_EQ(c.dtype(), DType::f32);
    EXPECT_FALSE(c.weak_type());
    ExpectFloats(ys, {0, 1, 3.5f});
    EXPECT_EQ(ys.dtype(), DType::f32);
    auto [jc, jys] = tj::jit(sum_from_weak)(xs);
    ExpectFloats(jc, {6.5f});
    EXPECT_EQ(jc.dtype(), DType::f32);
    EXPECT_FALSE(jc.weak_type());
    ExpectFloats(jys, {0, 1, 3.5f});
    ExpectFloats(tj::grad([&](const Array& x) { return sum_from_weak(x).first; })(xs), {1, 1, 1});
    // The same weak f32 init under an f64 body takes f64.
    auto [c64, ys64] = tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, x}; }, 0.f,
                                f64s({0.25, 0.5}));
    EXPECT_EQ(c64.dtype(), DType::f64);
    EXPECT_DOUBLE_EQ(c64.item<double>(), 0.75);
  }
  {  // weak int init promoted to float by body
    // An int 0 init, the body adds an f32 x: the carry is promoted to f32, the sum 6.5.
    auto sum_from_int = [](const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c * 2}; }, 0, xs);
    };
    Array xs = f32s({1, 2.5f, 3});
    for (int mode = 0; mode < 2; ++mode) {
      auto [c, ys] = mode == 0 ? sum_from_int(xs) : tj::jit(sum_from_int)(xs);
      EXPECT_EQ(c.dtype(), DType::f32);
      ExpectFloats(c, {6.5f});
      EXPECT_EQ(ys.dtype(), DType::f32);
      ExpectFloats(ys, {0, 2, 7});  // 2 x the carry entering: 0, 2*1, 2*3.5
    }
    // An int init with an int body (weak + 1) stays i32.
    auto [ci, ysi] = tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c + 1, c}; }, 0,
                              std::tuple<>{}, tj::ScanOptions{.length = 4});
    EXPECT_EQ(ci.dtype(), DType::i32);
    EXPECT_EQ(ci.item<int32_t>(), 4);
    EXPECT_EQ(I(ysi), (std::vector<int32_t>{0, 1, 2, 3}));
    // make_ir: one scan, its carry f32.
    std::string ir = tj::make_ir(sum_from_int)(xs).str();
    ExpectOneRegionEqn(ir, "scan", {"body"});
    EXPECT_HAS(ir, "body={ lambda ; a:f32[] b:f32[]");
  }
}

TEST(ControlFlowScan, UnrollGivesIdenticalResults) {
  // c = c / 2 + x over 10 steps, x_k = k; reference by a plain C++ loop in float.
  auto halve = [](const Array& xs, int unroll) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{c * 0.5f + x, c}; }, f32(0), xs,
                    tj::ScanOptions{.unroll = unroll});
  };
  std::vector<float> x(10), want_ys(10);
  float c = 0;
  for (int k = 0; k < 10; ++k) {
    x[k] = static_cast<float>(k);
    want_ys[k] = c;
    c = c * 0.5f + x[k];
  }
  for (int unroll : {1, 3, 4, 10, 16}) {
    auto [ec, eys] = halve(f32s(x), unroll);
    ExpectFloats(ec, {c});
    ExpectFloats(eys, want_ys);
    auto [jc, jys] = tj::jit([&](const Array& xs) { return halve(xs, unroll); })(f32s(x));
    ExpectFloats(jc, {c});
    ExpectFloats(jys, want_ys);
  }
}

TEST(ControlFlowScan, PassThroughConstantAndSwappedOutputs) {
  // ys = the x itself, a constant 1 and a captured array; the two carries swap each step, so
  // after 3 (odd) steps they are exchanged; a third carry is replaced by the captured w.
  auto f = [](const Array& a, const Array& b, const Array& w, const Array& xs) {
    using C = std::tuple<Array, Array, Array>;
    return tj::scan(
        [&](const C& c, const Array& x) {
          return std::pair{C{std::get<1>(c), std::get<0>(c), w}, std::tuple<Array, float, Array>{x, 1.f, w}};
        },
        C{a, b, f32(0)}, xs);
  };
  Array xs = f32s({5, 6, 7});
  for (int mode = 0; mode < 2; ++mode) {
    auto [c, ys] = mode == 0 ? f(f32(1), f32(2), f32(9), xs) : tj::jit(f)(f32(1), f32(2), f32(9), xs);
    ExpectFloats(std::get<0>(c), {2});
    ExpectFloats(std::get<1>(c), {1});
    ExpectFloats(std::get<2>(c), {9});
    ExpectFloats(std::get<0>(ys), {5, 6, 7});
    ExpectFloats(std::get<1>(ys), {1, 1, 1});
    ExpectFloats(std::get<2>(ys), {9, 9, 9});
  }
}

TEST(ControlFlowScan, DeadCarriesYsConstsAndXs) {
  {  // carry that only feeds another carry is kept
    // Carries (a, b): a <- a + 1, b <- b + a; only b is returned. From (0, 0) over 4 steps b gets
    // 0 + 1 + 2 + 3 = 6. The same in a while whose cond reads only a.
    auto f = [](const Array& a0) {
      return tj::scan([](const std::pair<Array, Array>& c, const std::tuple<>&) {
        return std::pair{std::pair<Array, Array>{c.first + 1.f, c.second + c.first}, c.first};
      }, std::pair<Array, Array>{a0, f32(0)}, std::tuple<>{}, tj::ScanOptions{.length = 4}).first.second;
    };
    ExpectFloats(f(f32(0)), {6});
    ExpectFloats(tj::jit(f)(f32(0)), {6});
    ExpectFloats(tj::jit(f)(f32(1)), {1 + 2 + 3 + 4});
    auto w = [](const Array& a0) {
      using C = std::tuple<Array, Array, Array>;
      return std::get<2>(tj::while_loop([](const C& c) { return std::get<0>(c) < 4; },
                                        [](const C& c) {
                                          return C{std::get<0>(c) + 1, std::get<1>(c) * 2.f, std::get<2>(c) + std::get<1>(c)};
                                        },
                                        C{i32(0), a0, f32(0)}));
    };
    // a = 1 2 4 8 added to b: 15.
    ExpectFloats(w(f32(1)), {15});
    ExpectFloats(tj::jit(w)(f32(1)), {15});
  }
  {  // a while's carry that only feeds itself goes, with the const only it reads
    // Carries (i, x, junk): i < 3, x <- 2x, junk <- junk * k + x; only x is returned: x0 * 8.
    using C = std::tuple<Array, Array, Array>;
    auto w = [](const Array& x0, const Array& k) {
      return std::get<1>(tj::while_loop([](const C& c) { return std::get<0>(c) < 3; },
                                        [&](const C& c) {
                                          const auto& [i, x, junk] = c;
                                          return C{i + 1, x * 2.f, junk * k + x};
                                        },
                                        C{i32(0), x0, f32(0)}));
    };
    auto jw = tj::jit(w);
    ExpectFloats(jw(f32(1.5f), f32(3)), {12});
    // The results of the one while in a printed program: "c:i32[] d:f32[] = while[...]".
    auto while_results = [](const std::string& ir) {
      EXPECT_EQ(count(ir, "while["), 1) << ir;
      const std::string before = ir.substr(0, ir.find("while["));
      return count(before.substr(before.rfind('\n') + 1), ":");
    };
    const tj::Lowered lowered = jw.lower(f32(1.5f), f32(3));
    EXPECT_EQ(while_results(lowered.ir()), 3);
    EXPECT_EQ(while_results(lowered.optimized_ir()), 2) << lowered.optimized_ir();
    EXPECT_HAS(lowered.ir(), "body_nconsts=1");  // k, which only junk reads
    EXPECT_HAS(lowered.optimized_ir(), "body_nconsts=0");
  }
  {  // dead carries ys consts and xs beside live ones
    // Carries (a, b, c), xs (x1, x2, x3), consts w1 w2 w3; only c and y2 are returned:
    //   a' = a + x1 w1, b' = b w2 + x2 (dead), c' = c + a, y1 = x3 w3 (dead), y2 = 2a.
    // x1 = 1 2 3, w1 = 2, a0 = 0.5, c0 = 10:
    //   a: 0.5 -> 2.5 -> 6.5 -> 12.5;  c: 10 -> 10.5 -> 13 -> 19.5;  y2 = 1 5 13.
    using C = std::tuple<Array, Array, Array>;
    using X = std::tuple<Array, Array, Array>;
    auto f = [](const Array& w1, const Array& w2, const Array& w3, const C& init, const X& xs) {
      auto [c, ys] = tj::scan(
          [&](const C& s, const X& x) {
            const auto& [a, b, cc] = s;
            const auto& [x1, x2, x3] = x;
            return std::pair{C{a + x1 * w1, b * w2 + x2, cc + a}, std::pair<Array, Array>{x3 * w3, a * 2.f}};
          },
          init, xs);
      return std::pair{std::get<2>(c), ys.second};
    };
    C init{f32(0.5f), f32(7), f32(10)};
    X xs{f32s({1, 2, 3}), f32s({4, 5, 6}), f32s({7, 8, 9})};
    for (int mode = 0; mode < 2; ++mode) {
      auto [c, y2] = mode == 0 ? f(f32(2), f32(3), f32(4), init, xs) : tj::jit(f)(f32(2), f32(3), f32(4), init, xs);
      ExpectFloats(c, {19.5f});
      ExpectFloats(y2, {1, 5, 13});
    }
    // The same loop returning only the carry that no x reaches: c' = c + 1 over 3 steps.
    auto counter = tj::jit([](const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c + 1.f, x * 2.f}; }, f32(0), xs).first;
    });
    ExpectFloats(counter(f32s({5, 6, 7})), {3});
  }
}

TEST(ControlFlowScan, NoCarryAndIntegerXs) {
  {  // empty carry is a map
    // No carry: ys = x^2 + 1 for x = 1 2 3: 2 5 10; d sum(ys)/dx = 2x.
    auto map = [](const Array& xs) {
      return tj::scan([](const std::tuple<>&, const Array& x) { return std::pair{std::tuple<>{}, x * x + 1.f}; },
                      std::tuple<>{}, xs)
          .second;
    };
    Array xs = f32s({1, 2, 3});
    ExpectFloats(map(xs), {2, 5, 10});
    ExpectFloats(tj::jit(map)(xs), {2, 5, 10});
    std::string ir = tj::make_ir(map)(xs).str();
    ExpectOneRegionEqn(ir, "scan", {"body"});
    EXPECT_HAS(ir, "num_carry=0");
    auto loss = [&](const Array& x) { return tj::sum(map(x)); };
    ExpectFloats(tj::grad(loss)(xs), {2, 4, 6});
    ExpectFloats(tj::jit(tj::grad(loss))(xs), {2, 4, 6});
  }
  {  // integer xs and mixed dtype ys under grad
    // xs = 0 1 2 3 (i32); c <- c w + x from 0: 0, 1, w + 2, w^2 + 2w + 3; d/dw = 2w + 2 = 3 at
    // w = 0.5, where c = 0, 1, 2.5, 4.25. ys: 2x (i32) and c > 1 (bool).
    auto f = [](const Array& w) {
      return tj::scan(
          [&](const Array& c, const Array& x) {
            Array n = c * w + tj::astype(x, DType::f32);
            return std::pair{n, std::pair<Array, Array>{x * 2, n > 1.f}};
          },
          f32(0), tj::arange(4));
    };
    for (int mode = 0; mode < 2; ++mode) {
      auto [c, ys] = mode == 0 ? f(f32(0.5f)) : tj::jit(f)(f32(0.5f));
      ExpectFloats(c, {4.25f});
      EXPECT_EQ(ys.first.dtype(), DType::i32);
      EXPECT_EQ(I(ys.first), (std::vector<int32_t>{0, 2, 4, 6}));
      EXPECT_EQ(ys.second.dtype(), DType::bool_);
      EXPECT_EQ(ys.second.to_vector<bool>(), (std::vector<bool>{false, false, true, true}));
    }
    auto final_c = [&](const Array& w) { return f(w).first; };
    ExpectFloats(tj::grad(final_c)(f32(0.5f)), {3});
    ExpectFloats(tj::jit(tj::grad(final_c))(f32(0.5f)), {3});
  }
}

TEST(ControlFlowScan, XsComputedInsideJitAndYsConsumedAfter) {
  // xs = transpose(m), a broadcast, a reshape, zeros made inside the trace and a concrete array
  // captured from outside; the ys feed a kernel after the scan. m = [[1 2 3] [4 5 6]]: its
  // columns 1 4, 2 5, 3 6.
  const Array outside = f32s({2, 3, 4});
  auto f = [&](const Array& m, const Array& v) {
    auto col_sums = tj::scan([](const Array& c, const Array& col) { return std::pair{c + tj::sum(col), tj::sum(col)}; },
                             f32(0), tj::transpose(m, {1, 0}));
    auto bcast = tj::scan([](const Array& c, const Array& row) { return std::pair{c + row, row * 2.f}; },
                          tj::zeros({2}), tj::broadcast_to(v, {3, 2}));
    auto zeros = tj::scan([](const Array& c, const Array& x) { return std::pair{c + x + 1.f, x}; }, f32(0),
                          tj::zeros({4}));
    auto flat = tj::scan([](const Array& c, const Array& x) { return std::pair{c * 10.f + x, c}; }, f32(0),
                         tj::reshape(m, {6}));
    auto captured_xs = tj::scan([](const Array& c, const Array& x) { return std::pair{c * x, c}; }, tj::sum(v) + 1.f,
                                outside);
    return std::tuple{col_sums.second * 2.f, col_sums.first, bcast.first, bcast.second + 1.f, zeros.first,
                      flat.first, captured_xs.first};
  };
  Array m = f32s({1, 2, 3, 4, 5, 6}, {2, 3});
  Array v = f32s({1, -1});
  for (int mode = 0; mode < 2; ++mode) {
    auto [ys2, total, bc, bys, z, digits, prod] = mode == 0 ? f(m, v) : tj::jit(f)(m, v);
    ExpectFloats(ys2, {10, 14, 18});
    ExpectFloats(total, {21});
    ExpectFloats(bc, {3, -3});
    ExpectFloats(bys, {3, -1, 3, -1, 3, -1});
    ExpectFloats(z, {4});
    ExpectFloats(digits, {123456});
    ExpectFloats(prod, {24});  // (sum(v) + 1) * 2 * 3 * 4 with sum(v) = 0
  }
}

TEST(ControlFlowScan, LargeCarries) {
  {  // large carry runs across threads
    // A carry of 2^20 floats (kernels large enough to be split across threads), three steps of
    // v <- 2v + 1 from 0 (1, 3, 7 everywhere) with a second carry summing v each step: 2^20 (1+3+7).
    auto f = [](const Array& v0) {
      return tj::scan(
                 [](const std::pair<Array, Array>& c, const std::tuple<>&) {
                   Array v = c.first * 2.f + 1.f;
                   return std::pair{std::pair<Array, Array>{v, c.second + tj::sum(v)}, std::tuple<>{}};
                 },
                 std::pair<Array, Array>{v0, f32(0)}, std::tuple<>{}, tj::ScanOptions{.length = 3})
          .first;
    };
    const int64_t n = int64_t{1} << 20;
    auto [v, s] = tj::jit(f)(tj::zeros({n}));
    std::vector<float> got = F(v);
    ASSERT_EQ(got.size(), static_cast<size_t>(n));
    int64_t wrong = 0;
    for (float g : got) wrong += g != 7.f;
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(s.item<float>(), 11.f * static_cast<float>(n));
  }
  {  // large elementwise carries over many steps
    // Two carries of 2^16 floats, 12 steps of (a, b) <- (a + b, a + 2b) from a = j % 64, b = 1
    // (element j): (a, b) is multiplied by [[1 1] [1 2]]^12 = [[F23 F24] [F24 F25]] (Fibonacci:
    // 28657, 46368, 75025), so a = 28657 a0 + 46368, b = 46368 a0 + 75025: integers below 2^24,
    // exact in f32. Only element j of the carries feeds element j.
    const int64_t n = int64_t{1} << 16;
    auto f = tj::jit([](const Array& a0, const Array& b0) {
      using C = std::pair<Array, Array>;
      return tj::scan([](const C& c, const std::tuple<>&) { return std::pair{C{c.first + c.second, c.first + c.second * 2.f}, std::tuple<>{}}; },
                      C{a0, b0}, std::tuple<>{}, tj::ScanOptions{.length = 12})
          .first;
    });
    auto [a, b] = f(tj::astype(tj::arange(n) & 63, DType::f32), tj::ones({n}));
    std::vector<float> ga = F(a), gb = F(b);
    int64_t wrong = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double a0 = static_cast<double>(j % 64);
      wrong += ga[static_cast<size_t>(j)] != 28657 * a0 + 46368 || gb[static_cast<size_t>(j)] != 46368 * a0 + 75025;
    }
    EXPECT_EQ(wrong, 0);
  }
  {  // carry element broadcast to the whole carry
    // c <- c + c[0] from ones: c[0] doubles each step (1 2 4 ...) and every element gains it:
    // after 10 steps every element is 1 + (1 + 2 + ... + 512) = 1024. Small enough here to run on
    // one thread (see the test below for a large carry).
    auto f = [](const Array& c0) {
      return tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c + c[0], std::tuple<>{}}; }, c0,
                      std::tuple<>{}, tj::ScanOptions{.length = 10})
          .first;
    };
    ExpectFloats(f(tj::ones({8})), std::vector<float>(8, 1024));
    ExpectFloats(tj::jit(f)(tj::ones({8})), std::vector<float>(8, 1024));
  }
}

// Regression: a large scan of flat elementwise kernels runs "each thread all steps on its own
// chunk" only when element j depends on element j of the carries alone. c + c[0] makes every
// element depend on element 0 (an inline slice of the carry, broadcast), so it must not be
// chunked: before the fix, 57344 of 65536 elements came out wrong on 2 threads.
TEST(ControlFlowScan, CarryElementBroadcastToALargeCarryUnderJit) {
  const int64_t n = int64_t{1} << 16;
  auto f = tj::jit([](const Array& c0) {
    return tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c + c[0], std::tuple<>{}}; }, c0,
                    std::tuple<>{}, tj::ScanOptions{.length = 10})
        .first;
  });
  std::vector<float> got = F(f(tj::ones({n})));
  int64_t wrong = 0;
  for (float g : got) wrong += g != 1024.f;
  EXPECT_EQ(wrong, 0) << "element 8192 is " << got[8192];
}

// ---- fori_loop ----

TEST(ControlFlowFori, StaticBoundsIsAScan) {
  // c = c x + i for i = 0..3 from 0: 0, 1, x + 2, x^2 + 2x + 3; at x = 2: 11; d/dx = 2x + 2 = 6.
  auto poly = [](const Array& x) {
    return tj::fori_loop(0, 4, [&](const Array& i, const Array& c) { return c * x + tj::astype(i, DType::f32); },
                         f32(0));
  };
  ExpectFloats(poly(f32(2)), {11});
  ExpectFloats(tj::jit(poly)(f32(2)), {11});
  ExpectFloats(tj::jit(poly)(f32(3)), {9 + 6 + 3});
  ExpectFloats(tj::grad(poly)(f32(2)), {6});
  ExpectFloats(tj::jit(tj::grad(poly))(f32(2)), {6});
  ExpectFloats(tj::grad(tj::grad(poly))(f32(2)), {2});
  std::string ir = tj::make_ir(poly)(f32(2)).str();
  ExpectOneRegionEqn(ir, "scan", {"body"});
  EXPECT_EQ(count(ir, "while["), 0) << ir;
  EXPECT_HAS(ir, "length=4");
  // Bounds 3..7: i = 3 4 5 6, the index sum 18, as a scan of length 4.
  auto index_sum = [](const Array& init) {
    return tj::fori_loop(3, 7, [](const Array& i, const Array& c) { return c + i; }, init);
  };
  EXPECT_EQ(index_sum(i32(0)).item<int32_t>(), 18);
  EXPECT_EQ(tj::jit(index_sum)(i32(1)).item<int32_t>(), 19);
  EXPECT_HAS(tj::make_ir(index_sum)(i32(0)).str(), "length=4");
}

TEST(ControlFlowFori, ArrayBoundsIsAWhile) {
  {  // array bounds is a while
    auto index_sum = [](const Array& lo, const Array& hi) {
      return tj::fori_loop(lo, hi, [](const Array& i, const Array& c) { return c + i; }, i32(0));
    };
    // 2 + 3 + 4 + 5 = 14; 0 + 1 + 2 = 3.
    EXPECT_EQ(index_sum(i32(2), i32(6)).item<int32_t>(), 14);
    auto jitted = tj::jit(index_sum);
    EXPECT_EQ(jitted(i32(2), i32(6)).item<int32_t>(), 14);
    EXPECT_EQ(jitted(i32(0), i32(3)).item<int32_t>(), 3);
    EXPECT_EQ(jitted(i32(-2), i32(2)).item<int32_t>(), -2 - 1 + 0 + 1);
    EXPECT_EQ(jitted.stats().traces, 1);
    std::string ir = tj::make_ir(index_sum)(i32(2), i32(6)).str();
    ExpectOneRegionEqn(ir, "while", {"cond", "body"});
    EXPECT_EQ(count(ir, "scan["), 0) << ir;
    // A mixed pair (C++ int lower, Array upper) is a while too.
    auto mixed = [](const Array& hi) {
      return tj::fori_loop(1, hi, [](const Array& i, const Array& c) { return c * tj::astype(i, DType::f32); },
                           f32(1));
    };
    ExpectFloats(mixed(i32(5)), {24});  // 1*2*3*4
    ExpectFloats(tj::jit(mixed)(i32(6)), {120});
    EXPECT_EQ(count(tj::make_ir(mixed)(i32(5)).str(), "while["), 1);
  }
  {  // weak init and array bound grad
    // A C++ 0.f init with an f32 body: a strong f32 result; x added four times: 4x.
    auto f = [](const Array& x) {
      return tj::fori_loop(0, 4, [&](const Array&, const Array& c) { return c + x; }, 0.f);
    };
    Array r = f(f32(1.25f));
    EXPECT_EQ(r.dtype(), DType::f32);
    EXPECT_FALSE(r.weak_type());
    ExpectFloats(r, {5});
    ExpectFloats(tj::jit(f)(f32(1.25f)), {5});
    ExpectFloats(tj::grad(f)(f32(1.25f)), {4});
    // Array bounds make a while without max_iterations: reverse-mode AD is refused, saying why.
    auto dynamic = [](const Array& x, const Array& n) {
      return tj::fori_loop(i32(0), n, [&](const Array&, const Array& c) { return c * x; }, f32(1));
    };
    ExpectFloats(dynamic(f32(2), i32(3)), {8});
    EXPECT_HAS(ThrowMessage<tj::Error>([&] { tj::grad(dynamic)(f32(2), i32(3)); }), "max_iterations");
  }
}

TEST(ControlFlowFori, ZeroTrip) {
  auto body = [](const Array& i, const Array& c) { return c * 2.f + tj::astype(i, DType::f32); };
  // upper <= lower: no step, the init comes back.
  ExpectFloats(tj::fori_loop(5, 2, body, f32(7)), {7});
  ExpectFloats(tj::fori_loop(3, 3, body, f32(7)), {7});
  ExpectFloats(tj::jit([&](const Array& c) { return tj::fori_loop(5, 2, body, c); })(f32(7)), {7});
  ExpectFloats(tj::grad([&](const Array& c) { return tj::fori_loop(5, 2, body, c); })(f32(7)), {1});
  auto dynamic = tj::jit([&](const Array& lo, const Array& hi, const Array& c) {
    return tj::fori_loop(lo, hi, body, c);
  });
  ExpectFloats(dynamic(i32(5), i32(2), f32(7)), {7});
  ExpectFloats(dynamic(i32(3), i32(3), f32(7)), {7});
  ExpectFloats(dynamic(i32(0), i32(2), f32(7)), {(7 * 2 + 0) * 2 + 1});
  ExpectFloats(tj::fori_loop(i32(5), i32(2), body, f32(7)), {7});
}

TEST(ControlFlowFori, IndexValueUsedInTheBody) {
  // Sum of i^2 for i = 1..4 = 1 + 4 + 9 + 16 = 30.
  auto squares = [](const Array& init) {
    return tj::fori_loop(1, 5, [](const Array& i, const Array& c) { return c + i * i; }, init);
  };
  EXPECT_EQ(squares(i32(0)).item<int32_t>(), 30);
  EXPECT_EQ(tj::jit(squares)(i32(0)).item<int32_t>(), 30);
  // Writing i^2 at position i of a vector (a one-hot select): 0 1 4 9 16.
  auto table = [](const Array& v0, const Array& n) {
    return tj::fori_loop(i32(0), n, [](const Array& i, const Array& v) {
      return tj::where(tj::arange(5) == i, i * i, v);
    }, v0);
  };
  EXPECT_EQ(I(table(tj::zeros({5}, DType::i32), i32(5))), (std::vector<int32_t>{0, 1, 4, 9, 16}));
  EXPECT_EQ(I(tj::jit(table)(tj::zeros({5}, DType::i32), i32(3))), (std::vector<int32_t>{0, 1, 4, 0, 0}));
  // The index as a float weight under grad: d/dx sum_{i=0}^{3} i x = 0 + 1 + 2 + 3 = 6.
  auto weighted = [](const Array& x) {
    return tj::fori_loop(0, 4, [&](const Array& i, const Array& c) { return c + tj::astype(i, DType::f32) * x; },
                         f32(0));
  };
  ExpectFloats(tj::grad(weighted)(f32(1.5f)), {6});
  ExpectFloats(tj::jit(tj::grad(weighted))(f32(1.5f)), {6});
}

// ---- while_loop ----

using IV = std::pair<Array, Array>;

TEST(ControlFlowWhile, CountingAndZeroTrip) {
  {  // counting
    // Ten doublings of 1: (10, 1024).
    auto doubling = [](const Array& n, const Array& v) {
      return tj::while_loop([&](const IV& c) { return c.first < n; },
                            [](const IV& c) { return IV{c.first + 1, c.second * 2.f}; }, IV{i32(0), v});
    };
    for (int mode = 0; mode < 2; ++mode) {
      IV r = mode == 0 ? doubling(i32(10), f32(1)) : tj::jit(doubling)(i32(10), f32(1));
      EXPECT_EQ(r.first.item<int32_t>(), 10);
      EXPECT_EQ(r.first.dtype(), DType::i32);
      ExpectFloats(r.second, {1024});
    }
    auto jitted = tj::jit(doubling);
    IV r3 = jitted(i32(3), f32(0.5f));
    EXPECT_EQ(r3.first.item<int32_t>(), 3);
    ExpectFloats(r3.second, {4});
    std::string ir = tj::make_ir(doubling)(i32(10), f32(1)).str();
    ExpectOneRegionEqn(ir, "while", {"cond", "body"});
    EXPECT_HAS(ir, "body_nconsts=0 cond_nconsts=1 max_iterations=-1");
  }
  {  // zero trip
    auto f = [](const Array& n, const Array& v) {
      return tj::while_loop([&](const IV& c) { return c.first < n; },
                            [](const IV& c) { return IV{c.first + 1, c.second + 1.f}; }, IV{i32(5), v});
    };
    for (int mode = 0; mode < 2; ++mode) {
      IV r = mode == 0 ? f(i32(3), f32s({1, 2})) : tj::jit(f)(i32(3), f32s({1, 2}));
      EXPECT_EQ(r.first.item<int32_t>(), 5);
      ExpectFloats(r.second, {1, 2});
    }
    // The zero-trip result of a jitted loop is its own buffer: the input is untouched by reuse.
    auto jitted = tj::jit(f);
    Array v = f32s({3, 4});
    IV r = jitted(i32(0), v);
    IV r2 = jitted(i32(7), f32s({0, 0}));
    ExpectFloats(r.second, {3, 4});
    ExpectFloats(v, {3, 4});
    ExpectFloats(r2.second, {2, 2});
    // grad through a zero-trip while (with max_iterations) is the identity.
    auto g = [](const Array& v) {
      return tj::sum(tj::while_loop([](const IV& c) { return c.first < 0; },
                                    [](const IV& c) { return IV{c.first + 1, c.second * 3.f}; }, IV{i32(0), v},
                                    tj::WhileOptions{.max_iterations = 4})
                         .second);
    };
    ExpectFloats(tj::grad(g)(f32s({1, 2})), {1, 1});
    ExpectFloats(tj::jit(tj::grad(g))(f32s({1, 2})), {1, 1});
  }
}

TEST(ControlFlowWhile, CollatzWithCondInside) {
  // Steps of the Collatz map to reach 1, with a cond on the integer predicate n & 1.
  auto collatz = [](const Array& n0) {
    return tj::while_loop(
               [](const IV& c) { return c.first != 1; },
               [](const IV& c) {
                 Array n = tj::cond(c.first & 1, [](const Array& m) { return m * 3 + 1; },
                                    [](const Array& m) { return m >> 1; }, c.first);
                 return IV{n, c.second + 1};
               },
               IV{n0, i32(0)})
        .second;
  };
  auto reference = [](int n) {
    int steps = 0;
    for (; n != 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
  };
  auto jitted = tj::jit(collatz);
  for (int n : {27, 6, 1, 7}) {
    EXPECT_EQ(collatz(i32(n)).item<int32_t>(), reference(n)) << n;
    EXPECT_EQ(jitted(i32(n)).item<int32_t>(), reference(n)) << n;
  }
  EXPECT_EQ(reference(27), 111);  // the well-known long trajectory of 27
  EXPECT_EQ(jitted.stats().traces, 1);
  std::string ir = tj::make_ir(collatz)(i32(27)).str();
  EXPECT_EQ(count(ir, "while["), 1) << ir;
  EXPECT_EQ(count(ir, "cond[branches=2]"), 1) << ir;
  EXPECT_EQ(count(ir, "true_branch={"), 1) << ir;
  // The cond is nested inside the while body (deeper indentation).
  EXPECT_HAS(ir, "\n            true_branch={ lambda");
}

TEST(ControlFlowWhile, TupleCarryOfThreeDtypes) {
  // Halve v = [8, 4] (sum 12) until its sum is below 1: 6, 3, 1.5, 0.75: 4 steps, v = [0.5, 0.25].
  using C = std::tuple<Array, Array, Array>;  // steps i32, v f32[2], done bool
  auto halve = [](const Array& v) {
    return tj::while_loop([](const C& c) { return std::get<2>(c) == false; },
                          [](const C& c) {
                            Array v2 = std::get<1>(c) * 0.5f;
                            return C{std::get<0>(c) + 1, v2, tj::sum(v2) < 1.f};
                          },
                          C{i32(0), v, boolean(false)});
  };
  for (int mode = 0; mode < 2; ++mode) {
    C r = mode == 0 ? halve(f32s({8, 4})) : tj::jit(halve)(f32s({8, 4}));
    EXPECT_EQ(std::get<0>(r).item<int32_t>(), 4);
    ExpectFloats(std::get<1>(r), {0.5f, 0.25f});
    EXPECT_EQ(std::get<2>(r).dtype(), DType::bool_);
    EXPECT_TRUE(std::get<2>(r).item<bool>());
  }
  // A struct carry.
  auto fall = [](const Particle& p) {
    return tj::while_loop([](const Particle& q) { return q.pos > 0.f; },
                          [](const Particle& q) { return Particle{q.pos + q.vel, q.vel - 1.f}; }, p);
  };
  // pos 3, vel 1: (4, 0), (4, -1), (3, -2), (1, -3), (-2, -4).
  for (int mode = 0; mode < 2; ++mode) {
    Particle r = mode == 0 ? fall(Particle{f32(3), f32(1)}) : tj::jit(fall)(Particle{f32(3), f32(1)});
    ExpectFloats(r.pos, {-2});
    ExpectFloats(r.vel, {-4});
  }
}

TEST(ControlFlowWhile, MaxIterationsGradMatchesFiniteDifferences) {
  {  // max iterations grad matches finite differences
    // x <- sin(x) w + 1, three times, w captured by the body; f64.
    using C = std::pair<Array, Array>;
    auto f = [](const Array& x0, const Array& w) {
      return tj::while_loop([](const C& c) { return c.first < 3; },
                            [&](const C& c) { return C{c.first + 1, tj::sin(c.second) * w + 1.}; }, C{i32(0), x0},
                            tj::WhileOptions{.max_iterations = 5})
          .second;
    };
    const double x0 = 0.4, w = 1.3;
    double x = x0;
    for (int k = 0; k < 3; ++k) x = std::sin(x) * w + 1;
    EXPECT_NEAR(f(f64(x0), f64(w)).item<double>(), x, 1e-14);
    EXPECT_NEAR(tj::jit(f)(f64(x0), f64(w)).item<double>(), x, 1e-14);
    const double dx = fd([&](const Array& a) { return f(a, f64(w)).item<double>(); }, f64(x0))[0];
    const double dw = fd([&](const Array& a) { return f(f64(x0), a).item<double>(); }, f64(w))[0];
    auto [gx, gw] = grad01(f, false, f64(x0), f64(w));
    EXPECT_NEAR(gx.item<double>(), dx, 1e-6 * std::fabs(dx));
    EXPECT_NEAR(gw.item<double>(), dw, 1e-6 * std::fabs(dw));
    auto [jgx, jgw] = grad01(f, true, f64(x0), f64(w));
    EXPECT_NEAR(jgx.item<double>(), dx, 1e-6 * std::fabs(dx));
    EXPECT_NEAR(jgw.item<double>(), dw, 1e-6 * std::fabs(dw));
    std::string ir = tj::make_ir(f)(f64(x0), f64(w)).str();
    ExpectOneRegionEqn(ir, "while", {"cond", "body"});
    EXPECT_HAS(ir, "max_iterations=5");
  }
  {  // grad of jit of while
    // grad(jit(f)) with f a bounded while: x <- x^2 twice from x0: x0^4, derivative 4 x0^3 = 32 at 2.
    auto f = tj::jit([](const Array& x0) {
      return tj::while_loop([](const IV& c) { return c.first < 2; },
                            [](const IV& c) { return IV{c.first + 1, c.second * c.second}; }, IV{i32(0), x0},
                            tj::WhileOptions{.max_iterations = 2})
          .second;
    });
    ExpectFloats(f(f32(2)), {16});
    ExpectFloats(tj::grad(f)(f32(2)), {32});
    auto [v, g] = tj::value_and_grad(f)(f32(1.5f));
    ExpectFloats(v, {1.5f * 1.5f * 1.5f * 1.5f});
    ExpectFloats(g, {4 * 1.5f * 1.5f * 1.5f});
  }
}

TEST(ControlFlowWhile, GradWithDataDependentTripCount) {
  {  // grad with data dependent trip count
    // x <- 1.5 x while x < 10, from 1: 1.5 2.25 3.375 5.0625 7.59375 11.390625 (6 steps, of the
    // 20 allowed): x_final = 1.5^6 x0 locally, so the derivative is 1.5^6 = 11.390625.
    auto grow = [](const Array& x0) {
      return tj::while_loop([](const Array& x) { return x < 10.; }, [](const Array& x) { return x * 1.5; }, x0,
                            tj::WhileOptions{.max_iterations = 20});
    };
    EXPECT_DOUBLE_EQ(grow(f64(1)).item<double>(), 11.390625);
    EXPECT_DOUBLE_EQ(tj::jit(grow)(f64(1)).item<double>(), 11.390625);
    EXPECT_NEAR(tj::grad(grow)(f64(1)).item<double>(), 11.390625, 1e-12);
    auto jg = tj::jit(tj::grad(grow));
    EXPECT_NEAR(jg(f64(1)).item<double>(), 11.390625, 1e-12);
    // From 4: 6, 9, 13.5: 3 steps, derivative 1.5^3; the same compiled gradient.
    EXPECT_NEAR(jg(f64(4)).item<double>(), 3.375, 1e-12);
    const double want = fd([&](const Array& a) { return grow(a).item<double>(); }, f64(4))[0];
    EXPECT_NEAR(jg(f64(4)).item<double>(), want, 1e-6 * want);
  }
  {  // grad wrt value only the cond reads
    // The threshold only decides how many steps run: locally constant, gradient 0; the gradient
    // w.r.t. x0 is 2^steps: from 1 with threshold 10: 4 steps, 16.
    auto f = [](const Array& x0, const Array& limit) {
      return tj::while_loop([&](const Array& v) { return v < limit; }, [](const Array& v) { return v * 2.f; }, x0,
                            tj::WhileOptions{.max_iterations = 10});
    };
    auto [gx, gl] = grad01(f, false, f32(1), f32(10));
    ExpectFloats(gx, {16});
    ExpectFloats(gl, {0});
    auto [jgx, jgl] = grad01(f, true, f32(1), f32(10));
    ExpectFloats(jgx, {16});
    ExpectFloats(jgl, {0});
  }
}

// Regression: grad of the while loop that a first grad records (it keeps its trajectory, which
// the second sweep must treat as results with cotangents) threw "replay: while gave 1 results
// for 3". Here w(x) = x^8 locally (3 squarings from 1.5, all below 10 before the last), so
// w'' = 56 x^6 = 637.875.
TEST(ControlFlowWhile, GradOfGradThroughABoundedWhile) {
  auto w = [](const Array& x) {
    return tj::while_loop([](const Array& v) { return v < 10.f; }, [](const Array& v) { return v * v; }, x,
                          tj::WhileOptions{.max_iterations = 3});
  };
  ExpectFloats(tj::grad(w)(f32(1.5f)), {8 * 17.0859375f});  // 8 x^7
  ExpectFloats(tj::grad(tj::grad(w))(f32(1.5f)), {637.875f});
  ExpectFloats(tj::jit(tj::grad(tj::grad(w)))(f32(1.5f)), {637.875f});
}

TEST(ControlFlowWhile, ExceedingMaxIterationsThrowsAtRunTime) {
  auto count_to = [](const Array& n) {
    return tj::while_loop([&](const Array& i) { return i < n; }, [](const Array& i) { return i + 1; }, i32(0),
                          tj::WhileOptions{.max_iterations = 5});
  };
  // 5 steps are allowed, 6 are not.
  EXPECT_EQ(count_to(i32(5)).item<int32_t>(), 5);
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { count_to(i32(6)); }), "max_iterations");
  auto jitted = tj::jit(count_to);
  EXPECT_EQ(jitted(i32(5)).item<int32_t>(), 5);
  std::string msg = ThrowMessage<tj::Error>([&] { jitted(i32(10)); });
  EXPECT_HAS(msg, "[while_loop]");
  EXPECT_HAS(msg, "max_iterations");
  EXPECT_EQ(jitted(i32(3)).item<int32_t>(), 3);
  EXPECT_EQ(jitted(i32(5)).item<int32_t>(), 5);
  EXPECT_EQ(jitted.stats().traces, 1);
  // Under grad (where the bound sizes the kept trajectory) too, then a correct call.
  auto scaled = [](const Array& x, const Array& n) {
    using C = std::pair<Array, Array>;
    return tj::while_loop([&](const C& c) { return c.first < n; },
                          [](const C& c) { return C{c.first + 1, c.second * 2.f}; }, C{i32(0), x},
                          tj::WhileOptions{.max_iterations = 5})
        .second;
  };
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { tj::grad(scaled)(f32(1), i32(8)); }), "max_iterations");
  auto jg = tj::jit(tj::grad(scaled));
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { jg(f32(1), i32(8)); }), "max_iterations");
  ExpectFloats(jg(f32(1), i32(3)), {8});
  ExpectFloats(jg(f32(1), i32(5)), {32});
}

TEST(ControlFlowWhile, GradWithoutMaxIterationsThrows) {
  auto f = [](const Array& x) {
    return tj::while_loop([](const Array& v) { return v < 10.f; }, [](const Array& v) { return v * 2.f; }, x);
  };
  ExpectFloats(f(f32(1)), {16});  // forward works without the bound: 1 2 4 8 16
  ExpectFloats(tj::jit(f)(f32(3)), {12});
  std::string msg = ThrowMessage<tj::Error>([&] { tj::grad(f)(f32(1)); });
  EXPECT_HAS(msg, "max_iterations");
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { tj::jit(tj::grad(f))(f32(1)); }), "max_iterations");
  // The same function, jitted, still works afterwards.
  auto jf = tj::jit(f);
  ExpectFloats(jf(f32(1)), {16});
}

TEST(ControlFlowWhile, WeakInitTakesTheBodyDtype) {
  // An int 0 init and a body adding a strong i32 3: a strong i32, 0 3 6 9 12.
  auto ints = [](const Array& step) {
    return tj::while_loop([](const Array& c) { return c < 10; }, [&](const Array& c) { return c + step; }, 0);
  };
  for (int mode = 0; mode < 2; ++mode) {
    Array r = mode == 0 ? ints(i32(3)) : tj::jit(ints)(i32(3));
    EXPECT_EQ(r.dtype(), DType::i32);
    EXPECT_FALSE(r.weak_type());
    EXPECT_EQ(r.item<int32_t>(), 12);
  }
  // An int 0 init and a body adding an f32: f32, 0 2.5 5 7.5 10.
  auto floats = [](const Array& step) {
    return tj::while_loop([](const Array& c) { return c < 9.f; }, [&](const Array& c) { return c + step; }, 0);
  };
  for (int mode = 0; mode < 2; ++mode) {
    Array r = mode == 0 ? floats(f32(2.5f)) : tj::jit(floats)(f32(2.5f));
    EXPECT_EQ(r.dtype(), DType::f32);
    ExpectFloats(r, {10});
  }
}

TEST(ControlFlowWhile, GradWithIntegerAndBoolCarries) {
  // Carry (i, x, big): x <- x sin(x) w + x, big = x > 1, three steps; grad w.r.t. x0 and w
  // against central differences (f64).
  using C = std::tuple<Array, Array, Array>;
  auto f = [](const Array& x0, const Array& w) {
    C r = tj::while_loop([](const C& c) { return std::get<0>(c) < 3; },
                         [&](const C& c) {
                           Array x = std::get<1>(c) * tj::sin(std::get<1>(c)) * w + std::get<1>(c);
                           return C{std::get<0>(c) + 1, x, x > 1.};
                         },
                         C{i32(0), x0, boolean(false)}, tj::WhileOptions{.max_iterations = 3});
    return std::get<1>(r) * tj::astype(std::get<2>(r), DType::f64);
  };
  const double dx = fd([&](const Array& a) { return f(a, f64(0.6)).item<double>(); }, f64(0.8))[0];
  const double dw = fd([&](const Array& a) { return f(f64(0.8), a).item<double>(); }, f64(0.6))[0];
  for (int mode = 0; mode < 2; ++mode) {
    auto [gx, gw] = grad01(f, mode == 1, f64(0.8), f64(0.6));
    EXPECT_NEAR(gx.item<double>(), dx, 1e-6 * std::fabs(dx));
    EXPECT_NEAR(gw.item<double>(), dw, 1e-6 * std::fabs(dw));
  }
  EXPECT_GT(f(f64(0.8), f64(0.6)).item<double>(), 1.);  // the flag is set: the product is x
}

// ---- cond ----

auto double_or_decrement = [](const Array& p, const Array& x) {
  return tj::cond(p, [](const Array& a) { return a * 2.f; }, [](const Array& a) { return a - 1.f; }, x);
};

TEST(ControlFlowCond, Predicates) {
  {  // bool predicate all modes
    ExpectFloats(double_or_decrement(boolean(true), f32s({1, 2})), {2, 4});
    ExpectFloats(double_or_decrement(boolean(false), f32s({1, 2})), {0, 1});
    ExpectFloats(double_or_decrement(f32(3) > 2.f, f32(5)), {10});
    auto jitted = tj::jit(double_or_decrement);
    ExpectFloats(jitted(boolean(true), f32s({1, 2})), {2, 4});
    ExpectFloats(jitted(boolean(false), f32s({1, 2})), {0, 1});
    ExpectFloats(jitted(boolean(true), f32s({3, 4})), {6, 8});
    EXPECT_EQ(jitted.stats().traces, 1);  // both branches are in the one compiled function
    EXPECT_EQ(jitted.stats().compiles, 1);
    std::string ir = tj::make_ir(double_or_decrement)(boolean(true), f32(1)).str();
    ExpectOneRegionEqn(ir, "cond", {"true_branch", "false_branch"});
    EXPECT_HAS(ir, "cond[branches=2]");
  }
  {  // integer predicate non zero is true
    ExpectFloats(double_or_decrement(i32(2), f32(5)), {10});
    ExpectFloats(double_or_decrement(i32(0), f32(5)), {4});
    ExpectFloats(double_or_decrement(i32(-1), f32(5)), {10});
    ExpectFloats(double_or_decrement(tj::full({}, 7, DType::u32), f32(5)), {10});
    auto jitted = tj::jit(double_or_decrement);
    ExpectFloats(jitted(i32(5), f32(5)), {10});
    ExpectFloats(jitted(i32(0), f32(5)), {4});
    ExpectFloats(jitted(i32(-3), f32(5)), {10});
    ExpectFloats(jitted(i32(1), f32(5)), {10});
    EXPECT_EQ(jitted.stats().traces, 1);
    // The gradient follows the branch the integer selects: 2 or 1.
    ExpectFloats(tj::grad<1>(double_or_decrement)(i32(4), f32(5)), {2});
    ExpectFloats(tj::grad<1>(double_or_decrement)(i32(0), f32(5)), {1});
  }
  {  // cpp bool predicate
    auto f = [](bool p, const Array& x) {
      return tj::cond(p, [](const Array& a) { return a * a; }, [](const Array& a) { return -a; }, x);
    };
    ExpectFloats(f(true, f32(3)), {9});
    ExpectFloats(f(false, f32(3)), {-3});
    ExpectFloats(tj::jit([&](const Array& x) { return f(true, x); })(f32(4)), {16});
    ExpectFloats(tj::jit([&](const Array& x) { return f(false, x); })(f32(4)), {-4});
    ExpectFloats(tj::grad([&](const Array& x) { return f(true, x); })(f32(4)), {8});
    ExpectFloats(tj::grad([&](const Array& x) { return f(false, x); })(f32(4)), {-1});
    EXPECT_EQ(count(tj::make_ir([&](const Array& x) { return f(true, x); })(f32(4)).str(), "cond["), 1);
  }
}

// A cond whose index folds to a constant (a C++ bool, a comparison of constants) is replaced
// by the branch it takes in the optimized IR; the branch's effects still run, in order.
TEST(ControlFlowCond, AConstantIndexLeavesOnlyTheTakenBranch) {
  auto branchy = [](const Array& pred, const Array& x) {
    return tj::cond(
        pred,
        [](const Array& a) {
          tj::debug::print("taken {}", a);
          return a * a;
        },
        [](const Array& a) { return -a; }, x);
  };
  auto by_bool = tj::jit([&](const Array& x) { return branchy(Array(true), x); });
  auto by_compare = tj::jit([&](const Array& x) { return branchy(f32(1) > 2.f, x); });
  const std::string ir = by_bool.lower(f32(3)).optimized_ir();
  EXPECT_EQ(count(ir, "cond["), 0) << ir;
  EXPECT_HAS(ir, "debug_print");
  EXPECT_EQ(count(by_compare.lower(f32(3)).optimized_ir(), "cond["), 0);
  testing::internal::CaptureStdout();
  ExpectFloats(by_bool(f32(3)), {9});
  ExpectFloats(by_compare(f32(3)), {-3});  // 1 > 2 is false
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "taken 3.0\n");  // a scalar prints as NumPy's
  ExpectFloats(tj::jit(tj::grad([&](const Array& x) { return branchy(Array(false), x); }))(f32(4)), {-1});
}

TEST(ControlFlowCond, PytreeOperandsAndOutputs) {
  // true: (pos + vel, Particle{vel, pos} scaled by k); false: (pos - vel, the particle unchanged).
  auto f = [](const Array& p, const Particle& q, const std::pair<Array, Array>& k) {
    return tj::cond(
        p,
        [](const Particle& a, const std::pair<Array, Array>& s) {
          return std::tuple<Array, Particle>{a.pos + a.vel, Particle{a.vel * s.first, a.pos * s.second}};
        },
        [](const Particle& a, const std::pair<Array, Array>&) {
          return std::tuple<Array, Particle>{a.pos - a.vel, a};
        },
        q, k);
  };
  Particle q{f32s({1, 2}), f32s({10, 20})};
  std::pair<Array, Array> k{f32(2), f32(3)};
  auto jf = tj::jit(f);
  for (int mode = 0; mode < 2; ++mode) {
    auto run = [&](bool b) { return mode == 0 ? f(boolean(b), q, k) : jf(boolean(b), q, k); };
    auto [s, r] = run(true);
    ExpectFloats(s, {11, 22});
    ExpectFloats(r.pos, {20, 40});
    ExpectFloats(r.vel, {3, 6});
    auto [s2, r2] = run(false);
    ExpectFloats(s2, {-9, -18});
    ExpectFloats(r2.pos, {1, 2});
    ExpectFloats(r2.vel, {10, 20});
  }
  // d/dq of sum(first) + sum(second.pos) + sum(second.vel): true: pos 1 + k.second = 4, vel 1 + k.first = 3;
  // false: pos 1 + 1 = 2, vel -1 + 1 = 0.
  auto loss = [&](const Particle& a, const Array& p) {
    auto [s, r] = f(p, a, k);
    return tj::sum(s) + tj::sum(r.pos) + tj::sum(r.vel);
  };
  auto jg = tj::jit(tj::grad(loss));
  for (int mode = 0; mode < 2; ++mode) {
    auto g = [&](bool b) { return mode == 0 ? tj::grad(loss)(q, boolean(b)) : jg(q, boolean(b)); };
    Particle gt = g(true), gf = g(false);
    ExpectFloats(gt.pos, {4, 4});
    ExpectFloats(gt.vel, {3, 3});
    ExpectFloats(gf.pos, {2, 2});
    ExpectFloats(gf.vel, {0, 0});
  }
}

TEST(ControlFlowCond, GradSelectsTheTakenBranch) {
  {  // grad selects the taken branch
    auto f = [](const Array& p, const Array& x) {
      return tj::cond(p, [](const Array& a) { return a * a; }, [](const Array& a) { return tj::sin(a); }, x);
    };
    // true: d x^2 = 2x = 3 at x = 1.5; false: cos(1.5).
    ExpectFloats(tj::grad<1>(f)(boolean(true), f32(1.5f)), {3});
    ExpectFloats(tj::grad<1>(f)(boolean(false), f32(1.5f)), {std::cos(1.5f)});
    auto jg = tj::jit(tj::grad<1>(f));
    ExpectFloats(jg(boolean(true), f32(1.5f)), {3});
    ExpectFloats(jg(boolean(false), f32(1.5f)), {std::cos(1.5f)});
    ExpectFloats(jg(boolean(true), f32(-2)), {-4});
    EXPECT_EQ(jg.stats().traces, 1);
    // Second order: d2 x^2 = 2; d2 sin = -sin.
    auto g2 = [&](const Array& p) { return tj::grad([&](const Array& x) { return tj::grad<1>(f)(p, x); }); };
    ExpectFloats(g2(boolean(true))(f32(1.5f)), {2});
    ExpectFloats(g2(boolean(false))(f32(1.5f)), {-std::sin(1.5f)});
  }
  {  // predicate computed from the operand
    // x > 0 ? x^2 : -3x: derivative 2x right of 0, -3 left of it.
    auto f = [](const Array& x) {
      return tj::cond(x > 0.f, [](const Array& a) { return a * a; }, [](const Array& a) { return a * -3.f; }, x);
    };
    ExpectFloats(f(f32(2)), {4});
    ExpectFloats(f(f32(-2)), {6});
    ExpectFloats(tj::grad(f)(f32(2)), {4});
    ExpectFloats(tj::grad(f)(f32(-2)), {-3});
    auto jg = tj::jit(tj::grad(f));
    ExpectFloats(jg(f32(2)), {4});
    ExpectFloats(jg(f32(-2)), {-3});
    ExpectFloats(jg(f32(0.5f)), {1});
  }
}

TEST(ControlFlowCond, BranchesCaptureOuterValues) {
  {  // branches capture outer values
    // true: x y; false: x + 2 z, with y and z traced values captured by the branches.
    auto f = [](const Array& p, const Array& x, const Array& y, const Array& z) {
      Array zz = z * 2.f;  // computed outside, captured inside
      return tj::cond(p, [&](const Array& a) { return a * y; }, [&](const Array& a) { return a + zz; }, x);
    };
    auto jf = tj::jit(f);
    for (int mode = 0; mode < 2; ++mode) {
      auto run = [&](bool b) {
        return mode == 0 ? f(boolean(b), f32(3), f32(4), f32(5)) : jf(boolean(b), f32(3), f32(4), f32(5));
      };
      ExpectFloats(run(true), {12});
      ExpectFloats(run(false), {13});
    }
    // d/dy: x on the true branch, 0 on the false; d/dz: 0 and 2.
    ExpectFloats(tj::grad<2>(f)(boolean(true), f32(3), f32(4), f32(5)), {3});
    ExpectFloats(tj::grad<3>(f)(boolean(true), f32(3), f32(4), f32(5)), {0});
    ExpectFloats(tj::jit(tj::grad<2>(f))(boolean(false), f32(3), f32(4), f32(5)), {0});
    ExpectFloats(tj::jit(tj::grad<3>(f))(boolean(false), f32(3), f32(4), f32(5)), {2});
    ExpectFloats(tj::jit(tj::grad<2>(f))(boolean(true), f32(3), f32(4), f32(5)), {3});
    // A concrete array captured eagerly (not an argument).
    Array bias = f32s({1, 2});
    auto h = [&](const Array& p, const Array& x) {
      return tj::cond(p, [&](const Array& a) { return a + bias; }, [&](const Array& a) { return a - bias; }, x);
    };
    ExpectFloats(h(boolean(true), f32(10)), {11, 12});
    ExpectFloats(tj::jit(h)(boolean(false), f32(10)), {9, 8});
  }
  {  // no operands only captures
    auto f = [](const Array& p, const Array& x, const Array& y) {
      return tj::cond(p, [&] { return x * y; }, [&] { return x + y; });
    };
    auto jf = tj::jit(f);
    for (int mode = 0; mode < 2; ++mode) {
      auto run = [&](bool b) { return mode == 0 ? f(boolean(b), f32(3), f32(4)) : jf(boolean(b), f32(3), f32(4)); };
      ExpectFloats(run(true), {12});
      ExpectFloats(run(false), {7});
    }
    // d/dx: y = 4 on the true branch, 1 on the false; d/dy: x = 3 and 1.
    ExpectFloats(tj::grad<1>(f)(boolean(true), f32(3), f32(4)), {4});
    ExpectFloats(tj::grad<1>(f)(boolean(false), f32(3), f32(4)), {1});
    ExpectFloats(tj::jit(tj::grad<2>(f))(boolean(true), f32(3), f32(4)), {3});
    ExpectFloats(tj::jit(tj::grad<2>(f))(boolean(false), f32(3), f32(4)), {1});
  }
}

TEST(ControlFlowCond, OutputDtypes) {
  {  // weak branch output takes the other branch dtype
    // true returns a C++ int 0, false the f32 operand: the result is f32 either way.
    auto f = [](const Array& p, const Array& x) {
      return tj::cond(p, [](const Array&) { return 0; }, [](const Array& a) { return a; }, x);
    };
    auto jf = tj::jit(f);
    for (int mode = 0; mode < 2; ++mode) {
      Array t = mode == 0 ? f(boolean(true), f32(2.5f)) : jf(boolean(true), f32(2.5f));
      Array e = mode == 0 ? f(boolean(false), f32(2.5f)) : jf(boolean(false), f32(2.5f));
      EXPECT_EQ(t.dtype(), DType::f32);
      EXPECT_EQ(e.dtype(), DType::f32);
      ExpectFloats(t, {0});
      ExpectFloats(e, {2.5f});
    }
    // A weak float constant against an f64 branch: f64.
    Array r = tj::cond(boolean(true), [](const Array&) { return 0.5f; }, [](const Array& a) { return a; }, f64(1));
    EXPECT_EQ(r.dtype(), DType::f64);
    EXPECT_DOUBLE_EQ(r.item<double>(), 0.5);
  }
  {  // integer outputs beside float ones under grad
    // The branches return (float, int); the gradient flows through the float only.
    auto f = [](const Array& p, const Array& x) {
      auto [v, n] = tj::cond(
          p, [](const Array& a) { return std::pair<Array, Array>{a * 3.f, i32(1)}; },
          [](const Array& a) { return std::pair<Array, Array>{a * a, i32(2)}; }, x);
      return v * tj::astype(n, DType::f32);
    };
    ExpectFloats(f(boolean(true), f32(2)), {6});
    ExpectFloats(f(boolean(false), f32(2)), {8});
    ExpectFloats(tj::grad<1>(f)(boolean(true), f32(2)), {3});
    ExpectFloats(tj::grad<1>(f)(boolean(false), f32(2)), {8});  // 2 * 2x
    ExpectFloats(tj::jit(tj::grad<1>(f))(boolean(false), f32(2)), {8});
  }
}

// ---- nesting ----

TEST(ControlFlowNesting, ScanInsideScan) {
  // Rows [1 2 3] and [4 5 6]: the inner scan gives each row's running sums, the outer carry
  // adds each row's total: ys [[1 3 6] [4 9 15]], total 21.
  auto f = [](const Array& m) {
    return tj::scan(
        [](const Array& total, const Array& row) {
          auto [s, run] = tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c + x}; },
                                   f32(0), row);
          return std::pair{total + s, run};
        },
        f32(0), m);
  };
  Array m = f32s({1, 2, 3, 4, 5, 6}, {2, 3});
  for (int mode = 0; mode < 2; ++mode) {
    auto [t, ys] = mode == 0 ? f(m) : tj::jit(f)(m);
    ExpectFloats(t, {21});
    ExpectFloats(ys, {1, 3, 6, 4, 9, 15});
    EXPECT_EQ(ys.shape(), (tj::Shape{2, 3}));
  }
  std::string ir = tj::make_ir(f)(m).str();
  EXPECT_EQ(count(ir, "scan["), 2) << ir;
  EXPECT_EQ(count(ir, "body={"), 2) << ir;
  EXPECT_HAS(ir, "\n            body={ lambda");  // the inner body, nested one level deeper
  // d(total + sum(ys))/dm[r][j] = 1 + (3 - j): 4 3 2 on both rows.
  auto loss = [&](const Array& x) {
    auto [t, ys] = f(x);
    return t + tj::sum(ys);
  };
  ExpectFloats(tj::grad(loss)(m), {4, 3, 2, 4, 3, 2});
  ExpectFloats(tj::jit(tj::grad(loss))(m), {4, 3, 2, 4, 3, 2});
}

TEST(ControlFlowNesting, CondInsideWhileAndWhileInsideCondUnderGrad) {
  // Four steps of x <- (x > 1 ? x / 2 : 3 x) from 1.2: 0.6, 1.8, 0.9, 2.7; derivative
  // 0.5 * 3 * 0.5 * 3 = 2.25.
  using C = std::pair<Array, Array>;
  auto f = [](const Array& x0) {
    return tj::while_loop([](const C& c) { return c.first < 4; },
                          [](const C& c) {
                            Array x = tj::cond(c.second > 1., [](const Array& a) { return a * 0.5; },
                                               [](const Array& a) { return a * 3.; }, c.second);
                            return C{c.first + 1, x};
                          },
                          C{i32(0), x0}, tj::WhileOptions{.max_iterations = 4})
        .second;
  };
  EXPECT_NEAR(f(f64(1.2)).item<double>(), 2.7, 1e-12);
  EXPECT_NEAR(tj::jit(f)(f64(1.2)).item<double>(), 2.7, 1e-12);
  EXPECT_NEAR(tj::grad(f)(f64(1.2)).item<double>(), 2.25, 1e-12);
  EXPECT_NEAR(tj::jit(tj::grad(f))(f64(1.2)).item<double>(), 2.25, 1e-12);
  std::string ir = tj::make_ir(f)(f64(1.2)).str();
  EXPECT_EQ(count(ir, "while["), 1) << ir;
  EXPECT_EQ(count(ir, "cond[branches=2]"), 1) << ir;
  // And a bounded while inside a cond branch: x <- 1.5 x while x < 10, from 1: 6 steps, so the
  // derivative is 1.5^6 = 11.390625 on that branch; the other branch is x^2 (2x = 6 at 3).
  auto g = [](const Array& p, const Array& x) {
    return tj::cond(p,
                    [](const Array& a) {
                      return tj::while_loop([](const Array& v) { return v < 10.; }, [](const Array& v) { return v * 1.5; },
                                            a, tj::WhileOptions{.max_iterations = 10});
                    },
                    [](const Array& a) { return a * a; }, x);
  };
  EXPECT_NEAR(tj::grad<1>(g)(boolean(true), f64(1)).item<double>(), 11.390625, 1e-12);
  auto jg = tj::jit(tj::grad<1>(g));
  EXPECT_NEAR(jg(boolean(true), f64(1)).item<double>(), 11.390625, 1e-12);
  EXPECT_NEAR(jg(boolean(false), f64(3)).item<double>(), 6, 1e-12);
}

TEST(ControlFlowNesting, WhileInsideScan) {
  // For each x: doublings of v from 1 until v >= x: x = 1 3 8 9 -> 0 2 3 4; their sum 9.
  auto f = [](const Array& xs) {
    return tj::scan(
        [](const Array& total, const Array& x) {
          IV r = tj::while_loop([&](const IV& c) { return c.second < x; },
                                [](const IV& c) { return IV{c.first + 1, c.second * 2.f}; }, IV{i32(0), f32(1)});
          return std::pair{total + r.first, r.first};
        },
        i32(0), xs);
  };
  Array xs = f32s({1, 3, 8, 9});
  for (int mode = 0; mode < 2; ++mode) {
    auto [t, ys] = mode == 0 ? f(xs) : tj::jit(f)(xs);
    EXPECT_EQ(t.item<int32_t>(), 9);
    EXPECT_EQ(I(ys), (std::vector<int32_t>{0, 2, 3, 4}));
  }
  std::string ir = tj::make_ir(f)(xs).str();
  EXPECT_EQ(count(ir, "scan["), 1) << ir;
  EXPECT_EQ(count(ir, "while["), 1) << ir;
  EXPECT_GT(ir.find("while["), ir.find("body={")) << "the while is inside the scan body:\n" << ir;

  // Under grad: each step multiplies the carry by x twice (a bounded while): c = c0 x0^2 x1^2.
  // At c0 = 1, x = 1.5 2: c = 9; dc/dc0 = 9, dc/dx0 = 2 x0 x1^2 = 12, dc/dx1 = 2 x1 x0^2 = 9.
  auto g = [](const Array& c0, const Array& x) {
    return tj::scan(
               [](const Array& c, const Array& xi) {
                 IV r = tj::while_loop([](const IV& s) { return s.first < 2; },
                                       [&](const IV& s) { return IV{s.first + 1, s.second * xi}; }, IV{i32(0), c},
                                       tj::WhileOptions{.max_iterations = 3});
                 return std::pair{r.second, r.first};
               },
               c0, x)
        .first;
  };
  Array x = f64s({1.5, 2});
  EXPECT_NEAR(g(f64(1), x).item<double>(), 9, 1e-12);
  for (int mode = 0; mode < 2; ++mode) {
    auto [gc, gx] = grad01(g, mode == 1, f64(1), x);
    EXPECT_NEAR(gc.item<double>(), 9, 1e-12);
    ExpectDoubles(D(gx), {12, 9}, 1e-12);
  }
}

TEST(ControlFlowNesting, JitAndScanNestedEitherWay) {
  {  // jit inside a scan body
    // step(c, x) = 2c + x, jitted, called by the scan body: from 0 over 1 2 3: 1, 4, 11.
    auto step = tj::jit([](const Array& c, const Array& x) { return c * 2.f + x; });
    auto f = [&](const Array& xs) {
      return tj::scan([&](const Array& c, const Array& x) {
        Array n = step(c, x);
        return std::pair{n, n};
      }, f32(0), xs);
    };
    Array xs = f32s({1, 2, 3});
    for (int mode = 0; mode < 2; ++mode) {
      auto [c, ys] = mode == 0 ? f(xs) : tj::jit(f)(xs);
      ExpectFloats(c, {11});
      ExpectFloats(ys, {1, 4, 11});
    }
    EXPECT_EQ(count(tj::make_ir(f)(xs).str(), "scan["), 1);
    // c = 4 x0 + 2 x1 + x2.
    auto final_c = [&](const Array& x) { return f(x).first; };
    ExpectFloats(tj::grad(final_c)(xs), {4, 2, 1});
    ExpectFloats(tj::jit(tj::grad(final_c))(xs), {4, 2, 1});
  }
  {  // scan inside jit inside grad
    auto prod = tj::jit([](const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) { return std::pair{c * x, c}; }, f32(1), xs).first;
    });
    Array xs = f32s({1, 2, 3, 4});
    // 24 / x_i.
    ExpectFloats(tj::grad(prod)(xs), {24, 12, 8, 6});
    auto [v, g] = tj::value_and_grad(prod)(xs);
    ExpectFloats(v, {24});
    ExpectFloats(g, {24, 12, 8, 6});
    ExpectFloats(tj::jit(tj::grad(prod))(f32s({2, 2, 2})), {4, 4, 4});
  }
}

TEST(ControlFlowNesting, CondInsideScanMatchesFiniteDifferences) {
  // c <- x > 0 ? c x + sin(w x) : c - w x, w captured (by one branch each way); f64.
  auto loss = [](const Array& w, const Array& xs) {
    auto [c, ys] = tj::scan(
        [&](const Array& c, const Array& x) {
          Array n = tj::cond(x > 0., [&](const Array& a) { return a * x + tj::sin(w * x); },
                             [&](const Array& a) { return a - w * x; }, c);
          return std::pair{n, n * n};
        },
        f64(0.5), xs);
    return c + tj::sum(ys);
  };
  Array w = f64(0.7);
  Array xs = f64s({0.4, -0.3, 1.1, -0.8, 0.6});
  const double dw = fd([&](const Array& a) { return loss(a, xs).item<double>(); }, w)[0];
  const std::vector<double> dx = fd([&](const Array& a) { return loss(w, a).item<double>(); }, xs);
  for (int mode = 0; mode < 2; ++mode) {
    auto [gw, gx] = grad01(loss, mode == 1, w, xs);
    ExpectDoubles(D(gw), {dw});
    ExpectDoubles(D(gx), dx);
  }
  std::string ir = tj::make_ir(loss)(w, xs).str();
  EXPECT_EQ(count(ir, "scan["), 1) << ir;
  EXPECT_EQ(count(ir, "cond[branches=2]"), 1) << ir;
}

TEST(ControlFlowNesting, ScanInsideWhileMatchesFiniteDifferences) {
  // Each of 3 while steps runs a scan over xs: c <- tanh(c + x w); f64, w captured twice deep.
  auto loss = [](const Array& c0, const Array& w) {
    Array xs = f64s({0.3, -0.5, 0.8});
    return tj::while_loop([](const IV& s) { return s.first < 3; },
                          [&](const IV& s) {
                            Array c = tj::scan([&](const Array& c, const Array& x) { return std::pair{tj::tanh(c + x * w), c}; },
                                               s.second, xs)
                                          .first;
                            return IV{s.first + 1, c};
                          },
                          IV{i32(0), c0}, tj::WhileOptions{.max_iterations = 4})
        .second;
  };
  const double dc = fd([&](const Array& a) { return loss(a, f64(1.2)).item<double>(); }, f64(0.1))[0];
  const double dw = fd([&](const Array& a) { return loss(f64(0.1), a).item<double>(); }, f64(1.2))[0];
  for (int mode = 0; mode < 2; ++mode) {
    auto [gc, gw] = grad01(loss, mode == 1, f64(0.1), f64(1.2));
    EXPECT_NEAR(gc.item<double>(), dc, 1e-6 * std::fabs(dc));
    EXPECT_NEAR(gw.item<double>(), dw, 1e-6 * std::fabs(dw));
  }
}

TEST(ControlFlowNesting, ScanInCondInScanUnderJitGrad) {
  // Rows of m: when the row sum is positive, c times the row's product (an inner scan), else
  // c plus the row sum. m = [[1 2 3] [-1 -2 -3] [0.5 2 1]], from c = 1:
  //   row 0: sum 6 > 0: c = 1 * 6 = 6;  row 1: sum -6: c = 6 - 6 = 0;  row 2: c = 0 * 1 = 0.
  // Nonzero derivatives: dc/dm[1][j] = 1 * (row-2 product 1) = 1; dc/dm[2][j] = c before row 2
  // (0) times ... = 0; dc/dm[0][j] = (product / m[0][j]) * 1 (row 1 adds, row 2 multiplies by 1):
  // 6 3 2.
  auto f = [](const Array& m) {
    return tj::scan(
               [](const Array& c, const Array& row) {
                 Array n = tj::cond(
                     tj::sum(row) > 0.f,
                     [](const Array& a, const Array& r) {
                       return a * tj::scan([](const Array& p, const Array& x) { return std::pair{p * x, p}; }, f32(1), r).first;
                     },
                     [](const Array& a, const Array& r) { return a + tj::sum(r); }, c, row);
                 return std::pair{n, n};
               },
               f32(1), m)
        .first;
  };
  Array m = f32s({1, 2, 3, -1, -2, -3, 0.5f, 2, 1}, {3, 3});
  ExpectFloats(f(m), {0});
  ExpectFloats(tj::jit(f)(m), {0});
  std::vector<float> want = {6, 3, 2, 1, 1, 1, 0, 0, 0};
  ExpectFloats(tj::grad(f)(m), want);
  ExpectFloats(tj::jit(tj::grad(f))(m), want);
  std::string ir = tj::make_ir(f)(m).str();
  EXPECT_EQ(count(ir, "scan["), 2) << ir;
  EXPECT_EQ(count(ir, "cond["), 1) << ir;
}

TEST(ControlFlowNesting, RunTimeErrorInANestedLoopLeavesTheJitUsable) {
  // A bounded while inside a scan body: x = 1 2 3 needs 1, 2, 3 steps; bound 2 fails on x = 3.
  auto f = tj::jit([](const Array& xs) {
    return tj::scan(
        [](const Array& c, const Array& x) {
          Array k = tj::while_loop([&](const Array& i) { return tj::astype(i, DType::f32) < x; },
                                   [](const Array& i) { return i + 1; }, i32(0), tj::WhileOptions{.max_iterations = 2});
          return std::pair{c + k, k};
        },
        i32(0), xs);
  });
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { f(f32s({1, 2, 3})); }), "max_iterations");
  auto [c, ys] = f(f32s({1, 2, 2}));
  EXPECT_EQ(c.item<int32_t>(), 5);
  EXPECT_EQ(I(ys), (std::vector<int32_t>{1, 2, 2}));
  EXPECT_HAS(ThrowMessage<tj::Error>([&] { f(f32s({3, 1, 1})); }), "max_iterations");
  EXPECT_EQ(f(f32s({0, 1, 0})).first.item<int32_t>(), 1);
}

TEST(ControlFlowNesting, GradInsideAScanBody) {
  // Gradient descent on x^4 / 4 (gradient x^3) inside the body: x <- x - 0.1 x^3, 3 steps;
  // the result and its derivative (the product of 1 - 0.3 x_k^2) against a C++ loop and
  // central differences (f64).
  auto descend = [](const Array& x0) {
    auto quartic = [](const Array& x) { return x * x * x * x * 0.25; };
    return tj::scan([&](const Array& x, const std::tuple<>&) { return std::pair{x - tj::grad(quartic)(x) * 0.1, x}; },
                    x0, std::tuple<>{}, tj::ScanOptions{.length = 3})
        .first;
  };
  double x = 1.3, d = 1;
  for (int k = 0; k < 3; ++k) {
    d *= 1 - 0.3 * x * x;
    x -= 0.1 * x * x * x;
  }
  EXPECT_NEAR(descend(f64(1.3)).item<double>(), x, 1e-14);
  EXPECT_NEAR(tj::jit(descend)(f64(1.3)).item<double>(), x, 1e-14);
  EXPECT_NEAR(tj::grad(descend)(f64(1.3)).item<double>(), d, 1e-12);
  EXPECT_NEAR(tj::jit(tj::grad(descend))(f64(1.3)).item<double>(), d, 1e-12);
  const double dd = fd([&](const Array& a) { return tj::grad(descend)(a).item<double>(); }, f64(1.3))[0];
  EXPECT_NEAR(tj::grad(tj::grad(descend))(f64(1.3)).item<double>(), dd, 1e-6 * std::fabs(dd));
}

TEST(ControlFlowNesting, ConcurrentCallsOfAJittedLoop) {
  // The loop state lives in each call: threads calling one jitted scan get their own results.
  auto f = tj::jit(cumsum);
  f(f32(0), f32s({1, 2, 3}));  // compile once
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 25; ++k) {
        const float base = static_cast<float>(t * 100 + k);
        auto [c, ys] = f(f32(base), f32s({1, 2, 3}));
        if (c.item<float>() != base + 6 || F(ys) != std::vector<float>{base + 1, base + 3, base + 6}) ++bad[t];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

// ---- VJPs against f64 finite differences ----

TEST(ControlFlowVjp, ScanMatchesFiniteDifferencesForConstsInitAndXs) {
  // c <- tanh(c * w + x), y = sin(c) * x; loss = sum(c_final) + sum(ys^2); w captured.
  auto loss = [](const Array& w, const Array& init, const Array& xs) {
    auto [c, ys] = tj::scan(
        [&](const Array& c, const Array& x) {
          Array n = tj::tanh(c * w + x);
          return std::pair{n, tj::sin(n) * x};
        },
        init, xs);
    return tj::sum(c) + tj::sum(ys * ys);
  };
  Array w = f64s({0.3, -0.7});
  Array init = f64s({0.1, 0.2});
  Array xs = f64s({0.5, -0.4, 0.9, 0.2, -1.1, 0.3, 0.05, 0.6}, {4, 2});
  const std::vector<double> dw = fd([&](const Array& a) { return loss(a, init, xs).item<double>(); }, w);
  const std::vector<double> di = fd([&](const Array& a) { return loss(w, a, xs).item<double>(); }, init);
  const std::vector<double> dx = fd([&](const Array& a) { return loss(w, init, a).item<double>(); }, xs);
  for (int mode = 0; mode < 2; ++mode) {
    auto [gw, gi, gx] = grad012(loss, mode == 1, w, init, xs);
    EXPECT_EQ(gw.dtype(), DType::f64);
    ExpectDoubles(D(gw), dw);
    ExpectDoubles(D(gi), di);
    ExpectDoubles(D(gx), dx);
    EXPECT_EQ(gx.shape(), (tj::Shape{4, 2}));
  }
}

TEST(ControlFlowVjp, ReverseScanMatchesFiniteDifferences) {
  auto loss = [](const Array& w, const Array& xs) {
    auto [c, ys] = tj::scan(
        [&](const Array& c, const Array& x) {
          Array n = c * tj::cos(x * w) + x * x;
          return std::pair{n, n * c};
        },
        f64(0.5), xs, tj::ScanOptions{.reverse = true});
    return c * 2. + tj::sum(ys * f64s({1, 2, 3}));
  };
  Array w = f64(0.8);
  Array xs = f64s({0.3, -0.6, 1.2});
  const double dw = fd([&](const Array& a) { return loss(a, xs).item<double>(); }, w)[0];
  const std::vector<double> dx = fd([&](const Array& a) { return loss(w, a).item<double>(); }, xs);
  for (int mode = 0; mode < 2; ++mode) {
    auto [gw, gx] = grad01(loss, mode == 1, w, xs);
    ExpectDoubles(D(gw), {dw});
    ExpectDoubles(D(gx), dx);
  }
}

TEST(ControlFlowVjp, CondMatchesFiniteDifferences) {
  // true (sum(x) > 0): sum(tanh(x * y)); false: sum(exp(x) * y); y captured by the branches.
  auto loss = [](const Array& x, const Array& y) {
    return tj::sum(tj::cond(tj::sum(x) > 0., [&](const Array& a) { return tj::tanh(a * y); },
                            [&](const Array& a) { return tj::exp(a) * y; }, x));
  };
  for (const Array& x : {f64s({0.4, 0.9, -0.2}), f64s({-0.4, -0.9, 0.2})}) {
    Array y = f64s({1.5, -0.5, 0.7});
    ExpectGradsMatchFd(loss, x, y);
  }
}

TEST(ControlFlowVjp, WhilePytreeCarryMatchesFiniteDifferences) {
  // A carry (i, a, b) with the rotation-like update a <- a cos(t) - b sin(t) * s,
  // b <- a sin(t) + b, s captured, run 4 times with max_iterations 6.
  using C = std::tuple<Array, Array, Array>;
  auto loss = [](const Array& ab, const Array& s) {
    C r = tj::while_loop([](const C& c) { return std::get<0>(c) < 4; },
                         [&](const C& c) {
                           const Array& a = std::get<1>(c);
                           const Array& b = std::get<2>(c);
                           return C{std::get<0>(c) + 1, a * tj::cos(b) - tj::sin(a) * s, a * 0.5 + b * b * 0.3};
                         },
                         C{i32(0), ab[0], ab[1]}, tj::WhileOptions{.max_iterations = 6});
    return std::get<1>(r) * 3. + std::get<2>(r);
  };
  Array ab = f64s({0.7, -0.3});
  Array s = f64(0.4);
  ExpectGradsMatchFd(loss, ab, s);
}

// ---- errors ----

TEST(ControlFlowErrors, ScanCarryShapeChangeIsTypeError) {
  auto jitted = tj::jit(cumsum);
  // xs rows are f32[2]: c + x broadcasts the f32[] carry to f32[2].
  std::string msg = ThrowMessage<tj::TypeError>([&] { jitted(f32(0), tj::ones({3, 2})); });
  EXPECT_HAS(msg, "[scan]");
  EXPECT_HAS(msg, "f32[]");
  EXPECT_HAS(msg, "f32[2]");
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] { cumsum(f32(0), tj::ones({3, 2})); }), "f32[2]");
  auto [c, ys] = jitted(f32(0), f32s({1, 2, 3}));
  ExpectFloats(c, {6});
  ExpectFloats(ys, {1, 3, 6});
}

TEST(ControlFlowErrors, ScanCarryDtypeChangeIsTypeErrorNamingPath) {
  // The body converts the carry to the dtype of x: f64 xs turn the f32 carry into f64.
  auto jitted = tj::jit([](const Array& init, const Array& xs) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{tj::astype(c, x.dtype()) + x, x}; },
                    init, xs);
  });
  std::string msg = ThrowMessage<tj::TypeError>([&] { jitted(f32(0), f64s({1, 2})); });
  EXPECT_HAS(msg, "[scan]");
  EXPECT_HAS(msg, "f32[]");
  EXPECT_HAS(msg, "f64[]");
  ExpectFloats(jitted(f32(0), f32s({1, 2})).first, {3});
  // In a struct carry the message names the leaf path.
  auto f = [](const Particle& p, const Array& xs) {
    return tj::scan([](const Particle& q, const Array& x) { return std::pair{Particle{q.pos, tj::astype(q.vel, x.dtype()) + x}, x}; }, p, xs);
  };
  auto jf = tj::jit(f);
  std::string m2 = ThrowMessage<tj::TypeError>([&] { jf(Particle{f32(0), f32(0)}, f64s({1, 2})); });
  EXPECT_HAS(m2, ".vel");
  EXPECT_HAS(m2, "f32[]");
  EXPECT_HAS(m2, "f64[]");
  ExpectFloats(jf(Particle{f32(0), f32(0)}, f32s({1, 2})).first.vel, {3});
  // A map carry: the message names the key.
  auto m = [](const Map& init, const Array& xs) {
    return tj::scan([](const Map& c, const Array& x) {
      return std::pair{Map{{"a", c.at("a")}, {"total", tj::astype(c.at("total"), x.dtype()) + x}}, x};
    }, init, xs).first;
  };
  std::string m4 = ThrowMessage<tj::TypeError>([&] { m(Map{{"a", f32(0)}, {"total", f32(0)}}, f64s({1})); });
  EXPECT_HAS(m4, "[scan]");
  EXPECT_HAS(m4, "total");
  EXPECT_HAS(m4, "f64[]");
  // while_loop likewise.
  auto w = tj::jit([](const Array& x, const Array& step) {
    return tj::while_loop([](const Array& v) { return v < 10.f; }, [&](const Array& v) { return tj::astype(v, step.dtype()) + step; }, x);
  });
  std::string m3 = ThrowMessage<tj::TypeError>([&] { w(f32(0), f64(1)); });
  EXPECT_HAS(m3, "[while_loop]");
  EXPECT_HAS(m3, "f32[]");
  EXPECT_HAS(m3, "f64[]");
  ExpectFloats(w(f32(0), f32(3)), {12});
}

TEST(ControlFlowErrors, CarryStructureChangeIsTypeError) {
  // The body always returns two leaves: right for a two-leaf init, wrong for one leaf.
  auto f = [](const std::vector<Array>& init, const Array& xs) {
    return tj::scan([](const std::vector<Array>& c, const Array& x) {
      return std::pair{std::vector<Array>{c[0] + x, x}, x};
    }, init, xs);
  };
  auto jitted = tj::jit(f);
  std::string msg = ThrowMessage<tj::TypeError>([&] { jitted(std::vector<Array>{f32(0)}, f32s({1, 2})); });
  EXPECT_HAS(msg, "[scan]");
  EXPECT_HAS(msg, "structure");
  auto [c, ys] = jitted(std::vector<Array>{f32(0), f32(0)}, f32s({1, 2}));
  ExpectFloats(c[0], {3});
  ExpectFloats(c[1], {2});
  auto w = [](const std::vector<Array>& init) {
    return tj::while_loop([](const std::vector<Array>& c) { return c[0] < 3.f; },
                          [](const std::vector<Array>& c) { return std::vector<Array>{c[0] + 1.f, c[0]}; }, init);
  };
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] { w(std::vector<Array>{f32(0)}); }), "[while_loop]");
  ExpectFloats(w(std::vector<Array>{f32(0), f32(0)})[1], {2});
}

// true_fn returns its first operand, false_fn its second.
auto pick = [](const Array& p, const Array& a, const Array& b) {
  return tj::cond(p, [](const Array& x, const Array&) { return x; }, [](const Array&, const Array& y) { return y; },
                  a, b);
};

TEST(ControlFlowErrors, CondBranchesWithDifferentDtypesOrShapes) {
  auto jitted = tj::jit(pick);
  std::string msg = ThrowMessage<tj::TypeError>([&] { jitted(boolean(true), f32(1), i32(2)); });
  EXPECT_HAS(msg, "[cond]");
  EXPECT_HAS(msg, "f32[]");
  EXPECT_HAS(msg, "i32[]");
  std::string m2 = ThrowMessage<tj::TypeError>([&] { jitted(boolean(true), f32s({1, 2}), f32s({1, 2, 3})); });
  EXPECT_HAS(m2, "[cond]");
  EXPECT_HAS(m2, "f32[2]");
  EXPECT_HAS(m2, "f32[3]");
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] { pick(boolean(false), f32(1), f64(2)); }), "f64[]");
  ExpectFloats(jitted(boolean(true), f32(1), f32(2)), {1});
  ExpectFloats(jitted(boolean(false), f32(1), f32(2)), {2});
  // A pytree output names the leaf path.
  auto pairs = [](const Array& p, const Array& a, const Array& b) {
    return tj::cond(p, [](const Array& x, const Array& y) { return std::pair<Array, Array>{x, y}; },
                    [](const Array& x, const Array&) { return std::pair<Array, Array>{x, x}; }, a, b);
  };
  std::string m3 = ThrowMessage<tj::TypeError>([&] { pairs(boolean(true), f32(1), i32(2)); });
  EXPECT_TRUE(HasPath(m3, 1)) << m3;
  EXPECT_HAS(m3, "i32[]");
}

TEST(ControlFlowErrors, CondBranchesWithDifferentStructures) {
  auto f = [](const Array& p, const std::vector<Array>& ops) {
    return tj::cond(p, [](const std::vector<Array>& v) { return std::vector<Array>{v[0], v[0]}; },
                    [](const std::vector<Array>& v) { return v; }, ops);
  };
  auto jitted = tj::jit(f);
  std::string msg = ThrowMessage<tj::TypeError>([&] { jitted(boolean(true), std::vector<Array>{f32(1)}); });
  EXPECT_HAS(msg, "[cond]");
  std::vector<Array> r = jitted(boolean(false), std::vector<Array>{f32(1), f32(2)});
  ASSERT_EQ(r.size(), 2u);
  ExpectFloats(r[1], {2});
  r = jitted(boolean(true), std::vector<Array>{f32(1), f32(2)});
  ExpectFloats(r[1], {1});
}

TEST(ControlFlowErrors, CondPredicateNotAScalarOrAFloat) {
  auto jitted = tj::jit(double_or_decrement);
  std::string msg = ThrowMessage<tj::ShapeError>([&] { jitted(tj::array({true, false}), f32(1)); });
  EXPECT_HAS(msg, "[cond]");
  EXPECT_HAS(msg, "bool[2]");
  EXPECT_HAS(ThrowMessage<tj::ShapeError>([&] { double_or_decrement(tj::array({true, false}), f32(1)); }), "[cond]");
  std::string m2 = ThrowMessage<tj::TypeError>([&] { jitted(f32(1), f32(1)); });
  EXPECT_HAS(m2, "[cond]");
  EXPECT_HAS(m2, "f32[]");
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] { double_or_decrement(f64(0), f32(1)); }), "f64[]");
  ExpectFloats(jitted(boolean(true), f32(3)), {6});
  ExpectFloats(jitted(boolean(false), f32(3)), {2});
}

TEST(ControlFlowErrors, WhileCondFnMustReturnABoolScalar) {
  // cond_fn returning the f32 carry itself.
  std::string msg = ThrowMessage<tj::TypeError>([&] {
    tj::while_loop([](const Array& v) { return v; }, [](const Array& v) { return v - 1.f; }, f32(3));
  });
  EXPECT_HAS(msg, "[while_loop]");
  EXPECT_HAS(msg, "f32[]");
  // cond_fn comparing with a vector limit gives bool[2].
  auto jitted = tj::jit([](const Array& x, const Array& limit) {
    return tj::while_loop([&](const Array& v) { return v < limit; }, [](const Array& v) { return v * 2.f; }, x);
  });
  std::string m2 = ThrowMessage<tj::TypeError>([&] { jitted(f32(1), f32s({4, 5})); });
  EXPECT_HAS(m2, "[while_loop]");
  EXPECT_HAS(m2, "bool[2]");
  ExpectFloats(jitted(f32(1), f32(5)), {8});
  // Several leaves.
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] {
               tj::while_loop([](const Array& v) { return std::pair<Array, Array>{v < 1.f, v < 2.f}; },
                              [](const Array& v) { return v; }, f32(3));
             }),
             "[while_loop]");
}

TEST(ControlFlowErrors, ScanXsShapes) {
  {  // scan xs with different leading sizes
    auto f = [](const std::pair<Array, Array>& xs) {
      return tj::scan([](const Array& c, const std::pair<Array, Array>& x) { return std::pair{c + x.first * x.second, c}; },
                      f32(0), xs);
    };
    auto jitted = tj::jit(f);
    std::string msg = ThrowMessage<tj::ShapeError>([&] { jitted(std::pair{f32s({1, 2, 3}), f32s({1, 2, 3, 4})}); });
    EXPECT_HAS(msg, "[scan]");
    EXPECT_TRUE(HasPath(msg, 0)) << msg;  // the pair's children
    EXPECT_TRUE(HasPath(msg, 1)) << msg;
    EXPECT_HAS(msg, "f32[3]");
    EXPECT_HAS(msg, "f32[4]");
    EXPECT_HAS(ThrowMessage<tj::ShapeError>([&] { f(std::pair{f32s({1, 2, 3}), f32s({1, 2, 3, 4})}); }), "f32[4]");
    ExpectFloats(jitted(std::pair{f32s({1, 2, 3}), f32s({4, 5, 6})}).first, {32});
    // ScanOptions::length disagreeing with the xs.
    EXPECT_HAS(ThrowMessage<tj::ShapeError>([&] {
                 tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c}; }, f32(0), f32s({1, 2}),
                          tj::ScanOptions{.length = 3});
               }),
               "[scan]");
  }
  {  // scan scalar xs leaf is shape error
    auto jitted = tj::jit(cumsum);
    std::string msg = ThrowMessage<tj::ShapeError>([&] { jitted(f32(0), f32(5)); });
    EXPECT_HAS(msg, "[scan]");
    EXPECT_HAS(msg, "f32[]");
    EXPECT_HAS(ThrowMessage<tj::ShapeError>([&] { cumsum(f32(0), f32(5)); }), "scalar");
    ExpectFloats(jitted(f32(0), f32s({5})).first, {5});
  }
}

TEST(ControlFlowErrors, ScanLengthAndOptions) {
  {  // scan negative length is shape error
    // The length comes from a static shape: x of size n gives length n - 3.
    auto f = [](const Array& x) {
      return tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c + 1.f, c}; }, tj::sum(x),
                      std::tuple<>{}, tj::ScanOptions{.length = x.shape()[0] - 3})
          .first;
    };
    auto jitted = tj::jit(f);
    std::string msg = ThrowMessage<tj::ShapeError>([&] { jitted(f32s({1})); });
    EXPECT_HAS(msg, "[scan]");
    EXPECT_HAS(msg, "-2");
    EXPECT_HAS(ThrowMessage<tj::ShapeError>([&] { f(f32s({1})); }), "[scan]");
    ExpectFloats(jitted(f32s({1, 2, 3, 4, 5})), {15 + 2});
    // No xs and no length: the step count is unknown.
    EXPECT_HAS(ThrowMessage<tj::Error>([&] {
                 tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c, c}; }, f32(0), std::tuple<>{});
               }),
               "[scan]");
  }
  {  // other misuses
    // A float fori_loop bound.
    EXPECT_HAS(ThrowMessage<tj::TypeError>([&] {
                 tj::fori_loop(f32(0), i32(3), [](const Array&, const Array& c) { return c; }, f32(0));
               }),
               "[fori_loop]");
    // unroll below 1.
    EXPECT_HAS(ThrowMessage<tj::Error>([&] {
                 tj::scan([](const Array& c, const Array& x) { return std::pair{c + x, c}; }, f32(0), f32s({1}),
                          tj::ScanOptions{.unroll = 0});
               }),
               "[scan]");
  }
}

TEST(ControlFlowErrors, IntCarryBecomingFloatIsTypeError) {
  // A strong i32 init, the body multiplies by 0.5: the carry would become f32.
  auto f = tj::jit([](const Array& init, const Array& xs) {
    return tj::scan([](const Array& c, const Array& x) { return std::pair{c * 0.5f + x, x}; }, init, xs).first;
  });
  std::string msg = ThrowMessage<tj::TypeError>([&] { f(i32(4), f32s({1, 2})); });
  EXPECT_HAS(msg, "[scan]");
  EXPECT_HAS(msg, "i32[]");
  EXPECT_HAS(msg, "f32[]");
  ExpectFloats(f(f32(4), f32s({1, 2})), {(4 * 0.5f + 1) * 0.5f + 2});
  // A weak float init cannot become an i32: 0.f with an integer body.
  EXPECT_HAS(ThrowMessage<tj::TypeError>([&] {
               tj::scan([](const Array&, const Array& x) { return std::pair{x * 2, x}; }, 0.f, tj::arange(3));
             }),
             "[scan]");
}

TEST(ControlFlowErrors, TracingErrorsAndLeakedTracers) {
  {  // errors while tracing a body leave no trace open
    // item() of a carry inside a body: the body is traced over abstract values, even eagerly.
    auto bad_scan = [] {
      tj::scan([](const Array& c, const Array& x) { return std::pair{c + x * c.item<float>(), c}; }, f32(1), f32s({1}));
    };
    EXPECT_HAS(ThrowMessage<tj::ConcretizationError>(bad_scan), "item");
    Array after = f32(1) + 1.f;
    EXPECT_FALSE(after.is_tracer());
    ExpectFloats(after, {2});
    EXPECT_THROW(tj::cond(boolean(true), [](const Array& a) { return a * static_cast<float>(a.item<float>()); },
                          [](const Array& a) { return a; }, f32(2)),
                 tj::ConcretizationError);
    EXPECT_THROW(tj::while_loop([](const Array& c) { return boolean(static_cast<bool>(c < 3.f)); },
                                [](const Array& c) { return c + 1.f; }, f32(0)),
                 tj::ConcretizationError);
    EXPECT_FALSE((f32(1) * 3.f).is_tracer());
    ExpectFloats(cumsum(f32(0), f32s({1, 2})).second, {1, 3});
    // Inside jit: the trace is abandoned, the function works for a correct call.
    auto j = tj::jit([](const Array& init, const Array& xs) {
      return tj::scan([](const Array& c, const Array& x) {
        Array y = x.shape().empty() ? c : tj::sum(x) + c.item<float>();  // item only for vector rows
        return std::pair{c + tj::sum(x), y};
      }, init, xs);
    });
    EXPECT_THROW(j(f32(0), tj::ones({2, 2})), tj::ConcretizationError);
    ExpectFloats(j(f32(0), f32s({1, 2})).first, {3});
  }
  {  // leaked body tracer is tracer leak error
    Array leaked;
    tj::scan([&](const Array& c, const Array& x) {
      leaked = c;
      return std::pair{c + x, c};
    }, f32(0), f32s({1, 2}));
    EXPECT_HAS(ThrowMessage<tj::TracerLeakError>([&] { (leaked * 2.f).is_tracer(); }), "[");
    ExpectFloats(cumsum(f32(0), f32s({1, 2})).first, {3});
  }
}

// ---- debug::print ----

auto printing_cumsum = [](const Array& xs) {
  return tj::scan(
      [](const Array& c, const Array& x) {
        tj::debug::print("c {} x {}", c, x);
        return std::pair{c + x, c * x};
      },
      f32(0), xs);
};

TEST(ControlFlowDebugPrint, ScanPrintsOncePerIterationInOrder) {
  {  // scan prints once per iteration in order
    // Carries entering the steps over 1 2 3: 0, 1, 3.
    const std::string want = "c 0.0 x 1.0\nc 1.0 x 2.0\nc 3.0 x 3.0\n";
    Array xs = f32s({1, 2, 3});
    EXPECT_EQ(captured([&] { printing_cumsum(xs); }), want);
    auto jitted = tj::jit(printing_cumsum);
    std::string first;
    first = captured([&] { ExpectFloats(jitted(xs).first, {6}); });
    EXPECT_EQ(first, want);  // printed when the code runs, not also while tracing
    EXPECT_EQ(captured([&] { jitted(xs); }), want);
    EXPECT_EQ(captured([&] { jitted(f32s({5})); }), "c 0.0 x 5.0\n");
    // make_ir prints nothing and holds one print, inside the body.
    std::string ir;
    EXPECT_EQ(captured([&] { ir = tj::make_ir(printing_cumsum)(xs).str(); }), "");
    EXPECT_EQ(count(ir, "debug_print"), 1) << ir;
    EXPECT_GT(ir.find("debug_print"), ir.find("body={")) << ir;
  }
  {  // print in a loop whose results are unused
    // The loop's results are dropped; its prints are side effects and still run, once per step.
    auto f = tj::jit([](const Array& x) {
      tj::scan(
          [](const Array& c, const Array& xi) {
            tj::debug::print("x {}", xi);
            return std::pair{c + xi, c};
          },
          f32(0), x);
      return x + 1.f;
    });
    std::string out = captured([&] { ExpectFloats(f(f32s({1, 2})), {2, 3}); });
    EXPECT_EQ(out, "x 1.0\nx 2.0\n");
  }
}

TEST(ControlFlowDebugPrint, GradPrintsThePrimalOncePerIteration) {
  const std::string want = "c 0.0 x 1.0\nc 1.0 x 2.0\nc 3.0 x 3.0\n";
  Array xs = f32s({1, 2, 3});
  // loss = sum(ys) = 0*1 + 1*2 + 3*3 with c the running sum: d/dx0 = 0 + 2 + 3 = 5 (x0 in c1 and c2),
  // d/dx1 = 1 + 3 = 4, d/dx2 = c2 = 3.
  auto loss = [](const Array& x) { return tj::sum(printing_cumsum(x).second); };
  Array g;
  EXPECT_EQ(captured([&] { g = tj::grad(loss)(xs); }), want);
  ExpectFloats(g, {5, 4, 3});
  auto jg = tj::jit(tj::grad(loss));
  EXPECT_EQ(captured([&] { g = jg(xs); }), want);
  ExpectFloats(g, {5, 4, 3});
  EXPECT_EQ(captured([&] { jg(xs); }), want);
}

TEST(ControlFlowDebugPrint, WhileAndCondPrintOnlyWhatRuns) {
  auto f = tj::jit([](const Array& n) {
    return tj::while_loop([&](const Array& i) { return i < n; },
                          [](const Array& i) {
                            return tj::cond(i & 1,
                                            [](const Array& k) {
                                              tj::debug::print("odd {}", k);
                                              return k + 1;
                                            },
                                            [](const Array& k) {
                                              tj::debug::print("even {}", k);
                                              return k + 1;
                                            },
                                            i);
                          },
                          i32(0));
  });
  EXPECT_EQ(captured([&] { EXPECT_EQ(f(i32(3)).item<int32_t>(), 3); }), "even 0\nodd 1\neven 2\n");
  EXPECT_EQ(captured([&] { f(i32(0)); }), "");
  // Under grad, a bounded while prints each primal step once (not again going back):
  // x <- 2x from 1 while x < 5: prints 1 2 4; derivative 2^3 = 8.
  auto g = [](const Array& x) {
    return tj::while_loop([](const Array& v) { return v < 5.f; },
                          [](const Array& v) {
                            tj::debug::print("v {}", v);
                            return v * 2.f;
                          },
                          x, tj::WhileOptions{.max_iterations = 4});
  };
  Array d;
  EXPECT_EQ(captured([&] { d = tj::grad(g)(f32(1)); }), "v 1.0\nv 2.0\nv 4.0\n");
  ExpectFloats(d, {8});
  auto jg = tj::jit(tj::grad(g));
  EXPECT_EQ(captured([&] { d = jg(f32(1)); }), "v 1.0\nv 2.0\nv 4.0\n");
  ExpectFloats(d, {8});
}

TEST(ControlFlowDebugPrint, WeakInitRetraceAndGradOfGradPrintOncePerIteration) {
  // A 0.f init makes the body be traced twice (the carry becomes strong f32); it still prints
  // once per step. c = x^3 by c <- c x over 3 steps from 1 (x = 2: 8); d2/dx2 = 6x = 12.
  auto cube = [](const Array& x) {
    Array init = tj::scan([](const Array& c, const std::tuple<>&) { return std::pair{c, c}; }, 1.f, std::tuple<>{},
                          tj::ScanOptions{.length = 0})
                     .first;  // a weak 1.f made strong by an f32 body of no steps
    return tj::scan(
               [&](const Array& c, const std::tuple<>&) {
                 tj::debug::print("c {}", c);
                 return std::pair{c * x, c};
               },
               init, std::tuple<>{}, tj::ScanOptions{.length = 3})
        .first;
  };
  auto weak = [](const Array& x) {
    return tj::scan(
               [&](const Array& c, const Array& xi) {
                 tj::debug::print("c {}", c);
                 return std::pair{c + xi * x, c};
               },
               0.f, f32s({1, 2}))
        .first;
  };
  EXPECT_EQ(captured([&] { ExpectFloats(weak(f32(3)), {9}); }), "c 0.0\nc 3.0\n");
  EXPECT_EQ(captured([&] { ExpectFloats(tj::jit(weak)(f32(3)), {9}); }), "c 0.0\nc 3.0\n");
  Array g2;
  EXPECT_EQ(captured([&] { g2 = tj::grad(tj::grad(cube))(f32(2)); }), "c 1.0\nc 2.0\nc 4.0\n");
  ExpectFloats(g2, {12});
  auto jg2 = tj::jit(tj::grad(tj::grad(cube)));
  EXPECT_EQ(captured([&] { g2 = jg2(f32(2)); }), "c 1.0\nc 2.0\nc 4.0\n");
  ExpectFloats(g2, {12});
}

// ---- a long loop ----

TEST(ControlFlowLong, JittedScanOfAMillionSteps) {
  // Three scalar carries over n = 10^6 steps (no xs, no ys):
  //   f32 c <- a c + b and f64 d <- a d + b, with a, b the f32 values of 0.999999f and 1e-6f:
  //     closed form c_n = b (1 - a^n) / (1 - a), about 0.6286 (a^n is about e^-1.0133).
  //     f64: each step rounds by at most 2^-53 relative, so d is within 1e-9 of it.
  //     f32: c stays below b / (1 - a) = 0.9869 < 1, so each step's two roundings add at most
  //     2 x 2^-25 = 2^-24; errors decay by a per step: |c - c_n| <= 2^-24 / (1 - a) = 0.059.
  //     (The observed drift is about 0.006: round-to-nearest of the ~10-ulp decrement is biased.)
  //   f32 k <- k + 1: integers below 2^24 are exact, so k = 10^6 exactly: every step ran once.
  constexpr int64_t n = 1'000'000;
  const float af = 0.999999f, bf = 1e-6f;
  using C = std::tuple<Array, Array, Array>;
  auto run = tj::jit([&](const C& init) {
    return tj::scan(
               [&](const C& c, const std::tuple<>&) {
                 return std::pair{C{std::get<0>(c) * af + bf, std::get<1>(c) * static_cast<double>(af) +
                                                                  static_cast<double>(bf),
                                    std::get<2>(c) + 1.f},
                                  std::tuple<>{}};
               },
               init, std::tuple<>{}, tj::ScanOptions{.length = n})
        .first;
  });
  const double a = af, b = bf;
  const double closed = b * (1 - std::pow(a, static_cast<double>(n))) / (1 - a);
  ASSERT_NEAR(closed, 0.6286, 1e-4);
  C r = run(C{f32(0), f64(0), f32(0)});
  EXPECT_NEAR(std::get<0>(r).item<float>(), closed, std::ldexp(1.0, -24) / (1 - a));
  EXPECT_NEAR(std::get<1>(r).item<double>(), closed, 1e-9);
  EXPECT_EQ(std::get<2>(r).item<float>(), 1e6f);
  // Again from another start: deterministic, and the compiled loop is reused.
  C r2 = run(C{f32(0), f64(0), f32(5)});
  EXPECT_EQ(std::get<0>(r2).item<float>(), std::get<0>(r).item<float>());
  EXPECT_EQ(std::get<2>(r2).item<float>(), 1e6f + 5);
  EXPECT_EQ(run.stats().traces, 1);
}

}  // namespace

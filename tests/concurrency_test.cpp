// Eight threads, each calling a jitted function of its own and one shared jitted function, give
// bit for bit what a single-threaded run gave beforehand. The threads start together, so the
// first calls race: eight compiles of different functions at once, and the shared function's
// first signature requested by all eight. The shared function is also called with a signature
// per thread and one shared by half the threads. Large kernels share the runtime's thread pool.
// (Jit.ConcurrentCallsAgree covers one function from eight threads, after its compile.)
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <latch>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;
using tj::DType;

namespace {

// Calls per thread after the racing first calls: about a second in all in a Release build.
constexpr int kCalls = 60;
constexpr int kThreads = 8;

template <class T>
bool bytes_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Same dtype, shape and bytes: NaN payloads and the sign of zero count.
bool same_bits(const Array& a, const Array& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  switch (a.dtype()) {
    case DType::f32:
      return bytes_equal(a.to_vector<float>(), b.to_vector<float>());
    case DType::f64:
      return bytes_equal(a.to_vector<double>(), b.to_vector<double>());
    case DType::i32:
      return bytes_equal(a.to_vector<int32_t>(), b.to_vector<int32_t>());
    case DType::u32:
      return bytes_equal(a.to_vector<uint32_t>(), b.to_vector<uint32_t>());
    case DType::bool_:
      return a.to_vector<bool>() == b.to_vector<bool>();
  }
  return false;
}

using Results = std::vector<Array>;

// Inputs shared by every workload (read-only Arrays may be used from any thread).
struct Inputs {
  Array big = tj::arange(1 << 20, DType::f32) / float(1 << 20);  // 1M: the pool splits it
  Array rows = tj::reshape(tj::arange(512 * 1024, DType::f32), {512, 1024}) / 1024.f;
  Array x128 = tj::reshape(tj::arange(128, DType::f32), {128, 1}) / 64.f - 1.f;
  Array y128 = x128 * 2.f - 1.f;
  Array small = tj::arange(1000, DType::f32) / 250.f - 2.f;
  Array m64 = tj::reshape(tj::arange(64 * 64, DType::f32), {64, 64}) / 4096.f;
  Array ints = tj::arange(4096, DType::i32);
  Array f64 = tj::arange(300, DType::f64) / 100.0;
  Array common = tj::arange(64, DType::f32) / 8.f;  // the shared function's common signature
};

// A fresh set of jitted functions (so the reference run and the concurrent run each compile
// their own), one per thread, and the shared one.
struct Functions {
  explicit Functions(const Inputs& in) {
    auto add = [&](auto f) { own.push_back(f); };
    // 0: a large elementwise kernel, cut into chunks on the runtime's pool.
    add([f = tj::jit([](const Array& x) { return x * 2.f + 1.f; }), &in] {
      return Results{f(in.big)};
    });
    // 1: grad inside jit: the seed's SGD step.
    add([f = tj::jit([](const seed::Params& p, const Array& x, const Array& y) {
           seed::Params g = tj::grad(seed::loss)(p, x, y);
           return tj::tree_map([](const Array& v, const Array& d) { return v - d * 0.1f; }, p, g);
         }),
         &in] {
      return tj::tree_leaves(f(seed::Params{tj::ones({}), tj::zeros({})}, in.x128, in.y128));
    });
    // 2: a transcendental chain.
    add([f = tj::jit([](const Array& x) { return tj::tanh(x) * 2.f + tj::exp(-x * x); }), &in] {
      return Results{f(in.small)};
    });
    // 3: row sums of a 512x1024 matrix (splittable by rows) and a full max.
    add([f = tj::jit([](const Array& a) { return std::make_tuple(tj::sum(a, {1}), tj::max(a)); }),
         &in] { return tj::tree_leaves(f(in.rows)); });
    // 4: matmul.
    add([f = tj::jit([](const Array& a) {
           return tj::matmul(a, tj::transpose(a, {1, 0}));
         }),
         &in] { return Results{f(in.m64)}; });
    // 5: integer arithmetic and bit operations.
    add([f = tj::jit([](const Array& i) { return ((i * 7 + 3) ^ (i >> 2)) & 1023; }), &in] {
      return Results{f(in.ints)};
    });
    // 6: value_and_grad inside jit, in f64.
    add([f = tj::jit([](const Array& x) {
           return tj::value_and_grad([](const Array& v) { return tj::sum(tj::sin(v) * v); })(x);
         }),
         &in] { return tj::tree_leaves(f(in.f64)); });
    // 7: comparisons, where and a map output.
    add([f = tj::jit([](const Array& x) {
           return std::map<std::string, Array>{
               {"clipped", tj::where(x > 0.f, x, 0.f * x)},
               {"positive", tj::sum(tj::astype(x > 0.f, DType::i32))}};
         }),
         &in] { return tj::tree_leaves(f(in.small)); });
  }

  std::vector<std::function<Results()>> own;
  tj::Jitted<Array (*)(const Array&)> shared = tj::jit(&shared_fn);

  static Array shared_fn(const Array& x) { return tj::sum(x * x) + tj::max(x); }
};

// The shared function's arguments on thread t: the common signature first (all threads race its
// compile), then f32[t+1] (a signature of this thread's own), and on even threads f64[64].
std::vector<Array> shared_args(const Inputs& in, int t) {
  std::vector<Array> args{in.common, tj::arange(t + 1, DType::f32) / 4.f};
  if (t % 2 == 0) args.push_back(tj::astype(in.common, DType::f64));
  return args;
}

TEST(Concurrency, EightThreadsMatchASingleThreadedRunBitForBit) {
  const Inputs in;
  // The reference: every call once, on this thread, with functions of its own.
  std::vector<Results> expected_own(kThreads);
  std::vector<Results> expected_shared(kThreads);
  {
    Functions ref(in);
    for (int t = 0; t < kThreads; ++t) {
      expected_own[static_cast<size_t>(t)] = ref.own[static_cast<size_t>(t)]();
      for (const Array& a : shared_args(in, t))
        expected_shared[static_cast<size_t>(t)].push_back(ref.shared(a));
    }
  }
  // Hand-derived spot checks of the reference. common = k/8 for k < 64: sum of k^2/64 is
  // 85344/64 = 1333.5 (every partial sum exact in f32) and the max 7.875.
  EXPECT_EQ(expected_shared[0][0].item<float>(), 1341.375f);
  // f32[1] = [0]: 0; f32[2] = [0, 0.25]: 0.0625 + 0.25.
  EXPECT_EQ(expected_shared[0][1].item<float>(), 0.f);
  EXPECT_EQ(expected_shared[1][1].item<float>(), 0.3125f);
  EXPECT_EQ(expected_shared[0][2].item<double>(), 1341.375);
  // 2*(k/2^20) + 1 is exact for every k.
  EXPECT_EQ(expected_own[0][0].to_vector<float>()[12345], 2.f * 12345.f / float(1 << 20) + 1.f);
  // small[i] = i/250 - 2 > 0 for i > 500: 499 positives.
  EXPECT_EQ(expected_own[7][1].item<int32_t>(), 499);
  // (i*7+3 ^ i>>2) & 1023 at i = 100: 703 ^ 25 = 678.
  EXPECT_EQ(expected_own[5][0].to_vector<int32_t>()[100], 678);

  // The concurrent run, on fresh functions: first calls race, then kCalls more each.
  Functions fns(in);
  std::latch start(kThreads);
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t, shared = fns.shared] {  // a copy of the Jitted shares its cache
      const size_t i = static_cast<size_t>(t);
      const std::vector<Array> args = shared_args(in, t);
      auto check = [&](int call) {
        std::vector<Array> shared_out;
        for (const Array& a : args) shared_out.push_back(shared(a));
        Results own = fns.own[i]();
        for (size_t k = 0; k < shared_out.size(); ++k)
          if (!same_bits(shared_out[k], expected_shared[i][k]))
            return failures[i] = "shared function, argument " + std::to_string(k) + ", call " +
                                 std::to_string(call) + ": " + shared_out[k].str();
        if (own.size() != expected_own[i].size()) return failures[i] = "own function: output count";
        for (size_t k = 0; k < own.size(); ++k)
          if (!same_bits(own[k], expected_own[i][k]))
            return failures[i] = "own function, output " + std::to_string(k) + ", call " +
                                 std::to_string(call);
        return std::string();
      };
      try {
        start.arrive_and_wait();
        for (int call = 0; call <= kCalls && failures[i].empty(); ++call) check(call);
      } catch (const std::exception& e) {
        failures[i] = std::string("threw: ") + e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(failures[static_cast<size_t>(t)], "") << "thread " << t;

  // Each signature was traced and compiled once, however many threads asked for it at once:
  // the common one, one per thread, and f64[64].
  tj::JitStats s = fns.shared.stats();
  EXPECT_EQ(s.compiles + s.shared_hits, kThreads + 2);  // the reference run's code is shared
  EXPECT_EQ(s.traces, kThreads + 2);
}

// Many threads compile different signatures of one function while others call cached ones: the
// cache's lookups run alongside inserts.
TEST(Concurrency, LookupsWhileOtherThreadsCompileNewSignatures) {
  auto f = tj::jit([](const Array& x) { return tj::sum(x) * 2.f; });
  const Array cached = tj::ones({7});
  ASSERT_EQ(f(cached).item<float>(), 14.f);
  std::latch start(kThreads);
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int n = 1; n <= 6; ++n) {
        // Thread t compiles shapes [100*t + n]; sum of ones times 2 is twice the length.
        const int64_t len = 100 * t + n + 10;
        if (f(tj::ones({len})).item<float>() != 2.f * static_cast<float>(len))
          ++wrong[static_cast<size_t>(t)];
        if (f(cached).item<float>() != 14.f) ++wrong[static_cast<size_t>(t)];
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[static_cast<size_t>(t)], 0) << "thread " << t;
  EXPECT_EQ(f.stats().compiles, 1 + kThreads * 6);
}

// A tracer handed to another thread while its trace runs, or just after it ends, is a leak on
// that thread, whichever it meets; the tracing thread's call is unaffected.
TEST(Concurrency, TracerUsedOnAnotherThreadWhileItsTraceEndsIsALeak) {
  Array leaked;
  std::latch stored(1);
  Array traced_result;
  std::thread tracing([&] {
    auto f = tj::jit([&](const Array& x) {
      leaked = x;
      stored.count_down();  // the trace goes on, and ends, while the main thread uses `leaked`
      return x * 3.f;
    });
    traced_result = f(Array(2.f));
  });
  stored.wait();
  EXPECT_THROW(tj::sin(leaked), tj::TracerLeakError);
  tracing.join();
  EXPECT_EQ(traced_result.item<float>(), 6.f);
}

// Array handles count their references intrusively, and the last release skips the locked
// decrement: eight threads copying, moving and dropping handles to the same arrays (inline
// small results and buffer-backed big ones) leave each exactly once freed and intact.
TEST(Concurrency, HandlesSharedAcrossThreadsAreFreedOnceAndIntact) {
  auto f = tj::jit([](const Array& x) { return x * 2.f + 1.f; });
  const Array small = f(tj::array({1.f, 2.f, 3.f}));
  const Array big = f(tj::full({4096}, 0.5f, DType::f32));  // 16 KiB: a buffer of its own
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<float> sums(kThreads, 0.f);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < 2000; ++i) {
        Array a = small, b = big;
        Array c = std::move(a);
        std::vector<Array> held(4, c);
        held.push_back(b);
        b = c;
        c = held.back();
        held.clear();
        if (i % 500 == 0) sums[t] += b.to_vector<float>()[2] + c.to_vector<float>()[4095];
      }
    });
  for (std::thread& th : threads) th.join();
  for (float s : sums) EXPECT_EQ(s, 4 * (7.f + 2.f));  // 3*2+1 and 0.5*2+1, four times
  EXPECT_EQ(small.to_vector<float>(), (std::vector<float>{3, 5, 7}));
  EXPECT_EQ(big.to_vector<float>()[0], 2.f);
}

}  // namespace

// tracejit-bench: tracejit against hand-written C++ in the same process.
//
// Every case is registered as `<case>/<variant>`: `cpp` is the hand-written reference (compiled
// with this build's flags, no -march, so the reference is SSE2 code while the JIT targets the
// host CPU), `tracejit` the jitted (or eager) equivalent; some cases add a second reference
// (`cpp_alloc`: allocates its output per call as tracejit does; `cpp_16acc`: a reduction with
// 16 independent accumulators, which the compiler can vectorize), and `train` a second tracejit
// variant (`tracejit_calls`: the 1000 steps as 1000 jitted calls; `tracejit` is one jitted
// scan). Loop cases also give a `time/step` or `time/iter` counter. Before timing, every
// tracejit variant is run once and compared with its reference, so a broken case is visible.
// After the run a summary prints each ratio tracejit / reference (> 1: tracejit slower).
// Times are wall-clock (UseRealTime): tracejit may run a kernel on several threads.
// `cpu/wall` is process CPU seconds per wall second over the timed loop (threads busy).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace bench {

struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

namespace {

constexpr float kLearningRate = 0.005f;
constexpr int64_t k1M = int64_t{1} << 20;
constexpr int64_t k4M = int64_t{1} << 22;  // the SGD step past the caches: bandwidth-bound
constexpr int64_t k16M = int64_t{1} << 24;
constexpr int64_t kSide = 4096;  // kSide * kSide == k16M
constexpr int kTrainSteps = 1000;     // the seed's training: 1000 SGD steps on 128 points
constexpr int64_t kTrainPoints = 128;
constexpr int32_t kCount = 1000000;   // while_loop trip count (10^6, not k1M = 2^20)
constexpr auto kMs = benchmark::kMillisecond;

// ---------------------------------------------------------------------------------------------
// Measurement helpers.

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Process CPU time per wall second across the timed loop: about 1 for one busy thread, about 2
// when tracejit's pool runs a kernel on both cores.
class CpuMeter {
 public:
  CpuMeter() : cpu0_(process_cpu_seconds()), wall0_(std::chrono::steady_clock::now()) {}
  void report(benchmark::State& state) const {
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0_).count();
    if (wall > 0) state.counters["cpu/wall"] = (process_cpu_seconds() - cpu0_) / wall;
  }

 private:
  double cpu0_;
  std::chrono::steady_clock::time_point wall0_;
};

void set_bytes(benchmark::State& state, int64_t bytes_per_iter) {
  state.SetBytesProcessed(state.iterations() * bytes_per_iter);
}

// An output buffer allocated per call, as tracejit's runtime allocates each result
// (runtime::Buffer: std::aligned_alloc(64, ...), uninitialized).
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using OutBuffer = std::unique_ptr<float, AlignedFree>;
OutBuffer alloc_out(int64_t n) {
  size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
  return OutBuffer(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

// ---------------------------------------------------------------------------------------------
// Inputs: host vectors (for the references) and tracejit arrays holding the same values.

std::vector<float> normal_floats(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

std::vector<float> uniform_floats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// The data for `key`, made by make() on first use and kept for the process (each call site
// has its own cache: Make is a distinct lambda type).
template <class Data, class Key, class Make>
const Data& cached(const Key& key, Make make) {
  static std::map<Key, Data> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}

// The seed's data: y = 2x - 1 + noise/2.
struct RegressionData {
  std::vector<float> x, y;
  Array xa, ya;
};
const RegressionData& regression_data(int64_t n) {
  return cached<RegressionData>(n, [n] {
    RegressionData d;
    d.x = normal_floats(n, 1);
    std::vector<float> noise = normal_floats(n, 2);
    d.y.resize(d.x.size());
    for (size_t i = 0; i < d.x.size(); ++i) d.y[i] = d.x[i] * 2 - 1 + noise[i] * 0.5f;
    d.xa = tj::array(d.x, {n, 1});
    d.ya = tj::array(d.y, {n, 1});
    return d;
  });
}

// Elementwise and reduction input in [-2, 2); the 16M one doubles as the [4096, 4096] matrix.
struct VectorData {
  std::vector<float> host;
  Array flat;    // f32[n]
  Array square;  // f32[4096, 4096] when n == 16M
};
const VectorData& vector_data(int64_t n, uint32_t seed = 3) {
  return cached<VectorData>(std::pair{n, seed}, [n, seed] {
    VectorData d;
    d.host = uniform_floats(n, seed, -2.f, 2.f);
    d.flat = tj::array(d.host, {n});
    if (n == kSide * kSide) d.square = tj::reshape(d.flat, {kSide, kSide});
    return d;
  });
}

struct MatmulData {
  std::vector<float> a, b;
  Array aa, ba;
};
const MatmulData& matmul_data(int64_t n) {
  return cached<MatmulData>(n, [n] {
    MatmulData d;
    d.a = uniform_floats(n * n, 4, -1.f, 1.f);
    d.b = uniform_floats(n * n, 5, -1.f, 1.f);
    d.aa = tj::array(d.a, {n, n});
    d.ba = tj::array(d.b, {n, n});
    return d;
  });
}

// A batch of kBatch square matrices of side kBatchSide, as one [B, n, n] array and as B
// separate [n, n] arrays (for the unbatched kernel called B times).
constexpr int64_t kBatch = 64, kBatchSide = 256;
struct BatchedMatmulData {
  std::vector<float> a, b;
  Array aa, ba;
  std::vector<Array> a_each, b_each;
};
const BatchedMatmulData& batched_matmul_data() {
  return cached<BatchedMatmulData>(0, [] {
    BatchedMatmulData d;
    const int64_t n = kBatchSide, per = n * n;
    d.a = uniform_floats(kBatch * per, 6, -1.f, 1.f);
    d.b = uniform_floats(kBatch * per, 7, -1.f, 1.f);
    d.aa = tj::array(d.a, {kBatch, n, n});
    d.ba = tj::array(d.b, {kBatch, n, n});
    for (int64_t i = 0; i < kBatch; ++i) {
      d.a_each.push_back(tj::array(std::vector<float>(d.a.begin() + i * per, d.a.begin() + (i + 1) * per), {n, n}));
      d.b_each.push_back(tj::array(std::vector<float>(d.b.begin() + i * per, d.b.begin() + (i + 1) * per), {n, n}));
    }
    return d;
  });
}

// ---------------------------------------------------------------------------------------------
// Hand-written C++ references. noinline keeps each a real call, so the benchmark loop cannot
// hoist the work out of its iterations.

struct HostParams {
  float weight, bias;
};

// One SGD step on mean((w*x + b - y)^2): dL/dw = 2/n sum(r*x), dL/db = 2/n sum(r).
[[gnu::noinline]] HostParams update_ref(HostParams p, const float* x, const float* y, int64_t n) {
  float sum_rx = 0, sum_r = 0;
  for (int64_t i = 0; i < n; ++i) {
    float r = p.weight * x[i] + p.bias - y[i];
    sum_rx += r * x[i];
    sum_r += r;
  }
  float scale = 2.f / static_cast<float>(n);
  return {p.weight - kLearningRate * scale * sum_rx, p.bias - kLearningRate * scale * sum_r};
}

// The seed's whole training: `steps` SGD steps, each the update_ref above (forward, gradient by
// hand, update), in a plain C++ loop.
[[gnu::noinline]] HostParams train_ref(HostParams p, const float* x, const float* y, int64_t n,
                                       int steps) {
  for (int i = 0; i < steps; ++i) p = update_ref(p, x, y, n);
  return p;
}

// Counts from 0 to `bound`. DoNotOptimize keeps `i` live in every iteration, so the compiler
// can neither delete the loop nor replace it by its closed form.
[[gnu::noinline]] int32_t count_ref(int32_t bound) {
  int32_t i = 0;
  while (i < bound) {
    ++i;
    benchmark::DoNotOptimize(i);
  }
  return i;
}

[[gnu::noinline]] float add1_ref(float x) { return x + 1; }

[[gnu::noinline]] void add_ref(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

[[gnu::noinline]] void arith_ref(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * 2.f + 1.f;
}

// libm's tanhf and expf: scalar calls, not vectorized at this build's flags.
[[gnu::noinline]] void transc_ref(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]) * 2.f + std::exp(-x[i] * x[i]);
}

// The obvious loop: one accumulator, a serial dependence chain (IEEE order, not vectorized).
[[gnu::noinline]] float sum_ref(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

// 16 independent accumulators: the compiler keeps them in vector registers.
[[gnu::noinline]] float sum16_ref(const float* x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j];
  float s = 0;
  for (; i < n; ++i) s += x[i];
  for (float a : acc) s += a;
  return s;
}

[[gnu::noinline]] float max_ref(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

[[gnu::noinline]] float max16_ref(const float* x, int64_t n) {
  float acc[16];
  std::fill(acc, acc + 16, -INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = -INFINITY;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (float a : acc) m = a > m ? a : m;
  return m;
}

// out[j] = sum_i a[i, j]: rows streamed in order, the inner loop vectorizes over j.
[[gnu::noinline]] void sum_axis0_ref(const float* a, float* out, int64_t rows, int64_t cols) {
  std::fill(out, out + cols, 0.f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[j] += a[i * cols + j];
}

// out[i] = sum_j a[i, j], each row with 16 accumulators.
[[gnu::noinline]] void sum_axis1_ref(const float* a, float* out, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i) out[i] = sum16_ref(a + i * cols, cols);
}

// Naive i-k-j: the inner loop streams a row of b and of c (vectorizes over j).
[[gnu::noinline]] void matmul_ref(const float* a, const float* b, float* c, int64_t n) {
  std::fill(c, c + n * n, 0.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k) {
      float aik = a[i * n + k];
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += aik * b[k * n + j];
    }
}

// B products of n x n matrices, each i-k-j with k in blocks of 64 rows of b (reused from cache
// by every row of a while the block is hot).
[[gnu::noinline]] void batched_matmul_ref(const float* a, const float* b, float* c, int64_t batch,
                                          int64_t n) {
  constexpr int64_t kBlock = 64;
  std::fill(c, c + batch * n * n, 0.f);
  for (int64_t m = 0; m < batch; ++m) {
    const float *am = a + m * n * n, *bm = b + m * n * n;
    float* cm = c + m * n * n;
    for (int64_t k0 = 0; k0 < n; k0 += kBlock)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = k0; k < std::min(n, k0 + kBlock); ++k) {
          const float aik = am[i * n + k];
          for (int64_t j = 0; j < n; ++j) cm[i * n + j] += aik * bm[k * n + j];
        }
  }
}

// Per-example gradients of the seed's loss (w x_i + b - y_i)^2: 2 r_i x_i and 2 r_i.
[[gnu::noinline]] void per_example_grads_ref(HostParams p, const float* x, const float* y,
                                             float* gw, float* gb, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = p.weight * x[i] + p.bias - y[i];
    gw[i] = 2 * r * x[i];
    gb[i] = 2 * r;
  }
}

// ---------------------------------------------------------------------------------------------
// The jitted functions.

Array loss(const Params& p, const Array& x, const Array& y) {
  return tj::mean(tj::square(p.weight * x + p.bias - y));
}

// One SGD step: the body of `update` and of the scan in `train_scan`.
Params sgd_step(const Params& params, const Array& x, const Array& y) {
  Params g = tj::grad(loss)(params, x, y);
  return tj::tree_map([](const Array& p, const Array& d) { return p - d * kLearningRate; },
                      params, g);
}

auto make_update(tj::JitOptions options = {}) {
  options.name = "update";
  return tj::jit(sgd_step, options);
}

auto make_add1(tj::JitOptions options = {}) {
  options.name = "add1";
  return tj::jit([](const Array& x) { return x + 1; }, options);
}

auto& jit_update() {
  static auto f = make_update();
  return f;
}
auto& jit_add1() {
  static auto f = make_add1();
  return f;
}
// The seed's 1000 steps in ONE jitted call: a scan over no xs carrying Params; x and y are
// arguments, captured by the body.
auto& jit_train_scan() {
  static auto f = tj::jit(
      [](const Params& params, const Array& x, const Array& y) {
        auto body = [&](const Params& p, const std::tuple<>&) {
          return std::pair{sgd_step(p, x, y), std::tuple<>{}};
        };
        return tj::scan(body, params, std::tuple<>{}, tj::ScanOptions{.length = kTrainSteps})
            .first;
      },
      {.name = "train_scan"});
  return f;
}
// Counts an i32 from 0 to `bound`, an argument (not a constant the passes could fold).
auto& jit_count() {
  static auto f = tj::jit(
      [](const Array& bound) {
        return tj::while_loop([&](const Array& i) { return i < bound; },
                              [](const Array& i) { return i + 1; },
                              tj::full({}, 0, tj::DType::i32));
      },
      {.name = "count"});
  return f;
}
auto& jit_arith() {
  static auto f = tj::jit([](const Array& x) { return x * 2 + 1; }, {.name = "arith"});
  return f;
}
auto& jit_transc() {
  static auto f =
      tj::jit([](const Array& x) { return tj::tanh(x) * 2 + tj::exp(-x * x); }, {.name = "transc"});
  return f;
}
auto& jit_sum() {
  static auto f = tj::jit([](const Array& x) { return tj::sum(x); }, {.name = "sum"});
  return f;
}
auto& jit_max() {
  static auto f = tj::jit([](const Array& x) { return tj::max(x); }, {.name = "max"});
  return f;
}
auto& jit_sum_axis0() {
  static auto f = tj::jit([](const Array& a) { return tj::sum(a, {0}); }, {.name = "sum_axis0"});
  return f;
}
auto& jit_sum_axis1() {
  static auto f = tj::jit([](const Array& a) { return tj::sum(a, {1}); }, {.name = "sum_axis1"});
  return f;
}
auto& jit_matmul() {
  static auto f =
      tj::jit([](const Array& a, const Array& b) { return tj::matmul(a, b); }, {.name = "matmul"});
  return f;
}

// Sets an environment variable for the life of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Per-example gradients: grad of one example's loss, vmapped over the examples (the
// parameters shared), in one jitted call.
Array example_loss(const Params& p, const Array& x, const Array& y) {
  return tj::square(p.weight * x + p.bias - y);
}
auto& jit_per_example_grads() {
  static auto f = tj::jit(tj::vmap(tj::grad(example_loss), {.in_axes = {std::nullopt, 0, 0}}),
                          {.name = "per_example_grads"});
  return f;
}

Array f32_scalar(float v) { return tj::array(std::vector<float>{v}, tj::Shape{}); }
Array i32_scalar(int32_t v) { return tj::array(std::vector<int32_t>{v}, tj::Shape{}); }

Params init_params() { return {f32_scalar(0.5f), f32_scalar(0.5f)}; }

std::string size_name(int64_t n) {
  if (n >= k1M && n % k1M == 0) return std::to_string(n / k1M) + "M";
  return std::to_string(n);
}

// ---------------------------------------------------------------------------------------------
// Startup checks: each tracejit variant once against its reference.

int g_check_failures = 0;

void check(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
           double rtol, double atol) {
  double worst = 0;  // largest error relative to the tolerance
  size_t at = 0;
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < got.size(); ++i) {
    double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    double tol = atol + rtol * std::fabs(static_cast<double>(want[i]));
    if (!(err <= tol)) ok = false;  // NaN fails too
    if (tol > 0 && err / tol > worst) worst = err / tol, at = i;
  }
  if (ok) {
    std::printf("check %-28s ok   (%zu values, worst error %.2f of tolerance)\n", what.c_str(),
                got.size(), worst);
    return;
  }
  ++g_check_failures;
  if (got.size() != want.size())
    std::printf("check %-28s FAILED: %zu values, expected %zu\n", what.c_str(), got.size(),
                want.size());
  else
    std::printf("check %-28s FAILED at %zu: tracejit %.8g, reference %.8g\n", what.c_str(), at,
                static_cast<double>(got[at]), static_cast<double>(want[at]));
}

void run_checks() {
  for (int64_t n : {int64_t{128}, k1M, k4M}) {
    const RegressionData& d = regression_data(n);
    Params p = init_params();
    HostParams h{0.5f, 0.5f};
    for (int i = 0; i < 200; ++i) {
      p = jit_update()(p, d.xa, d.ya);
      h = update_ref(h, d.x.data(), d.y.data(), n);
    }
    check("update/" + size_name(n) + " x200", {p.weight.item<float>(), p.bias.item<float>()},
          {h.weight, h.bias}, 1e-3, 1e-4);
  }
  {
    const RegressionData& d = regression_data(kTrainPoints);
    HostParams h = train_ref({0.5f, 0.5f}, d.x.data(), d.y.data(), kTrainPoints, kTrainSteps);
    Params s = jit_train_scan()(init_params(), d.xa, d.ya);
    check("train/1000x128 scan", {s.weight.item<float>(), s.bias.item<float>()},
          {h.weight, h.bias}, 1e-3, 1e-4);
    Params p = init_params();
    for (int i = 0; i < kTrainSteps; ++i) p = jit_update()(p, d.xa, d.ya);
    // The scan body is the same step as `update`: the results agree bit for bit.
    check("train/1000x128 calls = scan", {p.weight.item<float>(), p.bias.item<float>()},
          {s.weight.item<float>(), s.bias.item<float>()}, 0, 0);
  }
  check("while/count_1e6", {static_cast<float>(jit_count()(i32_scalar(kCount)).item<int32_t>())},
        {static_cast<float>(count_ref(kCount))}, 0, 0);
  check("call/add1", {jit_add1()(f32_scalar(41.f)).item<float>()}, {add1_ref(41.f)}, 0, 0);
  {
    const VectorData &a = vector_data(128), &b = vector_data(128, 6);
    std::vector<float> want(128);
    add_ref(a.host.data(), b.host.data(), want.data(), 128);
    check("eager/add/128", (a.flat + b.flat).to_vector<float>(), want, 0, 0);
  }
  for (int64_t n : {k1M, k16M}) {
    const VectorData& d = vector_data(n);
    std::vector<float> want(static_cast<size_t>(n));
    arith_ref(d.host.data(), want.data(), n);
    check("arith/" + size_name(n), jit_arith()(d.flat).to_vector<float>(), want, 0, 0);
    transc_ref(d.host.data(), want.data(), n);
    check("transc/" + size_name(n), jit_transc()(d.flat).to_vector<float>(), want, 1e-5, 1e-6);
  }
  {
    const VectorData& d = vector_data(k16M);
    // The sum's tolerance: a float sum of 16M values of |x| < 2 in any order.
    double exact = 0;
    for (float v : d.host) exact += v;
    // Any float summation order of 16M values |x| < 2 stays well within 4.
    check("reduce/sum/16M", {jit_sum()(d.flat).item<float>()}, {static_cast<float>(exact)}, 0, 4.0);
    check("reduce/max/16M", {jit_max()(d.flat).item<float>()}, {max_ref(d.host.data(), k16M)}, 0,
          0);
    std::vector<float> want(kSide);
    sum_axis0_ref(d.host.data(), want.data(), kSide, kSide);
    check("reduce/sum_axis0/4096x4096", jit_sum_axis0()(d.square).to_vector<float>(), want, 1e-4,
          1e-2);
    sum_axis1_ref(d.host.data(), want.data(), kSide, kSide);
    check("reduce/sum_axis1/4096x4096", jit_sum_axis1()(d.square).to_vector<float>(), want, 1e-4,
          1e-2);
  }
  for (int64_t n : {int64_t{256}, int64_t{1024}}) {
    const MatmulData& d = matmul_data(n);
    std::vector<float> want(static_cast<size_t>(n * n));
    matmul_ref(d.a.data(), d.b.data(), want.data(), n);
    check("matmul/" + std::to_string(n), jit_matmul()(d.aa, d.ba).to_vector<float>(), want, 1e-4,
          1e-4);
  }
  {
    const BatchedMatmulData& d = batched_matmul_data();
    std::vector<float> want(d.a.size());
    batched_matmul_ref(d.a.data(), d.b.data(), want.data(), kBatch, kBatchSide);
    check("matmul/batched", jit_matmul()(d.aa, d.ba).to_vector<float>(), want, 1e-4, 1e-4);
    const std::vector<float> last = jit_matmul()(d.a_each.back(), d.b_each.back()).to_vector<float>();
    check("matmul/batched: last of 64 calls", last,
          std::vector<float>(want.end() - kBatchSide * kBatchSide, want.end()), 1e-4, 1e-4);
  }
  {
    const RegressionData& d = regression_data(kTrainPoints);
    std::vector<float> gw(kTrainPoints), gb(kTrainPoints);
    per_example_grads_ref({0.5f, 0.5f}, d.x.data(), d.y.data(), gw.data(), gb.data(), kTrainPoints);
    const Params g = jit_per_example_grads()(init_params(), tj::reshape(d.xa, {kTrainPoints}),
                                             tj::reshape(d.ya, {kTrainPoints}));
    check("per_example_grads/128 weight", g.weight.to_vector<float>(), gw, 1e-6, 1e-6);
    check("per_example_grads/128 bias", g.bias.to_vector<float>(), gb, 1e-6, 1e-6);
  }
}

// ---------------------------------------------------------------------------------------------
// Registration. Each ratio row of the summary names its reference and its tracejit variant.

struct RatioRow {
  std::string label, reference, tracejit;
  double per = 1;  // the summary prints times divided by this (e.g. per step of a 1000-step case)
};
std::vector<RatioRow> g_rows;

void add(const std::string& name, benchmark::TimeUnit unit,
         std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))->UseRealTime()->Unit(unit);
}
void add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  add(name, benchmark::kMicrosecond, std::move(fn));
}

void register_update() {
  for (int64_t n : {int64_t{128}, k1M, k4M}) {
    std::string c = "update/" + size_name(n);
    add(c + "/cpp", [n](benchmark::State& state) {
      const RegressionData& d = regression_data(n);
      HostParams p{0.5f, 0.5f};
      CpuMeter meter;
      for (auto _ : state) {
        p = update_ref(p, d.x.data(), d.y.data(), n);
        benchmark::DoNotOptimize(p);
      }
      meter.report(state);
      set_bytes(state, 2 * n * 4);
    });
    add(c + "/tracejit", [n](benchmark::State& state) {
      const RegressionData& d = regression_data(n);
      Params p = jit_update()(init_params(), d.xa, d.ya);  // compiled outside the timing
      CpuMeter meter;
      for (auto _ : state) {
        p = jit_update()(p, d.xa, d.ya);
        benchmark::DoNotOptimize(p);
      }
      meter.report(state);
      set_bytes(state, 2 * n * 4);
    });
    g_rows.push_back({"SGD update step, n=" + size_name(n), c + "/cpp", c + "/tracejit"});
  }
}

// `units` steps per benchmark iteration: a counter `time/<unit>` gives the wall time of one
// (printed with an SI prefix and `s`, e.g. 44.1ns).
void per_unit(benchmark::State& state, const char* unit, int64_t units) {
  state.counters[std::string("time/") + unit] = benchmark::Counter(
      static_cast<double>(units) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The seed's training, 1000 steps on 128 points, three ways: one jitted scan, 1000 jitted calls
// of the step, and the C++ loop. Every iteration starts again from the same parameters.
void register_train() {
  const std::string c = "train/1000x128";
  add(c + "/cpp", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    CpuMeter meter;
    for (auto _ : state) {
      HostParams p = train_ref({0.5f, 0.5f}, d.x.data(), d.y.data(), kTrainPoints, kTrainSteps);
      benchmark::DoNotOptimize(p);
    }
    meter.report(state);
    per_unit(state, "step", kTrainSteps);
  });
  add(c + "/tracejit", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    const Params start = init_params();
    jit_train_scan()(start, d.xa, d.ya);  // compiled outside the timing
    CpuMeter meter;
    for (auto _ : state) {
      Params p = jit_train_scan()(start, d.xa, d.ya);
      benchmark::DoNotOptimize(p);
    }
    meter.report(state);
    per_unit(state, "step", kTrainSteps);
  });
  add(c + "/tracejit_calls", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    const Params start = init_params();
    jit_update()(start, d.xa, d.ya);
    CpuMeter meter;
    for (auto _ : state) {
      Params p = start;
      for (int i = 0; i < kTrainSteps; ++i) p = jit_update()(p, d.xa, d.ya);
      benchmark::DoNotOptimize(p);
    }
    meter.report(state);
    per_unit(state, "step", kTrainSteps);
  });
  g_rows.push_back({"SGD x1000 in one scan, n=128 (per step)", c + "/cpp", c + "/tracejit",
                    kTrainSteps});
  g_rows.push_back({"SGD x1000 as 1000 calls, n=128 (per step)", c + "/cpp",
                    c + "/tracejit_calls", kTrainSteps});
  g_rows.push_back({"SGD x1000: 1000 calls vs one scan (per step)", c + "/tracejit",
                    c + "/tracejit_calls", kTrainSteps});
}

// A while_loop counting an i32 from 0 to 1,000,000 (the bound an argument) against a C++ loop
// that must run every iteration.
void register_while() {
  const std::string c = "while/count_1e6";
  add(c + "/cpp", [](benchmark::State& state) {
    int32_t bound = kCount;
    CpuMeter meter;
    for (auto _ : state) {
      benchmark::DoNotOptimize(bound);  // opaque to the compiler: no constant trip count
      int32_t n = count_ref(bound);
      benchmark::DoNotOptimize(n);
    }
    meter.report(state);
    per_unit(state, "iter", kCount);
  });
  add(c + "/tracejit", [](benchmark::State& state) {
    Array bound = i32_scalar(kCount);
    jit_count()(bound);
    CpuMeter meter;
    for (auto _ : state) {
      Array n = jit_count()(bound);
      benchmark::DoNotOptimize(n);
    }
    meter.report(state);
    per_unit(state, "iter", kCount);
  });
  g_rows.push_back({"while_loop i+1 to 1e6 (per iteration)", c + "/cpp", c + "/tracejit", kCount});
}

void register_call_overhead() {
  add("call/add1_scalar/cpp", [](benchmark::State& state) {
    float x = 41.f;
    CpuMeter meter;
    for (auto _ : state) {
      float y = add1_ref(x);
      benchmark::DoNotOptimize(y);
    }
    meter.report(state);
  });
  add("call/add1_scalar/tracejit", [](benchmark::State& state) {
    Array x = f32_scalar(41.f);
    jit_add1()(x);
    CpuMeter meter;
    for (auto _ : state) {
      Array y = jit_add1()(x);
      benchmark::DoNotOptimize(y);
    }
    meter.report(state);
  });
  g_rows.push_back(
      {"jitted call x+1 on f32[]", "call/add1_scalar/cpp", "call/add1_scalar/tracejit"});
}

// ---- The call path (issue 13): a cache hit through jit, and tj::Compiled ----
// Each beside a hand-written C++ function called through a pointer, as a caller would hold a
// compiled kernel.

// CounterV2's step with its state threaded through: (n + 1, n + 1).
[[gnu::noinline]] std::pair<int32_t, int32_t> counter_ref(int32_t n) { return {n + 1, n + 1}; }
auto counter_step(const Array& n) { return std::tuple{n + 1, n + 1}; }

// The sum of N scalar leaves: the per-leaf cost of a call.
template <size_t N>
[[gnu::noinline]] float leaves_ref(const std::array<const float*, N>& xs) {
  float s = 0;
  for (const float* x : xs) s += *x;
  return s;
}
template <size_t N>
Array sum_leaves(const std::array<Array, N>& xs) {
  Array s = xs[0];
  for (size_t i = 1; i < N; ++i) s = s + xs[i];
  return s;
}

struct LeafRow {
  size_t n;
  std::string reference, jit, compiled;
};
std::vector<LeafRow> g_leaf_rows;

template <size_t N>
void register_leaves() {
  const std::string c = "call/leaves_" + std::to_string(N);
  add(c + "/cpp", benchmark::kNanosecond, [](benchmark::State& state) {
    std::array<float, N> v{};
    std::array<const float*, N> xs;
    for (size_t i = 0; i < N; ++i) xs[i] = &v[i];
    auto* fn = &leaves_ref<N>;
    benchmark::DoNotOptimize(fn);
    for (auto _ : state) {
      float y = fn(xs);
      benchmark::DoNotOptimize(y);
    }
  });
  auto make_args = [] {
    std::array<Array, N> xs;
    for (size_t i = 0; i < N; ++i) xs[i] = f32_scalar(static_cast<float>(i));
    return xs;
  };
  add(c + "/tracejit", benchmark::kNanosecond, [make_args](benchmark::State& state) {
    auto f = tj::jit(sum_leaves<N>);
    const std::array<Array, N> xs = make_args();
    f(xs);
    for (auto _ : state) {
      Array y = f(xs);
      benchmark::DoNotOptimize(y);
    }
  });
  add(c + "/compiled", benchmark::kNanosecond, [make_args](benchmark::State& state) {
    const std::array<Array, N> xs = make_args();
    auto f = tj::jit(sum_leaves<N>).lower(xs).compile();
    for (auto _ : state) {
      Array y = f(xs);
      benchmark::DoNotOptimize(y);
    }
  });
  g_rows.push_back({"sum of " + std::to_string(N) + " f32[] leaves, jit", c + "/cpp", c + "/tracejit"});
  g_rows.push_back({"sum of " + std::to_string(N) + " f32[] leaves, Compiled", c + "/cpp", c + "/compiled"});
  g_leaf_rows.push_back({N, c + "/cpp", c + "/tracejit", c + "/compiled"});
}

void register_call_path() {
  add("call/add1_scalar/compiled", benchmark::kNanosecond, [](benchmark::State& state) {
    Array x = f32_scalar(41.f);
    auto f = make_add1().lower(x).compile();
    for (auto _ : state) {
      Array y = f(x);
      benchmark::DoNotOptimize(y);
    }
  });
  g_rows.push_back({"jitted call x+1 on f32[], Compiled", "call/add1_scalar/cpp",
                    "call/add1_scalar/compiled"});

  add("call/counter_step/cpp", benchmark::kNanosecond, [](benchmark::State& state) {
    auto* fn = &counter_ref;
    benchmark::DoNotOptimize(fn);
    int32_t n = 0;
    for (auto _ : state) {
      auto [value, next] = fn(n);
      benchmark::DoNotOptimize(value);
      n = next;
    }
  });
  add("call/counter_step/tracejit", benchmark::kNanosecond, [](benchmark::State& state) {
    auto f = tj::jit(counter_step, {.name = "counter"});
    Array n = std::get<1>(f(i32_scalar(-1)));  // compiled outside the timing
    for (auto _ : state) {
      auto [value, next] = f(n);
      benchmark::DoNotOptimize(value);
      n = std::move(next);
    }
    if (n.item<int32_t>() != static_cast<int32_t>(state.iterations())) state.SkipWithError("wrong count");
  });
  add("call/counter_step/compiled", benchmark::kNanosecond, [](benchmark::State& state) {
    Array n = i32_scalar(0);
    auto f = tj::jit(counter_step, {.name = "counter"}).lower(n).compile();
    for (auto _ : state) {
      auto [value, next] = f(n);
      benchmark::DoNotOptimize(value);
      n = std::move(next);
    }
    if (n.item<int32_t>() != static_cast<int32_t>(state.iterations())) state.SkipWithError("wrong count");
  });
  g_rows.push_back({"counter n+1, state threaded, jit", "call/counter_step/cpp", "call/counter_step/tracejit"});
  g_rows.push_back({"counter n+1, state threaded, Compiled", "call/counter_step/cpp",
                    "call/counter_step/compiled"});

  add("update/128/compiled", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    Params p = init_params();
    auto step = make_update().lower(p, d.xa, d.ya).compile();
    for (auto _ : state) {
      p = step(p, d.xa, d.ya);
      benchmark::DoNotOptimize(p);
    }
  });
  g_rows.push_back({"SGD update step, n=128, Compiled", "update/128/cpp", "update/128/compiled"});

  register_leaves<1>();
  register_leaves<8>();
  register_leaves<64>();
}

void register_eager() {
  for (int64_t n : {int64_t{128}, k1M}) {
    std::string c = "eager/add/" + size_name(n);
    add(c + "/cpp", [n](benchmark::State& state) {
      const VectorData &a = vector_data(n), &b = vector_data(n, 6);
      std::vector<float> out(static_cast<size_t>(n));
      CpuMeter meter;
      for (auto _ : state) {
        add_ref(a.host.data(), b.host.data(), out.data(), n);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
      }
      meter.report(state);
      set_bytes(state, 3 * n * 4);
    });
    add(c + "/tracejit", [n](benchmark::State& state) {
      const VectorData &a = vector_data(n), &b = vector_data(n, 6);
      CpuMeter meter;
      for (auto _ : state) {
        Array z = a.flat + b.flat;
        benchmark::DoNotOptimize(z);
      }
      meter.report(state);
      set_bytes(state, 3 * n * 4);
    });
    g_rows.push_back({"eager x+y, f32[" + size_name(n) + "]", c + "/cpp", c + "/tracejit"});
  }
}

// A one-input elementwise case: cpp (preallocated output), cpp_alloc (output allocated per
// call, like tracejit's result buffers) and tracejit.
template <class Jitted>
void register_elementwise(const std::string& kind, void (*ref)(const float*, float*, int64_t),
                          Jitted& (*jitted)(), const std::string& label) {
  for (int64_t n : {k1M, k16M}) {
    std::string c = "elementwise/" + kind + "/" + size_name(n);
    benchmark::TimeUnit unit = n >= k16M ? benchmark::kMillisecond : benchmark::kMicrosecond;
    add(c + "/cpp", unit, [n, ref](benchmark::State& state) {
      const VectorData& d = vector_data(n);
      std::vector<float> out(static_cast<size_t>(n));
      CpuMeter meter;
      for (auto _ : state) {
        ref(d.host.data(), out.data(), n);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
      }
      meter.report(state);
      set_bytes(state, 2 * n * 4);
    });
    add(c + "/cpp_alloc", unit, [n, ref](benchmark::State& state) {
      const VectorData& d = vector_data(n);
      CpuMeter meter;
      for (auto _ : state) {
        OutBuffer out = alloc_out(n);
        ref(d.host.data(), out.get(), n);
        benchmark::DoNotOptimize(out.get());
        benchmark::ClobberMemory();
      }
      meter.report(state);
      set_bytes(state, 2 * n * 4);
    });
    add(c + "/tracejit", unit, [n, jitted](benchmark::State& state) {
      const VectorData& d = vector_data(n);
      jitted()(d.flat);
      CpuMeter meter;
      for (auto _ : state) {
        Array y = jitted()(d.flat);
        benchmark::DoNotOptimize(y);
      }
      meter.report(state);
      set_bytes(state, 2 * n * 4);
    });
    g_rows.push_back({label + ", " + size_name(n), c + "/cpp", c + "/tracejit"});
    g_rows.push_back(
        {label + ", " + size_name(n) + " (vs alloc)", c + "/cpp_alloc", c + "/tracejit"});
  }
}

void register_reductions() {
  const int64_t n = k16M;
  // Full reductions to a scalar.
  struct Full {
    std::string name;
    float (*naive)(const float*, int64_t);
    float (*acc16)(const float*, int64_t);
    std::function<Array(const Array&)> jitted;
  };
  std::vector<Full> fulls = {
      {"sum", sum_ref, sum16_ref, [](const Array& x) { return jit_sum()(x); }},
      {"max", max_ref, max16_ref, [](const Array& x) { return jit_max()(x); }},
  };
  for (const Full& f : fulls) {
    std::string c = "reduce/" + f.name + "/16M";
    for (auto [variant, fn] : {std::pair{"cpp", f.naive}, std::pair{"cpp_16acc", f.acc16}}) {
      add(c + "/" + variant, kMs, [n, fn](benchmark::State& state) {
        const VectorData& d = vector_data(n);
        CpuMeter meter;
        for (auto _ : state) {
          float s = fn(d.host.data(), n);
          benchmark::DoNotOptimize(s);
        }
        meter.report(state);
        set_bytes(state, n * 4);
      });
    }
    add(c + "/tracejit", kMs, [n, jitted = f.jitted](benchmark::State& state) {
      const VectorData& d = vector_data(n);
      jitted(d.flat);
      CpuMeter meter;
      for (auto _ : state) {
        Array s = jitted(d.flat);
        benchmark::DoNotOptimize(s);
      }
      meter.report(state);
      set_bytes(state, n * 4);
    });
    g_rows.push_back({f.name + " over f32[16M] (vs 1 acc)", c + "/cpp", c + "/tracejit"});
    g_rows.push_back({f.name + " over f32[16M] (vs 16 acc)", c + "/cpp_16acc", c + "/tracejit"});
  }
  // Axis reductions of the [4096, 4096] matrix.
  struct Axis {
    int axis;
    void (*ref)(const float*, float*, int64_t, int64_t);
    std::function<Array(const Array&)> jitted;
  };
  std::vector<Axis> axes = {
      {0, sum_axis0_ref, [](const Array& a) { return jit_sum_axis0()(a); }},
      {1, sum_axis1_ref, [](const Array& a) { return jit_sum_axis1()(a); }},
  };
  for (const Axis& ax : axes) {
    std::string c = "reduce/sum_axis" + std::to_string(ax.axis) + "/4096x4096";
    add(c + "/cpp", kMs, [ref = ax.ref](benchmark::State& state) {
      const VectorData& d = vector_data(k16M);
      std::vector<float> out(kSide);
      CpuMeter meter;
      for (auto _ : state) {
        ref(d.host.data(), out.data(), kSide, kSide);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
      }
      meter.report(state);
      set_bytes(state, k16M * 4);
    });
    add(c + "/tracejit", kMs, [jitted = ax.jitted](benchmark::State& state) {
      const VectorData& d = vector_data(k16M);
      jitted(d.square);
      CpuMeter meter;
      for (auto _ : state) {
        Array s = jitted(d.square);
        benchmark::DoNotOptimize(s);
      }
      meter.report(state);
      set_bytes(state, k16M * 4);
    });
    g_rows.push_back({"sum axis " + std::to_string(ax.axis) + " of f32[4096,4096]", c + "/cpp",
                      c + "/tracejit"});
  }
}

// GFLOP/s for `flop` floating-point operations per iteration.
void set_flops(benchmark::State& state, double flop) {
  state.counters["GFLOP/s"] = benchmark::Counter(flop * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

// jit_matmul()(a, b), compiled outside the timing.
void time_matmul(benchmark::State& state, const Array& a, const Array& b, double flop) {
  jit_matmul()(a, b);
  CpuMeter meter;
  for (auto _ : state) {
    Array c = jit_matmul()(a, b);
    benchmark::DoNotOptimize(c);
  }
  meter.report(state);
  set_flops(state, flop);
}

void register_matmul() {
  for (int64_t n : {int64_t{256}, int64_t{1024}}) {
    std::string c = "matmul/" + std::to_string(n);
    auto flops = [n](benchmark::State& state) { set_flops(state, 2.0 * static_cast<double>(n * n * n)); };
    add(c + "/cpp_ikj", kMs, [n, flops](benchmark::State& state) {
      const MatmulData& d = matmul_data(n);
      std::vector<float> out(static_cast<size_t>(n * n));
      CpuMeter meter;
      for (auto _ : state) {
        matmul_ref(d.a.data(), d.b.data(), out.data(), n);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
      }
      meter.report(state);
      flops(state);
    });
    add(c + "/tracejit", kMs, [n](benchmark::State& state) {
      const MatmulData& d = matmul_data(n);
      time_matmul(state, d.aa, d.ba, 2.0 * static_cast<double>(n * n * n));
    });
    g_rows.push_back({"matmul " + std::to_string(n) + "x" + std::to_string(n) + " (vs naive ikj)",
                      c + "/cpp_ikj", c + "/tracejit"});
  }
  // (64, 256, 256) @ (64, 256, 256): one batched kernel, the unbatched kernel called 64 times,
  // and a hand-blocked loop.
  const std::string c = "matmul/batched_64x256";
  constexpr double kFlop = 2.0 * static_cast<double>(kBatch * kBatchSide * kBatchSide * kBatchSide);
  auto flops = [](benchmark::State& state) { set_flops(state, kFlop); };
  add(c + "/cpp_blocked", kMs, [flops](benchmark::State& state) {
    const BatchedMatmulData& d = batched_matmul_data();
    std::vector<float> out(d.a.size());
    CpuMeter meter;
    for (auto _ : state) {
      batched_matmul_ref(d.a.data(), d.b.data(), out.data(), kBatch, kBatchSide);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
    meter.report(state);
    flops(state);
  });
  add(c + "/tracejit", kMs, [](benchmark::State& state) {
    const BatchedMatmulData& d = batched_matmul_data();
    time_matmul(state, d.aa, d.ba, kFlop);
  });
  add(c + "/tracejit_64_calls", kMs, [flops](benchmark::State& state) {
    const BatchedMatmulData& d = batched_matmul_data();
    jit_matmul()(d.a_each[0], d.b_each[0]);
    CpuMeter meter;
    for (auto _ : state) {
      for (int64_t i = 0; i < kBatch; ++i) {
        Array out = jit_matmul()(d.a_each[static_cast<size_t>(i)], d.b_each[static_cast<size_t>(i)]);
        benchmark::DoNotOptimize(out);
      }
    }
    meter.report(state);
    flops(state);
  });
  g_rows.push_back({"batched matmul 64x256^3 (vs hand-blocked)", c + "/cpp_blocked", c + "/tracejit"});
  g_rows.push_back({"batched matmul: 64 unbatched calls (vs blocked)", c + "/cpp_blocked",
                    c + "/tracejit_64_calls"});
  g_rows.push_back({"batched matmul: one kernel vs 64 calls", c + "/tracejit_64_calls", c + "/tracejit"});
}

// Per-example gradients of the seed's loss over 128 examples: jit(vmap(grad(loss))) against
// the hand-written loop.
void register_per_example() {
  const std::string c = "per_example_grads/128";
  add(c + "/cpp", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    std::vector<float> gw(kTrainPoints), gb(kTrainPoints);
    CpuMeter meter;
    for (auto _ : state) {
      per_example_grads_ref({0.5f, 0.5f}, d.x.data(), d.y.data(), gw.data(), gb.data(), kTrainPoints);
      benchmark::DoNotOptimize(gw.data());
      benchmark::DoNotOptimize(gb.data());
      benchmark::ClobberMemory();
    }
    meter.report(state);
  });
  add(c + "/tracejit", [](benchmark::State& state) {
    const RegressionData& d = regression_data(kTrainPoints);
    const Array x = tj::reshape(d.xa, {kTrainPoints}), y = tj::reshape(d.ya, {kTrainPoints});
    const Params p = init_params();
    jit_per_example_grads()(p, x, y);
    CpuMeter meter;
    for (auto _ : state) {
      Params g = jit_per_example_grads()(p, x, y);
      benchmark::DoNotOptimize(g);
    }
    meter.report(state);
  });
  add(c + "/tracejit_tiered", [](benchmark::State& state) {
    ScopedEnv tiers("TRACEJIT_TIERED", "1");  // main() turns them off for the other rows
    const RegressionData& d = regression_data(kTrainPoints);
    const Array x = tj::reshape(d.xa, {kTrainPoints}), y = tj::reshape(d.ya, {kTrainPoints});
    const Params p = init_params();
    auto f = tj::jit(tj::vmap(tj::grad(example_loss), {.in_axes = {std::nullopt, 0, 0}}),
                     {.name = "per_example_grads_tiered", .share_code = false, .tiered = true});
    for (int i = 0; i < 2; ++i) f(p, x, y);  // the second call swaps the optimized tier in
    CpuMeter meter;
    for (auto _ : state) {
      Params g = f(p, x, y);
      benchmark::DoNotOptimize(g);
    }
    meter.report(state);
  });
  g_rows.push_back({"per-example grads, 128 (jit(vmap(grad)))", c + "/cpp", c + "/tracejit"});
  g_rows.push_back({"per-example grads, 128, tiered = true after its tier-up", c + "/cpp", c + "/tracejit_tiered"});
}

// Resident memory now, in kB (0 where /proc is missing).
double resident_kb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1024;
}

// Time to first result of a new jitted function: a fresh tj::jit each iteration, so each call
// traces, runs the passes, lowers, optimizes and generates code once (and the Jitted is
// destroyed). Counters: the phases (stats(), ms per compile) and the growth of resident memory
// per compile (code or IR kept after its Jitted is gone shows here).
template <class Make, class Call>
void compile_benchmark(benchmark::State& state, Make make, Call call) {
  tj::JitStats total;
  const double rss0 = resident_kb();
  for (auto _ : state) {
    auto f = make();
    auto out = call(f);
    benchmark::DoNotOptimize(out);
    tj::JitStats s = f.stats();
    total.compiles += s.compiles;
    total.shared_hits += s.shared_hits;
    total.disk_hits += s.disk_hits;
    total.trace_s += s.trace_s;
    total.passes_s += s.passes_s;
    total.lower_s += s.lower_s;
    total.llvm_opt_s += s.llvm_opt_s;
    total.codegen_s += s.codegen_s;
  }
  const double rss1 = resident_kb();
  double it = static_cast<double>(std::max<int64_t>(state.iterations(), 1));
  state.counters["compiles/iter"] = static_cast<double>(total.compiles) / it;
  if (total.shared_hits > 0) state.counters["shared_hits/iter"] = static_cast<double>(total.shared_hits) / it;
  if (total.disk_hits > 0) state.counters["disk_hits/iter"] = static_cast<double>(total.disk_hits) / it;
  state.counters["trace_ms"] = total.trace_s * 1e3 / it;
  state.counters["passes_ms"] = total.passes_s * 1e3 / it;
  state.counters["lower_ms"] = total.lower_s * 1e3 / it;
  state.counters["llvm_opt_ms"] = total.llvm_opt_s * 1e3 / it;
  state.counters["codegen_ms"] = total.codegen_s * 1e3 / it;
  state.counters["rss_kB/compile"] = (rss1 - rss0) / it;
}

// One optimized compile each, as before code sharing and tiers: their own code, at once.
const tj::JitOptions kCompileAlone{.share_code = false, .tiered = false};

auto make_chain(int n) {
  return tj::jit([n](const Array& x) {
    Array y = x;
    for (int i = 0; i < n; ++i) y = i % 2 ? y + 0.25f : y * y;
    return tj::sum(y);
  }, kCompileAlone);
}

auto make_reductions(int n) {
  return tj::jit([n](const Array& x) {
    Array acc = tj::zeros({});
    for (int i = 0; i < n; ++i) acc = tj::sum(x * acc + 1.f) * 0.001f;
    return acc;
  }, kCompileAlone);
}

// compile/<what>/<n>/tracejit: one compile of make(n) on `size` floats of 0.5, one iteration.
template <class Make>
void add_compile_size(const std::string& what, int n, int64_t size, Make make) {
  benchmark::RegisterBenchmark(("compile/" + what + "/" + std::to_string(n) + "/tracejit").c_str(),
                               [=](benchmark::State& state) {
                                 Array x = tj::full({size}, 0.5, tj::DType::f32);
                                 compile_benchmark(state, [&] { return make(n); },
                                                   [&](auto& f) { return f(x); });
                                 state.counters["ops"] = n;
                               })
      ->UseRealTime()->Unit(benchmark::kSecond)->Iterations(1);
}

void register_compile() {
  add("compile/add1_scalar/tracejit", kMs, [](benchmark::State& state) {
    Array x = f32_scalar(41.f);
    compile_benchmark(state, [] { return make_add1(kCompileAlone); }, [&](auto& f) { return f(x); });
  });
  add("compile/update/tracejit", kMs, [](benchmark::State& state) {
    const RegressionData& d = regression_data(128);
    Params p = init_params();
    compile_benchmark(state, [] { return make_update(kCompileAlone); }, [&](auto& f) { return f(p, d.xa, d.ya); });
  });
  // Compile time against program size (issue 16): an elementwise chain of n ops over 16
  // floats (y = y * y, y = y + 0.25 alternately, then a sum), and n reductions each feeding the
  // next (one kernel each). One iteration each: the larger ones take seconds.
  for (int n : {1000, 10000, 100000}) add_compile_size("chain", n, 16, make_chain);
  for (int n : {100, 1000}) add_compile_size("reductions", n, 64, make_reductions);
  // Ratios against one run of the same computation in C++: how many reference calls one
  // compile costs.
  g_rows.push_back(
      {"compile+first call, x+1", "call/add1_scalar/cpp", "compile/add1_scalar/tracejit"});
  g_rows.push_back(
      {"compile+first call, update n=128", "update/128/cpp", "compile/update/tracejit"});
}

// ---------------------------------------------------------------------------------------------
// First calls (issue 13): a new jit object of the seed's SGD step (n=128), timed from its
// creation to its first result (trace, passes, code, one call), by where its code comes from:
//   quick      the quick tier (LLVM's light pipeline); its tier-up to optimized code is off here
//              (TRACEJIT_TIERED=quick), so every call of it runs the quick code. Only this mode
//              gives the step a quick tier: under tiered=true its float sums compile optimized
//              at once, as the tiers would sum them in different orders
//   (optimized: compile/update/tracejit above, one compile at full optimization)
//   shared     code another jit object compiled in this process
//   disk       an entry of the disk cache (written before the timing); no code sharing
//   fresh_process/{quick,disk}: the same first call as the first thing a new process does (LLVM's
//              one-time setup included), timed inside that process (this binary run again with
//              --first_call_child=MODE); process start and library loading are not in it
// update/128/tracejit_quick: calls of the quick tier's code, to compare with update/128/tracejit;
// update/128/tracejit_tiered: calls after the tier-up (the optimized tier's -O2 machine code).


// A private directory for the disk cache rows, removed at exit.
const std::string& bench_cache_dir() {
  static const std::string dir = [] {
    char path[] = "/tmp/tracejit-bench-cache-XXXXXX";
    std::string made = mkdtemp(path) ? path : "";
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(bench_cache_dir(), ec); });
    return made;
  }();
  return dir;
}

// The first call of a new update jit as a child process does it first; seconds, or -1.
double child_first_call(const std::string& mode) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = 0;
  std::string env = mode == "disk" ? "TRACEJIT_CACHE_DIR='" + bench_cache_dir() + "' TRACEJIT_TIERED=0"
                                   : "TRACEJIT_TIERED=quick";
  std::string cmd = env + " '" + self + "' --first_call_child=" + mode;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  double seconds = -1;
  if (std::fscanf(p, "%lf", &seconds) != 1) seconds = -1;
  return pclose(p) == 0 ? seconds : -1;
}

// The child's side: the first thing this process does with tracejit.
int first_call_child(const std::string& mode) {
  const RegressionData& d = regression_data(128);
  const Params p0{f32_scalar(0.5f), f32_scalar(0.5f)};
  const auto t0 = std::chrono::steady_clock::now();
  auto f = make_update({.share_code = false});
  Params p = f(p0, d.xa, d.ya);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const tj::JitStats st = f.stats();
  if (mode == "disk" && st.disk_hits != 1) return 3;  // the entry was not there: not this row
  benchmark::DoNotOptimize(p);
  std::printf("%.9f\n", s);
  return 0;
}

void register_first_call() {
  const std::string c = "first_call/update/";
  add(c + "quick", kMs, [](benchmark::State& state) {
    ScopedEnv tiers("TRACEJIT_TIERED", "quick");
    const RegressionData& d = regression_data(128);
    Params p = init_params();
    compile_benchmark(state, [] { return make_update({.share_code = false}); },
                      [&](auto& f) { return f(p, d.xa, d.ya); });
  });
  add(c + "shared", kMs, [](benchmark::State& state) {
    const RegressionData& d = regression_data(128);
    Params p = init_params();
    make_update()(p, d.xa, d.ya);  // compiled once, outside the timing
    compile_benchmark(state, [] { return make_update(); }, [&](auto& f) { return f(p, d.xa, d.ya); });
  });
  add(c + "disk", kMs, [](benchmark::State& state) {
    const RegressionData& d = regression_data(128);
    Params p = init_params();
    const tj::JitOptions options{.cache_dir = bench_cache_dir(), .share_code = false, .tiered = false};
    make_update(options)(p, d.xa, d.ya);  // writes the entry, outside the timing
    compile_benchmark(state, [&] { return make_update(options); }, [&](auto& f) { return f(p, d.xa, d.ya); });
  });
  for (const char* mode : {"quick", "disk"}) {
    benchmark::RegisterBenchmark((c + "fresh_process/" + mode).c_str(), [mode](benchmark::State& state) {
      if (std::string(mode) == "disk") {  // the entry the children load
        const RegressionData& d = regression_data(128);
        make_update({.cache_dir = bench_cache_dir(), .share_code = false, .tiered = false})(init_params(), d.xa, d.ya);
      }
      for (auto _ : state) {
        const double s = child_first_call(mode);
        if (s < 0) return state.SkipWithError("the child process failed");
        state.SetIterationTime(s);
      }
    })->UseManualTime()->Unit(kMs)->Iterations(10);
  }
  add("update/128/tracejit_quick", [](benchmark::State& state) {
    ScopedEnv tiers("TRACEJIT_TIERED", "quick");
    const RegressionData& d = regression_data(128);
    auto f = make_update({.share_code = false});
    Params p = f(init_params(), d.xa, d.ya);
    for (auto _ : state) {
      p = f(p, d.xa, d.ya);
      benchmark::DoNotOptimize(p);
    }
  });
  add("update/128/tracejit_tiered", [](benchmark::State& state) {
    ScopedEnv tiers("TRACEJIT_TIERED", "1");  // main() turns them off for the other rows
    const RegressionData& d = regression_data(128);
    auto f = make_update({.share_code = false, .tiered = true});
    Params p = init_params();
    for (int i = 0; i < 4; ++i) p = f(p, d.xa, d.ya);  // past the tier-up of p's signature
    for (auto _ : state) {
      p = f(p, d.xa, d.ya);
      benchmark::DoNotOptimize(p);
    }
  });
  g_rows.push_back({"first call, quick tier (TRACEJIT_TIERED=quick), update n=128", "update/128/cpp", c + "quick"});
  g_rows.push_back({"first call, shared code, update n=128", "update/128/cpp", c + "shared"});
  g_rows.push_back({"first call, disk cache, update n=128", "update/128/cpp", c + "disk"});
  g_rows.push_back({"first call in a fresh process, quick tier (=quick)", "update/128/cpp", c + "fresh_process/quick"});
  g_rows.push_back({"first call in a fresh process, disk cache", "update/128/cpp", c + "fresh_process/disk"});
  g_rows.push_back({"SGD update step n=128, quick tier code", "update/128/cpp", "update/128/tracejit_quick"});
  g_rows.push_back({"SGD update step n=128, tiered = true after its tier-up (-O2 machine code)", "update/128/cpp",
                    "update/128/tracejit_tiered"});
}

// ---------------------------------------------------------------------------------------------
// Summary: collects each benchmark's time (median of repetitions when there are several) while
// the console reporter prints as usual.

class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      double seconds = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
      const std::string& name = r.run_name.function_name;
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name != "median") continue;
        median_[name] = seconds;
      } else {
        last_[name] = seconds;
      }
      counters_[name] = r.counters;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  const benchmark::UserCounters* counters_of(const std::string& name) const {
    auto it = counters_.find(name);
    return it == counters_.end() ? nullptr : &it->second;
  }

  bool time_of(const std::string& name, double* seconds) const {
    for (const auto* m : {&median_, &last_}) {
      auto it = m->find(name);
      if (it != m->end()) return *seconds = it->second, true;
    }
    return false;
  }

 private:
  std::map<std::string, double> median_, last_;
  std::map<std::string, benchmark::UserCounters> counters_;
};

std::string load_average() {
  char buf[128] = "unknown";
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (!std::fgets(buf, sizeof buf, f)) std::snprintf(buf, sizeof buf, "unknown");
    std::fclose(f);
  }
  // The 1, 5 and 15 minute averages: the first three fields.
  std::string s = buf;
  size_t end = 0;
  for (int field = 0; field < 3 && end != std::string::npos; ++field)
    end = s.find(' ', end == 0 ? 0 : end + 1);
  return s.substr(0, end);
}

std::string format_time(double s) {
  char buf[32];
  if (s < 1e-6)
    std::snprintf(buf, sizeof buf, "%.1f ns", s * 1e9);
  else if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  return buf;
}

// The cost of one more leaf: the slope between the 1-leaf and the 64-leaf call.
void print_leaf_slopes(const SummaryReporter& reporter) {
  if (g_leaf_rows.size() < 2) return;
  const LeafRow& a = g_leaf_rows.front();
  const LeafRow& b = g_leaf_rows.back();
  for (auto [what, name_a, name_b] : {std::tuple{"C++ reference", a.reference, b.reference},
                                      std::tuple{"jit", a.jit, b.jit},
                                      std::tuple{"Compiled", a.compiled, b.compiled}}) {
    double ta = 0, tb = 0;
    if (!reporter.time_of(name_a, &ta) || !reporter.time_of(name_b, &tb)) continue;
    std::printf("cost per extra f32[] leaf (%zu to %zu leaves), %s: %s\n", a.n, b.n, what,
                format_time((tb - ta) / static_cast<double>(b.n - a.n)).c_str());
  }
}

void print_summary(const SummaryReporter& reporter) {
  std::printf("\nratio = tracejit time / reference time (> 1: tracejit slower)\n");
  std::printf("%-44s %12s %12s %10s\n", "case", "reference", "tracejit", "ratio");
  for (const RatioRow& row : g_rows) {
    double ref = 0, tj = 0;
    if (!reporter.time_of(row.reference, &ref) || !reporter.time_of(row.tracejit, &tj))
      continue;  // filtered out
    std::printf("%-44s %12s %12s %10.3g\n", row.label.c_str(), format_time(ref / row.per).c_str(),
                format_time(tj / row.per).c_str(), tj / ref);
  }
  for (const char* name : {"compile/add1_scalar/tracejit", "compile/update/tracejit",
                           "first_call/update/quick", "first_call/update/shared", "first_call/update/disk"}) {
    const benchmark::UserCounters* c = reporter.counters_of(name);
    double total = 0;
    if (c == nullptr || !reporter.time_of(name, &total)) continue;
    auto ms = [&](const char* key) {
      auto it = c->find(key);
      return it == c->end() ? 0.0 : static_cast<double>(it->second);
    };
    double phases =
        ms("trace_ms") + ms("passes_ms") + ms("lower_ms") + ms("llvm_opt_ms") + ms("codegen_ms");
    std::printf(
        "%s: %.2f ms = trace %.3f + passes %.3f + lower %.3f + llvm-opt %.3f + codegen "
        "%.3f + rest (first run, caching, teardown) %.3f ms\n",
        name, total * 1e3, ms("trace_ms"), ms("passes_ms"), ms("lower_ms"), ms("llvm_opt_ms"),
        ms("codegen_ms"), total * 1e3 - phases);
  }
  print_leaf_slopes(reporter);
  // Google Benchmark prints the load at the start; the end tells whether it changed meanwhile.
  std::printf("load average (1, 5, 15 min) at the end: %s\n", load_average().c_str());
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  // Defaults suited to a shared machine (3 repetitions, the median in the summary); flags given
  // on the command line come later and win.
  std::vector<char*> args = {argv[0]};
  std::string reps = "--benchmark_repetitions=3", min_time = "--benchmark_min_time=0.2",
              aggregates = "--benchmark_display_aggregates_only=true";
  args.push_back(reps.data());
  args.push_back(min_time.data());
  args.push_back(aggregates.data());
  if (argc == 2 && std::string_view(argv[1]).starts_with("--first_call_child="))
    return bench::first_call_child(std::string(argv[1] + std::strlen("--first_call_child=")));
  // Steady-state rows time the single compile's code: tiers off unless a row (first_call/*,
  // */tracejit_tiered) or the user asks for them.
  setenv("TRACEJIT_TIERED", "0", 0);
  bool skip_checks = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--skip_checks")
      skip_checks = true;
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

  benchmark::AddCustomContext("reference_compiler", __VERSION__);
  benchmark::AddCustomContext("reference_cxx_flags", TRACEJIT_BENCH_CXX_FLAGS);
  if (!skip_checks) bench::run_checks();

  bench::register_update();
  bench::register_train();
  bench::register_while();
  bench::register_call_overhead();
  bench::register_call_path();
  bench::register_eager();
  bench::register_elementwise("arith", bench::arith_ref, bench::jit_arith, "x*2+1");
  bench::register_elementwise("tanh_exp", bench::transc_ref, bench::jit_transc,
                              "tanh(x)*2+exp(-x*x)");
  bench::register_reductions();
  bench::register_matmul();
  bench::register_per_example();
  bench::register_compile();
  bench::register_first_call();

  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  bench::print_summary(reporter);
  benchmark::Shutdown();
  if (bench::g_check_failures > 0) {
    std::printf("\n%d startup check(s) FAILED: the numbers of those cases are not meaningful\n",
                bench::g_check_failures);
    return 1;
  }
  return 0;
}

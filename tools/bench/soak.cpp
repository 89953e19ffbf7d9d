// tracejit-soak: does a long-running process that calls jitted functions keep its memory flat,
// and what does each cached compilation cost?
//
// Phase 1 calls the seed's jitted SGD step and a jitted scalar function --calls times each and
// reads resident memory (/proc/self/statm) before the first call, after --warmup calls and at
// the end. Growth after warm-up of --max_growth_kib or more is a leak: the exit status is 1.
// Phase 2 compiles --signatures distinct signatures of one small function (shapes [1..N]), one
// after another, and reports resident memory, memory maps and compile time per cached
// executable, then what destroying the jitted function gives back. Phase 3 compiles and
// destroys --cycles jitted functions and reports the heap each leaves behind.
#include <malloc.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "process_memory.h"
#include "tracejit/tracejit.h"

ABSL_FLAG(int64_t, calls, 1000000, "calls of each jitted function in phase 1");
ABSL_FLAG(int64_t, warmup, 10000, "calls before the warm-up measurement");
ABSL_FLAG(int64_t, signatures, 10000, "distinct signatures compiled in phase 2 (0 skips it)");
ABSL_FLAG(int64_t, cycles, 2000, "jitted functions compiled and destroyed in phase 3 (0 skips it)");
ABSL_FLAG(double, max_growth_kib, 1024, "resident growth after warm-up that fails phase 1");

namespace tj = tracejit;
using tj::Array;
using tracejit_bench::heap_in_use_bytes;
using tracejit_bench::map_count;
using tracejit_bench::resident_bytes;

namespace {

// The seed's model (tests/seed_model.h, tools/demo/regression.cpp).
struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

constexpr float kLearningRate = 0.005f;

Array loss(const Params& p, const Array& x, const Array& y) {
  return tj::mean(tj::square(p.weight * x + p.bias - y));
}

double kib(double bytes) { return bytes / 1024; }

// A /proc/meminfo field in kB (MemAvailable: what the machine could still give), or -1.
int64_t meminfo_kb(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    int64_t value = 0;
    std::string unit;
    in >> value >> unit;
    if (key == field + ":") return value;
  }
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `step` `calls` times, measuring resident memory before, after the warm-up and at the
// end; returns false (and says so) when the growth after warm-up reaches the limit.
template <class Step>
bool soak(const std::string& what, int64_t calls, int64_t warmup, Step step) {
  const double limit = absl::GetFlag(FLAGS_max_growth_kib) * 1024;
  const double before = resident_bytes();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < std::min(warmup, calls); ++i) step();
  const double warm = resident_bytes();
  auto t1 = std::chrono::steady_clock::now();
  for (int64_t i = warmup; i < calls; ++i) step();
  const double after = resident_bytes();
  const double per_call_us =
      calls > warmup ? seconds_since(t1) * 1e6 / static_cast<double>(calls - warmup) : 0;
  const bool ok = after - warm < limit;
  std::cout << absl::StrFormat(
      "%-12s %8d calls in %6.2f s (%.2f us/call): RSS %8.0f KiB before, %8.0f after %d warm-up "
      "calls, %8.0f at the end; growth after warm-up %+.0f KiB (limit %.0f): %s\n",
      what, calls, seconds_since(t0), per_call_us, kib(before), kib(warm), std::min(warmup, calls),
      kib(after), kib(after - warm), kib(limit), ok ? "ok" : "LEAK");
  return ok;
}

bool phase1(int64_t calls, int64_t warmup) {
  auto update = tj::jit(
      [](const Params& params, const Array& x, const Array& y) {
        Params g = tj::grad(loss)(params, x, y);
        return tj::tree_map([](const Array& p, const Array& d) { return p - d * kLearningRate; },
                            params, g);
      },
      {.name = "update"});
  Array keys = tj::random::split(tj::random::key(42));
  Array x = tj::random::normal(keys[0], {128, 1});
  Array y = x * 2 + (-1) + tj::random::normal(keys[1], {128, 1}) * 0.5f;
  Params p{Array(0.f), Array(0.f)};
  bool ok = soak("update", calls, warmup, [&] { p = update(p, x, y); });
  // The step converges to the least-squares fit near w = 2, b = -1 (the data's line).
  std::cout << absl::StrFormat("             final weight %.4f bias %.4f\n", p.weight.item<float>(),
                               p.bias.item<float>());
  if (!(std::abs(p.weight.item<float>() - 2) < 0.2f && std::abs(p.bias.item<float>() + 1) < 0.2f)) {
    std::cout << "             the fit did not converge to w=2, b=-1\n";
    ok = false;
  }

  // A contraction to its fixed point 2: x <- x/2 + 1.
  auto scalar = tj::jit([](const Array& v) { return v * 0.5f + 1; }, {.name = "scalar"});
  Array v(10.f);
  ok = soak("scalar", calls, warmup, [&] { v = scalar(v); }) && ok;
  if (v.item<float>() != 2.f) {
    std::cout << "             x/2 + 1 did not reach its fixed point 2: " << v.item<float>()
              << "\n";
    ok = false;
  }
  std::cout << absl::StrFormat("             update: %d compiles; scalar: %d compiles\n",
                               update.stats().compiles, scalar.stats().compiles);
  return ok;
}

void phase2(int64_t signatures) {
  auto make = [] {
    return tj::jit([](const Array& a) { return tj::sum(a * 2 + 1); }, {.name = "sig", .share_code = false});
  };
  std::optional<decltype(make())> f(make());
  const double rss0 = resident_bytes(), heap0 = heap_in_use_bytes();
  const int64_t maps0 = map_count();
  const int64_t avail0 = meminfo_kb("MemAvailable");
  auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  bool wrong = false;
  for (int64_t n = 1; n <= signatures; ++n) {
    Array out = (*f)(tj::ones({n}));
    wrong = wrong || out.item<float>() != static_cast<float>(3 * n);
    if (n % 1000 == 0 || n == signatures) {
      double rss = resident_bytes() - rss0;
      std::cout << absl::StrFormat(
          "  %6d signatures: %7.1f s, last batch %.2f ms/compile, RSS +%8.0f KiB (%.1f KiB per "
          "executable), heap +%.1f KiB per executable, +%d maps\n",
          n, seconds_since(t0),
          seconds_since(last) * 1e3 / static_cast<double>(std::min<int64_t>(n, 1000)), kib(rss),
          kib(rss) / static_cast<double>(n),
          kib(heap_in_use_bytes() - heap0) / static_cast<double>(n), map_count() - maps0);
      std::cout.flush();
      last = std::chrono::steady_clock::now();
    }
  }
  const double total_s = seconds_since(t0);
  const double grown = resident_bytes() - rss0, heap = heap_in_use_bytes() - heap0;
  const int64_t maps = map_count() - maps0;
  tj::JitStats s = f->stats();
  std::cout << absl::StrFormat(
      "%d signatures compiled in %.1f s (%.2f ms each: trace %.3f, passes %.3f, lower %.3f, "
      "llvm-opt %.3f, codegen %.3f); results %s\n"
      "  resident growth %.0f KiB = %.1f KiB per cached executable (heap in use %.1f KiB); %d new "
      "memory maps (%.2f per "
      "executable; vm.max_map_count caps the process)\n",
      s.compiles, total_s, total_s * 1e3 / static_cast<double>(signatures),
      s.trace_s * 1e3 / static_cast<double>(s.compiles),
      s.passes_s * 1e3 / static_cast<double>(s.compiles),
      s.lower_s * 1e3 / static_cast<double>(s.compiles),
      s.llvm_opt_s * 1e3 / static_cast<double>(s.compiles),
      s.codegen_s * 1e3 / static_cast<double>(s.compiles), wrong ? "WRONG" : "correct", kib(grown),
      kib(grown) / static_cast<double>(signatures), kib(heap) / static_cast<double>(signatures),
      maps, static_cast<double>(maps) / static_cast<double>(signatures));
  std::cout << absl::StrFormat("  MemAvailable %d MiB before, %d MiB after: memory %s\n",
                               avail0 / 1024, meminfo_kb("MemAvailable") / 1024,
                               meminfo_kb("MemAvailable") > 0 ? "not exhausted" : "unknown");
  auto t1 = std::chrono::steady_clock::now();
  f.reset();  // drops the cache and its executables
  const double destroy_ms = seconds_since(t1) * 1e3;
  const double heap_left = heap_in_use_bytes() - heap0, rss_left = resident_bytes() - rss0;
  malloc_trim(0);  // glibc keeps freed pages; this shows what it can give back
  std::cout << absl::StrFormat(
      "  after destroying the jitted function (%.0f ms): heap in use %+.0f KiB, %+d maps over the "
      "start; RSS %+.0f KiB, after malloc_trim %+.0f KiB\n",
      destroy_ms, kib(heap_left), map_count() - maps0, kib(rss_left), kib(resident_bytes() - rss0));
}

// Compiles and destroys `cycles` jitted functions (each a new tj::jit): what each cycle leaves
// behind in the heap once its executable is freed.
void phase3(int64_t cycles) {
  Array x(1.f);
  auto cycle = [&] {
    auto f = tj::jit([](const Array& a) { return a * 2 + 1; }, {.name = "cycle", .share_code = false});
    return f(x).item<float>();
  };
  for (int i = 0; i < 100; ++i) cycle();  // warm-up: LLVM's one-time state
  const double heap0 = heap_in_use_bytes(), rss0 = resident_bytes();
  auto t0 = std::chrono::steady_clock::now();
  bool wrong = false;
  for (int64_t i = 0; i < cycles; ++i) wrong = cycle() != 3.f || wrong;
  std::cout << absl::StrFormat(
      "%d compile-and-destroy cycles in %.1f s: heap in use %+.0f bytes per cycle, RSS %+.0f KiB "
      "in all; results %s\n",
      cycles, seconds_since(t0), (heap_in_use_bytes() - heap0) / static_cast<double>(cycles),
      kib(resident_bytes() - rss0), wrong ? "WRONG" : "correct");
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Phase 1 measures the steady state, phases 2 and 3 what each optimized compile keeps: no
  // background compiles in their windows (unless TRACEJIT_TIERED is set otherwise).
  setenv("TRACEJIT_TIERED", "0", 0);
  const int64_t calls = absl::GetFlag(FLAGS_calls), warmup = absl::GetFlag(FLAGS_warmup);
  bool ok = phase1(calls, warmup);
  if (const int64_t n = absl::GetFlag(FLAGS_signatures); n > 0) phase2(n);
  if (const int64_t n = absl::GetFlag(FLAGS_cycles); n > 0) phase3(n);
  std::cout << (ok ? "soak: ok" : "soak: FAILED") << "\n";
  return ok ? 0 : 1;
}

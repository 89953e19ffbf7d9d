// The jit runtime (src/runtime): dump files that stay inside their directory, traces that run
// under no lock (a trace may call its own function on another thread), and the bounded cache.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "external_tools.h"
#include "runtime/dumps.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
namespace fs = std::filesystem;
using tj::Array;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

using Fn = std::function<Array(const Array&)>;

std::vector<float> vec(const Array& a) { return a.to_vector<float>(); }

// A fresh directory for one test, removed with it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("tracejit-runtime-" + tag + "-" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Sets TRACEJIT_DUMP_DIR for one scope.
struct DumpDir {
  explicit DumpDir(const fs::path& dir) { setenv("TRACEJIT_DUMP_DIR", dir.c_str(), 1); }
  ~DumpDir() { unsetenv("TRACEJIT_DUMP_DIR"); }
};

std::vector<std::string> file_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Runs `work` on another thread and fails, rather than hangs, when it does not finish within
// `limit`: the stuck thread cannot be joined, so the process ends there with the failure.
void finishes_within(std::chrono::seconds limit, std::function<void()> work) {
  std::future<void> done = std::async(std::launch::async, std::move(work));
  if (done.wait_for(limit) == std::future_status::timeout) {
    std::cerr << "FAILED: " << testing::UnitTest::GetInstance()->current_test_info()->name()
              << " did not finish within " << limit.count() << " s (a deadlock)\n";
    new std::future<void>(std::move(done));  // its destructor would wait for the stuck thread
    std::_Exit(1);
  }
  done.get();  // rethrows what the work threw
}

TEST(JitRuntimeDumps, FileNamesAreSafe) {
  using tj::detail::dump_file_name;
  EXPECT_EQ(dump_file_name("triple"), "triple");
  EXPECT_EQ(dump_file_name("ok.name-1_2"), "ok.name-1_2");
  EXPECT_EQ(dump_file_name("a b/c\\d"), "a_b_c_d");
  EXPECT_EQ(dump_file_name(""), "jit");
  EXPECT_EQ(dump_file_name("x."), "x_");
  EXPECT_EQ(dump_file_name(std::string(300, 'a')), std::string(100, 'a'));
  for (const char* hostile : {"../../x", "..", ".", ".hidden", "a/../../b", "/etc/passwd", "a..b"}) {
    std::string n = dump_file_name(hostile);
    EXPECT_FALSE(n.empty()) << hostile;
    EXPECT_EQ(n.find('/'), std::string::npos) << hostile;
    EXPECT_EQ(n.find(".."), std::string::npos) << hostile;
    EXPECT_NE(n.front(), '.') << hostile;
  }
}

TEST(JitRuntimeDumps, EscapingNameWritesOnlyInsideTheDumpDir) {
  TempDir root("escape");
  const fs::path dir = root.path / "dumps" / "inner";
  {
    DumpDir env(dir);
    auto f = tj::jit([](const Array& x) { return x * 3; }, {.name = "../../x"});
    EXPECT_EQ(vec(f(tj::ones({4}))), (std::vector<float>{3, 3, 3, 3}));
  }
  std::vector<std::string> outside;
  for (const auto& e : fs::recursive_directory_iterator(root.path))
    if (!e.is_directory() && e.path().parent_path() != dir) outside.push_back(e.path());
  EXPECT_THAT(outside, testing::IsEmpty());
  EXPECT_EQ(file_names(root.path), std::vector<std::string>{"dumps"});
  EXPECT_EQ(file_names(root.path / "dumps"), std::vector<std::string>{"inner"});
  std::vector<std::string> names = file_names(dir);
  ASSERT_EQ(names.size(), tracejit_test::dump_files_per_compilation());
  for (const std::string& n : names) {
    EXPECT_NE(n.front(), '.') << n;
    EXPECT_THAT(n, Not(HasSubstr(".."))) << n;
  }
}

TEST(JitRuntimeDumps, SymlinkAtTheTargetNameIsNotFollowed) {
  TempDir root("symlink");
  const fs::path dir = root.path / "dumps";
  const fs::path target = root.path / "target.txt";
  std::ofstream(target) << "untouched\n";
  DumpDir env(dir);
  // A first compilation shows the sequence number the next one takes.
  tj::jit([](const Array& x) { return x + 1; }, {.name = "probe"})(tj::ones({2}));
  std::vector<std::string> probe = file_names(dir);
  ASSERT_EQ(probe.size(), tracejit_test::dump_files_per_compilation());
  const int seq = std::stoi(probe[0].substr(std::string("probe.").size(), 4));
  char next[16];
  std::snprintf(next, sizeof next, "%04d", seq + 1);
  for (const char* suffix : {".traced.txt", ".optimized.txt", ".ll", ".opt.ll", ".s", ".traced.dot",
                             ".optimized.dot", ".traced.svg", ".optimized.svg"})
    fs::create_symlink(target, dir / (std::string("victim.") + next + suffix));

  auto f = tj::jit([](const Array& x) { return x * 2; }, {.name = "victim"});
  testing::internal::CaptureStderr();
  Array y = f(tj::ones({3}));
  Array z = f(tj::ones({5}));  // a second compilation in that directory: no second warning
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(vec(y), (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(vec(z), (std::vector<float>(5, 2)));
  std::ifstream in(target);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "untouched\n");
  EXPECT_EQ(count(err, "[jit] warning"), 1) << err;
  EXPECT_THAT(err, HasSubstr("cannot write dump file victim."));
  EXPECT_TRUE(fs::is_symlink(dir / (std::string("victim.") + next + ".traced.txt")));
}

// The trace of f for f32[3] calls f for f32[4] on a helper thread and joins it: with the
// compile lock held while tracing, the helper waited for the lock forever.
TEST(JitRuntimeLiveness, TraceCallsItsOwnFunctionWithANewSignatureOnAnotherThread) {
  finishes_within(std::chrono::seconds(60), [] {
    Fn self;
    auto f = tj::jit([&self](const Array& x) {
      if (x.shape()[0] != 3) return x * 2;
      float side = 0;
      std::thread helper([&] { side = tj::sum(self(tj::ones({4}))).item<float>(); });
      helper.join();
      return x * 2 + side;
    });
    self = f;
    EXPECT_EQ(vec(f(tj::ones({3}))), (std::vector<float>{10, 10, 10}));
    EXPECT_EQ(vec(f(tj::ones({4}))), (std::vector<float>{2, 2, 2, 2}));
    EXPECT_EQ(f.stats().traces, 2);
    EXPECT_EQ(f.stats().cache_hits, 1);
  });
}

// f's trace calls g on a helper thread, whose trace calls f (with another signature) on another.
TEST(JitRuntimeLiveness, TwoFunctionsCallEachOtherOnHelperThreads) {
  finishes_within(std::chrono::seconds(60), [] {
    Fn call_f, call_g;
    auto on_helper = [](const Fn& fn, int64_t n) {
      float s = 0;
      std::thread helper([&] { s = tj::sum(fn(tj::ones({n}))).item<float>(); });
      helper.join();
      return s;
    };
    auto f = tj::jit([&](const Array& x) {
      return x.shape()[0] == 3 ? x * 2 + on_helper(call_g, 5) : x * 2;  // 2 + 5 * 10
    });
    auto g = tj::jit([&](const Array& y) { return y + 1 + on_helper(call_f, 4); });  // 1 + 1 + 8
    call_f = f;
    call_g = g;
    EXPECT_EQ(vec(f(tj::ones({3}))), (std::vector<float>{52, 52, 52}));
    EXPECT_EQ(vec(g(tj::ones({5}))), (std::vector<float>(5, 10)));
    EXPECT_EQ(f.stats().traces, 2);
    EXPECT_EQ(g.stats().traces, 1);
  });
}

// Threads that ask at once for a signature nobody has compiled wait for one trace of it: the
// body's side effects run once, and the others count cache hits.
TEST(JitRuntimeLiveness, ConcurrentFirstCallsTraceOnce) {
  finishes_within(std::chrono::seconds(60), [] {
    constexpr int kThreads = 6;
    std::atomic<int> bodies{0};
    auto f = tj::jit([&](const Array& x) {
      ++bodies;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the others arrive
      return x - 1;
    });
    std::latch start(kThreads);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] {
        start.arrive_and_wait();
        if (vec(f(tj::ones({7}))) != std::vector<float>(7, 0)) ++wrong;
      });
    for (std::thread& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(bodies.load(), 1);
    EXPECT_EQ(f.stats().traces, 1);
    EXPECT_EQ(f.stats().cache_hits, kThreads - 1);
  });
}

// A trace that throws lets a thread waiting for the same signature trace it in turn.
TEST(JitRuntimeLiveness, AFailedTraceWakesTheThreadsWaitingForIt) {
  finishes_within(std::chrono::seconds(60), [] {
    std::atomic<int> bodies{0};
    auto f = tj::jit([&](const Array& x) {
      if (bodies++ == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        throw tj::Error("first trace fails");
      }
      return x + 1;
    });
    std::latch start(2);
    std::vector<std::string> outcome(2);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        try {
          outcome[t] = std::to_string(f(Array(1.f)).item<float>());
        } catch (const tj::Error& e) {
          outcome[t] = e.what();
        }
      });
    for (std::thread& th : threads) th.join();
    std::sort(outcome.begin(), outcome.end());
    EXPECT_EQ(outcome[0], "2.000000");
    EXPECT_THAT(outcome[1], HasSubstr("first trace fails"));
    EXPECT_EQ(f.stats().traces, 1);
  });
}

// max 2, calls A B C A B C C B: each of the first six misses (the one it needs was the least
// recently used, so it was evicted); the last two hit.
TEST(JitRuntimeCache, LeastRecentlyUsedSignatureIsEvicted) {
  auto f = tj::jit([](const Array& x) { return x * 2 + 1; },
                   {.name = "alt", .explain_retraces = true, .max_cached_signatures = 2});
  std::string err;
  for (int64_t n : {1, 2, 3, 1, 2, 3, 3, 2}) {
    testing::internal::CaptureStderr();
    Array y = f(tj::ones({n}));
    err += testing::internal::GetCapturedStderr();
    EXPECT_EQ(vec(y), std::vector<float>(static_cast<size_t>(n), 3)) << n;
  }
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.traces, 6);
  EXPECT_EQ(s.compiles + s.shared_hits, 6);  // a retrace after eviction finds its code shared
  EXPECT_EQ(s.evictions, 4);
  EXPECT_EQ(s.cache_hits, 2);
  EXPECT_THAT(err, HasSubstr("'alt' is traced again (retrace 1) because its arguments differ from "
                             "the nearest cached signature:\n  arg 0: f32[1] -> f32[2]"));
  EXPECT_THAT(err, HasSubstr("'alt' is traced again (retrace 3) because its signature was evicted "
                             "from the cache (max_cached_signatures = 2)"));
  EXPECT_EQ(count(err, "was evicted from the cache"), 3) << err;
}

// A use refreshes a signature: A B A C evicts B (least recently used), not A (first cached).
TEST(JitRuntimeCache, ACallKeepsItsSignatureCached) {
  auto f = tj::jit([](const Array& x) { return tj::sum(x); }, {.max_cached_signatures = 2});
  for (int64_t n : {1, 2, 1, 3, 1, 2}) EXPECT_EQ(f(tj::ones({n})).item<float>(), float(n));
  tj::JitStats s = f.stats();
  EXPECT_EQ(s.traces, 4);  // 1, 2, 3, and 2 again
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.cache_hits, 2);
}

TEST(JitRuntimeCache, DefaultBoundAndNoBound) {
  EXPECT_EQ(tj::JitOptions{}.max_cached_signatures, 256);
  auto f = tj::jit([](const Array& x) { return x + 1; }, {.max_cached_signatures = 0});
  for (int round = 0; round < 2; ++round)
    for (int64_t n = 1; n <= 4; ++n) f(tj::ones({n}));
  EXPECT_EQ(f.stats().traces, 4);
  EXPECT_EQ(f.stats().evictions, 0);
}

// Threads cycling through more signatures than the cache keeps: entries are evicted while
// other threads run them, and every result stays right.
TEST(JitRuntimeCache, EvictionWhileOtherThreadsCall) {
  constexpr int kThreads = 4;
  auto f = tj::jit([](const Array& x) { return x * 3; }, {.max_cached_signatures = 2});
  std::latch start(kThreads);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < 12; ++i) {
        const int64_t n = 1 + (t + i) % 4;
        if (vec(f(tj::ones({n}))) != std::vector<float>(static_cast<size_t>(n), 3)) ++wrong;
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  tj::JitStats s = f.stats();
  const int64_t got_code = s.compiles + s.shared_hits;  // evicted signatures find shared code
  EXPECT_EQ(s.traces, got_code);
  EXPECT_EQ(s.evictions, got_code - 2);  // the cache ends full
  EXPECT_EQ(got_code + s.cache_hits, kThreads * 12);
}

}  // namespace

// The seed's first half: a stateful Counter under jit prints 1 1 1, because its increment ran
// once, at trace time, and the result was baked into the compiled code; CounterV2 threads the
// state through arguments and results and prints 1 2 3 jitted or not.
#include <iostream>
#include <tuple>

#include "demo.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using tj::Array;

namespace {

struct Counter {
  int n = 0;
  int count() { return n += 1; }
  void reset() { n = 0; }
};

struct CounterV2 {
  std::tuple<Array, Array> count(Array n) { return {n + 1, n + 1}; }
  Array reset() { return Array(0); }
};

}  // namespace

namespace demo {

int run_counter() {
  std::cout << "== Counter: state kept as a side effect\n";
  Counter counter;
  for (int i = 0; i < 3; ++i) std::cout << counter.count() << "\n";

  std::cout << "\n== jit(Counter::count)\n" << std::flush;
  counter.reset();
  auto fast_count = tj::jit([&] { return counter.count(); }, {.name = "fast_count"});
  for (int i = 0; i < 3; ++i) std::cout << fast_count() << "\n" << std::flush;
  Counter fresh;  // tracing runs count() again, so show the IR of a trace on a fresh counter
  std::cout << "The increment ran once, while tracing; its result became a constant of the\n"
               "compiled code, which is all the function now does. Traced IR (of a fresh Counter):\n"
            << tj::make_ir([&] { return fresh.count(); })() << "\n";

  std::cout << "\n== CounterV2: state as an argument and a result\n";
  CounterV2 counter2;
  Array state = counter2.reset();
  for (int i = 0; i < 3; ++i) {
    auto [value, next] = counter2.count(state);
    state = next;
    std::cout << value << "\n";
  }

  std::cout << "\n== jit(CounterV2::count)\n";
  state = counter2.reset();
  auto fast_count2 = tj::jit([&](Array n) { return counter2.count(n); }, {.name = "fast_count2"});
  for (int i = 0; i < 3; ++i) {
    auto [value, next] = fast_count2(state);
    state = next;
    std::cout << value << "\n";
  }
  tj::JitStats s = fast_count2.stats();
  std::cout << "(traced " << s.traces << " time, compiled " << s.compiles << ", cache hits "
            << s.cache_hits << ")\n";
  return 0;
}

}  // namespace demo

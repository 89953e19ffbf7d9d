// Built against the installed package: traces, differentiates and jits a small function.
#include <tracejit/tracejit.h>

#include <cmath>
#include <iostream>

namespace tj = tracejit;

int main() {
  auto f = [](const tj::Array& x) { return tj::sum(x * x); };
  tj::Array x = tj::array({1.f, 2.f, 3.f});
  float value = tj::jit(f)(x).item<float>();             // 1 + 4 + 9
  std::vector<float> g = tj::grad(f)(x).to_vector<float>();  // 2x
  bool ok = value == 14.f && g == std::vector<float>{2.f, 4.f, 6.f};
  std::cout << (ok ? "consumer ok" : "consumer WRONG") << "\n";
  return ok ? 0 : 1;
}

// The seed's second half: fit y = w*x + b to noisy data with a jitted SGD step built from
// grad and tree_map, the parameters threaded through explicitly as a Params pytree.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "demo.h"
#include "tracejit/tracejit.h"

ABSL_FLAG(int, steps, 1000, "number of SGD steps");
ABSL_FLAG(double, lr, 0.005, "learning rate");
ABSL_FLAG(uint64_t, seed, 42, "PRNG seed of the data and the initial parameters");
ABSL_FLAG(std::string, threefry, "partitionable",
          "threefry scheme: partitionable (JAX >= 0.5 default) or original (the notebook's)");
ABSL_FLAG(std::string, plot, "regression.svg", "where to write the figure (SVG)");

namespace tj = tracejit;
using tj::Array;

namespace {

struct Params {
  Array weight;
  Array bias;
};
TRACEJIT_PYTREE(Params, weight, bias);

Params init(const Array& rng) {
  Array keys = tj::random::split(rng);
  return {tj::random::normal(keys[0], {}), tj::random::normal(keys[1], {})};
}

Array loss(const Params& p, const Array& x, const Array& y) {
  Array pred = p.weight * x + p.bias;
  return tj::mean(tj::square(pred - y));
}

}  // namespace

namespace demo {

int run_regression() {
  const int steps = absl::GetFlag(FLAGS_steps);
  const float learning_rate = static_cast<float>(absl::GetFlag(FLAGS_lr));
  const std::string scheme = absl::GetFlag(FLAGS_threefry);
  const std::string plot = absl::GetFlag(FLAGS_plot);
  if (steps < 0) {
    std::cerr << "tracejit-demo: --steps must be non-negative, got " << steps << "\n";
    return kUsageError;
  }
  if (scheme != "partitionable" && scheme != "original") {
    std::cerr << "tracejit-demo: --threefry must be partitionable or original, got '" << scheme << "'\n";
    return kUsageError;
  }
  if (!std::ofstream(plot)) {  // fail before the work, not after it
    std::cerr << "tracejit-demo: cannot write the plot to '" << plot
              << "': " << std::strerror(errno)
              << "; pass --plot with a path in a writable directory\n";
    return kUsageError;
  }
  tj::random::set_threefry_partitionable(scheme == "partitionable");

  auto update = tj::jit(
      [&](const Params& params, const Array& x, const Array& y) {
        Params g = tj::grad(loss)(params, x, y);
        return tj::tree_map([&](const Array& p, const Array& d) { return p - d * learning_rate; },
                            params, g);
      },
      {.name = "update"});

  // The data, drawn as the notebook draws it: y = 2x - 1 + noise.
  Array rng = tj::random::key(absl::GetFlag(FLAGS_seed));
  Array keys = tj::random::split(rng);
  Array xs = tj::random::normal(keys[0], {128, 1});
  Array noise = tj::random::normal(keys[1], {128, 1}) * 0.5f;
  Array ys = xs * 2 + (-1) + noise;

  Params params = init(rng);
  auto t0 = std::chrono::steady_clock::now();
  if (steps > 0) params = update(params, xs, ys);  // traces and compiles
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 1; i < steps; ++i) params = update(params, xs, ys);
  auto t2 = std::chrono::steady_clock::now();

  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  float w = params.weight.item<float>(), b = params.bias.item<float>();
  std::cout << absl::StrFormat("weight=%.6f bias=%.6f loss=%.6f\n", w, b,
                               loss(params, xs, ys).item<float>());
  tj::JitStats s = update.stats();
  std::cout << absl::StrFormat(
      "steps=%d  time per step=%.2f us  first call (trace+compile)=%.2f ms  "
      "[trace %.2f, passes %.2f, lower %.2f, llvm-opt %.2f, codegen %.2f ms]\n",
      steps, steps > 1 ? secs(t1, t2) / (steps - 1) * 1e6 : 0.0, secs(t0, t1) * 1e3,
      s.trace_s * 1e3, s.passes_s * 1e3, s.lower_s * 1e3, s.llvm_opt_s * 1e3, s.codegen_s * 1e3);
  if (!write_regression_svg(plot, xs.to_vector<float>(), ys.to_vector<float>(), w, b)) {
    std::cerr << "tracejit-demo: cannot write the plot to '" << plot << "'\n";
    return kUsageError;
  }
  std::cout << "plot written to " << plot << "\n";
  return 0;
}

}  // namespace demo

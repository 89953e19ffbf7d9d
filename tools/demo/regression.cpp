// The seed's second half: fit y = w*x + b to noisy data with a jitted SGD step built from
// grad and tree_map, the parameters threaded through explicitly as a Params pytree.
// --loop=step calls the jitted step once per step from C++ (the seed's loop); --loop=scan runs
// all the steps inside ONE jitted call, a tj::scan over the steps carrying Params, and times the
// step-per-call loop too, for the comparison. --data-parallel splits the points over the ranks
// of an mpirun job and averages the gradients: the same fit as one process.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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
ABSL_FLAG(bool, data_parallel, false,
          "run as one rank of an mpirun job: this rank fits its share of the points, and the "
          "gradients are averaged over the ranks each step (tj::distributed::average_gradients); "
          "rank 0 prints");
ABSL_FLAG(std::string, loop, "step",
          "where the training loop runs: step (one jitted SGD step per call from C++) or scan "
          "(all steps in one jitted call, a tj::scan over the steps)");

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
  const std::string loop = absl::GetFlag(FLAGS_loop);
  const bool data_parallel = absl::GetFlag(FLAGS_data_parallel);
  const tj::distributed::Group group =
      data_parallel ? tj::distributed::init() : tj::distributed::Group{};
  std::ostringstream quiet;  // what ranks other than 0 would print
  std::ostream& out = group.rank() == 0 ? std::cout : quiet;
  if (steps < 0) {
    std::cerr << "tracejit-demo: --steps must be non-negative, got " << steps << "\n";
    return kUsageError;
  }
  if (scheme != "partitionable" && scheme != "original") {
    std::cerr << "tracejit-demo: --threefry must be partitionable or original, got '" << scheme << "'\n";
    return kUsageError;
  }
  if (loop != "step" && loop != "scan") {
    std::cerr << "tracejit-demo: --loop must be step or scan, got '" << loop << "'\n";
    return kUsageError;
  }
  if (group.rank() == 0 && !std::ofstream(plot)) {  // fail before the work, not after it
    std::cerr << "tracejit-demo: cannot write the plot to '" << plot
              << "': " << std::strerror(errno)
              << "; pass --plot with a path in a writable directory\n";
    return kUsageError;
  }
  tj::random::set_threefry_partitionable(scheme == "partitionable");

  // One SGD step: the body of both loops.
  auto sgd_step = [learning_rate, data_parallel](const Params& params, const Array& x,
                                                 const Array& y) {
    Params g = tj::grad(loss)(params, x, y);
    if (data_parallel) g = tj::distributed::average_gradients(g);  // one all-reduce of 8 bytes
    return tj::tree_map([&](const Array& p, const Array& d) { return p - d * learning_rate; },
                        params, g);
  };
  auto update = tj::jit(sgd_step, {.name = "update"});
  // All the steps in one call: a scan of `steps` steps over no xs, carrying Params; x and y are
  // arguments of the jitted function, captured by the scan body.
  auto train = tj::jit(
      [&](const Params& params, const Array& x, const Array& y) {
        auto body = [&](const Params& p, const std::tuple<>&) {
          return std::pair{sgd_step(p, x, y), std::tuple<>{}};
        };
        return tj::scan(body, params, std::tuple<>{}, tj::ScanOptions{.length = steps}).first;
      },
      {.name = "train"});

  // The data, drawn as the notebook draws it: y = 2x - 1 + noise.
  Array rng = tj::random::key(absl::GetFlag(FLAGS_seed));
  Array keys = tj::random::split(rng);
  Array xs = tj::random::normal(keys[0], {128, 1});
  Array noise = tj::random::normal(keys[1], {128, 1}) * 0.5f;
  Array ys = xs * 2 + (-1) + noise;
  const Params start = init(rng);
  // This rank's share of the points (all of them in one process): equal shares, so the average
  // of the ranks' mean losses is the mean loss over all the points.
  const int64_t lo = 128 * group.rank() / group.size(),
                hi = 128 * (group.rank() + 1) / group.size();
  const Array x_part = tj::slice(xs, {lo, 0}, {hi, 1}), y_part = tj::slice(ys, {lo, 0}, {hi, 1});

  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  auto phases = [](const tj::JitStats& s) {
    return absl::StrFormat("[trace %.2f, passes %.2f, lower %.2f, llvm-opt %.2f, codegen %.2f ms]",
                           s.trace_s * 1e3, s.passes_s * 1e3, s.lower_s * 1e3,
                           s.llvm_opt_s * 1e3, s.codegen_s * 1e3);
  };

  // The seed's loop: one jitted call per step. The first call traces and compiles; the time
  // per step is over the other steps - 1 calls.
  Params stepped = start;
  auto t0 = std::chrono::steady_clock::now();
  if (steps > 0) stepped = update(stepped, x_part, y_part);  // traces and compiles
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 1; i < steps; ++i) stepped = update(stepped, x_part, y_part);
  auto t2 = std::chrono::steady_clock::now();
  const double step_first_s = secs(t0, t1);
  const double step_per_step_s = steps > 1 ? secs(t1, t2) / (steps - 1) : 0.0;

  constexpr int kRepeats = 3;
  Params params = stepped;
  double scan_first_s = 0, scan_per_step_s = 0, step_best_s = 0;
  if (loop == "scan") {
    // The first call traces, compiles and runs all the steps. Then both loops, warm, are timed
    // from the same start kRepeats times each, and the best of each is kept (the machine may be
    // shared; a one-shot time of a millisecond is easily disturbed).
    auto s0 = std::chrono::steady_clock::now();
    params = train(start, x_part, y_part);
    scan_first_s = secs(s0, std::chrono::steady_clock::now());
    for (int r = 0; r < kRepeats && steps > 0; ++r) {
      auto a = std::chrono::steady_clock::now();
      params = train(start, x_part, y_part);
      auto b = std::chrono::steady_clock::now();
      Params p = start;
      for (int i = 0; i < steps; ++i) p = update(p, x_part, y_part);
      auto c = std::chrono::steady_clock::now();
      double scan_s = secs(a, b) / steps, step_s = secs(b, c) / steps;
      scan_per_step_s = r == 0 ? scan_s : std::min(scan_per_step_s, scan_s);
      step_best_s = r == 0 ? step_s : std::min(step_best_s, step_s);
    }
  }

  float w = params.weight.item<float>(), b = params.bias.item<float>();
  out << absl::StrFormat("weight=%.6f bias=%.6f loss=%.6f\n", w, b,
                               loss(params, xs, ys).item<float>());
  if (loop == "step") {
    out << absl::StrFormat(
        "steps=%d  time per step=%.2f us  first call (trace+compile)=%.2f ms  %s\n", steps,
        step_per_step_s * 1e6, step_first_s * 1e3, phases(update.stats()));
  } else {
    out << absl::StrFormat(
        "steps=%d  time per step=%.3f us in one jitted scan (one call of all steps: %.3f ms, "
        "best of %d)  first call (trace+compile+run)=%.2f ms  %s\n",
        steps, scan_per_step_s * 1e6, scan_per_step_s * steps * 1e3, kRepeats, scan_first_s * 1e3,
        phases(train.stats()));
    const bool same = std::bit_cast<uint32_t>(stepped.weight.item<float>()) ==
                          std::bit_cast<uint32_t>(w) &&
                      std::bit_cast<uint32_t>(stepped.bias.item<float>()) ==
                          std::bit_cast<uint32_t>(b);
    const std::string timing =
        steps == 0 ? std::string("not timed (--steps=0)")
        : step_best_s >= scan_per_step_s
            ? absl::StrFormat("%.2f us per step, so the scan is %.1fx faster per step",
                              step_best_s * 1e6, step_best_s / scan_per_step_s)
            : absl::StrFormat("%.2f us per step, so the scan is %.1fx slower per step (its "
                              "fixed cost per call is not spread over enough steps)",
                              step_best_s * 1e6, scan_per_step_s / step_best_s);
    out << absl::StrFormat(
        "step-per-call loop for comparison (the seed's loop, %d jitted call%s, best of %d, "
        "same process): %s; weight and bias %s\n",
        steps, steps == 1 ? "" : "s", kRepeats, timing,
        same ? "identical (bit for bit)"
             : absl::StrFormat("DIFFER: step-per-call gives weight=%.6f bias=%.6f",
                               stepped.weight.item<float>(), stepped.bias.item<float>()));
  }
  if (data_parallel) {
    // The all-reduce alone, as each step's host step runs it (the type exchange, then the sum
    // of the packed 8-byte gradient), timed one call at a time: the median shows the transport,
    // the mean adds the waits for a rank the scheduler has set aside on a busy machine.
    constexpr int kSamples = 1000;
    std::vector<double> samples;
    const Array packed = tj::zeros({2});
    double total_s = 0;
    for (int i = 0; i < kSamples; ++i) {
      auto a = std::chrono::steady_clock::now();
      tj::distributed::all_sum(packed);
      samples.push_back(secs(a, std::chrono::steady_clock::now()));
      total_s += samples.back();
    }
    std::nth_element(samples.begin(), samples.begin() + kSamples / 2, samples.end());
    out << absl::StrFormat(
        "data parallel: %d rank%s, %d points each; per step one all-reduce of the 8-byte "
        "gradient: median %.2f us, mean %.2f us (%d calls)\n",
        group.size(), group.size() == 1 ? "" : "s", hi - lo, samples[kSamples / 2] * 1e6,
        total_s / kSamples * 1e6, kSamples);
  }
  if (group.rank() == 0 &&
      !write_regression_svg(plot, xs.to_vector<float>(), ys.to_vector<float>(), w, b)) {
    std::cerr << "tracejit-demo: cannot write the plot to '" << plot << "'\n";
    return kUsageError;
  }
  out << "plot written to " << plot << "\n";
  return 0;
}

}  // namespace demo

// tracejit-difftest --programs N --seed S [--max-eqns K] [--only jit|grad]: generates N random
// programs from seed S, runs the checks of checks.h on each, and reports every disagreement
// with the shrunk program's IR and listing; progress goes to stderr (progress.h). The last line is
// exactly "N programs, M mismatches"; the exit status is 0 only when M is 0.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "checks.h"
#include "evaluator.h"
#include "generator.h"
#include "progress.h"
#include "shrink.h"

ABSL_FLAG(int64_t, programs, 100, "number of programs to generate and check");
ABSL_FLAG(uint64_t, seed, 1, "seed of the run; program i is drawn from (seed, i)");
ABSL_FLAG(int, max_eqns, 12, "at most this many operations per program (before domain wrappers)");
ABSL_FLAG(std::string, only, "",
          "run only the jit checks (jit) or only the gradient checks (grad)");
ABSL_FLAG(int64_t, program, -1, "check only program number i of the seed (to reproduce a report)");
ABSL_FLAG(bool, shrink, true, "shrink each failing program to a minimal reproducer");
ABSL_FLAG(bool, verbose, false, "print each program's listing, and progress with counters");
ABSL_FLAG(bool, progress, true,
          "show progress on stderr: one self-updating line on a terminal, a line every 30 s "
          "otherwise (off with --verbose, which prints its own)");
ABSL_FLAG(bool, loops, true,
          "generate control flow: tj::cond, while_loop, fori_loop and scan, sometimes nested");

namespace difftest {
namespace {

// --verbose names programs slower than this.
constexpr double kSlowProgramSeconds = 0.5;
// --verbose names programs with more elements than this whose bounds were unknown (skipped).
constexpr int64_t kManyUnknown = 100;

// The generator's stream for program i of a run: independent of every other program, so one
// can be reproduced alone with --program.
uint64_t program_seed(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void report(const Program& p, const Mismatch& m, const CheckOptions& options, bool minimize,
            CheckStats& stats) {
  std::cout << "MISMATCH in program " << p.id << " (check " << m.check << "): " << m.detail << "\n";
  Program small = p;
  if (minimize) {
    CheckOptions one = options;
    one.only = m.check == "types" || m.check == "exception" ? "" : m.check;
    small = shrink(p, [&](const Program& q) {
      std::optional<Mismatch> r = check_program(q, one, stats);
      return r && r->check == m.check;
    });
    if (std::optional<Mismatch> r = check_program(small, one, stats))
      std::cout << "shrunk from " << p.num_ops() << " to " << small.num_ops()
                << " operations: " << r->detail << "\n";
  }
  std::cout << small.listing();
  try {
    auto [x, y] = make_args(small);
    std::cout << "traced IR:\n"
              << tj::make_ir(ProgramFn{std::make_shared<const Program>(small), std::nullopt})(x, y)
              << "\n";
  } catch (const std::exception& e) {
    std::cout << "(tracing failed: " << e.what() << ")\n";
  }
  std::cout << std::endl;
}

int run() {
  const int64_t n = absl::GetFlag(FLAGS_programs);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const std::string only = absl::GetFlag(FLAGS_only);
  if (!only.empty() && only != "jit" && only != "grad") {
    std::cerr << "tracejit-difftest: --only takes jit or grad, got '" << only << "'\n";
    return 2;
  }
  CheckOptions options{.jit = only != "grad", .grad = only != "jit"};
  GenOptions gen{.max_ops = absl::GetFlag(FLAGS_max_eqns), .loops = absl::GetFlag(FLAGS_loops)};
  const bool verbose = absl::GetFlag(FLAGS_verbose);
  CheckStats stats;
  std::map<std::string, int64_t> op_counts;  // how often each op was generated
  int64_t checked = 0, mismatches = 0;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const bool show_progress = absl::GetFlag(FLAGS_progress) && !verbose;
  const int64_t total = absl::GetFlag(FLAGS_program) >= 0 ? 1 : n;
  Progress progress(std::cerr, ::isatty(STDERR_FILENO) == 1, total);
  for (int64_t i = 0; i < n; ++i) {
    if (absl::GetFlag(FLAGS_program) >= 0 && i != absl::GetFlag(FLAGS_program)) continue;
    SeededRng rng(program_seed(seed, static_cast<uint64_t>(i)));
    Program p = generate(rng, gen, static_cast<uint64_t>(i));
    if (verbose) std::cout << p.listing();
    for_each_node(p, [&](const Node& node) { ++op_counts[op_name(node.op)]; });
    ++checked;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t unknown_before = stats.unknown;
    std::optional<Mismatch> m = check_program(p, options, stats);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (verbose && took > kSlowProgramSeconds)
      std::cerr << absl::StrFormat("[difftest] program %d took %.2f s\n", i, took);
    if (verbose && stats.unknown - unknown_before > kManyUnknown)
      std::cerr << absl::StrFormat("[difftest] program %d: %d elements with unknown bounds\n", i,
                                   stats.unknown - unknown_before);
    if (m) {
      ++mismatches;
      progress.clear();
      report(p, *m, options, absl::GetFlag(FLAGS_shrink), stats);
    }
    if (show_progress) progress.update(checked, mismatches, elapsed());
    if (verbose && (checked % 100 == 0 || i + 1 == n)) {
      const double s = elapsed();
      std::cerr << absl::StrFormat(
          "[difftest] %d programs in %.1f s: %d compiles, %d elements compared, %d unknown, "
          "%d gradient programs, %d finite-difference directions (%d unsettled), %d jvp "
          "directions, %d vmap programs, %d mismatches\n",
          checked, s, stats.compiles, stats.compared, stats.unknown, stats.grad_programs,
          stats.fd_directions, stats.fd_unsettled, stats.jvp_directions, stats.vmap_programs,
          mismatches);
    }
  }
  if (show_progress) progress.finish(checked, mismatches, elapsed());
  if (verbose) {
    std::cerr << "[difftest] operations generated:";
    for (const auto& [name, count] : op_counts) std::cerr << " " << name << " " << count;
    std::cerr << "\n";
  }
  std::cout << checked << " programs, " << mismatches << " mismatches" << std::endl;
  return mismatches == 0 ? 0 : 1;
}

}  // namespace
}  // namespace difftest

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tracejit-difftest --programs N --seed S [--max-eqns K] [--only jit|grad]");
  // Flag names are spelled with dashes on the command line (--max-eqns), underscores in abseil.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> argp;
  for (std::string& a : args) {
    if (a.rfind("--", 0) == 0)
      for (size_t i = 2; i < a.size() && a[i] != '='; ++i)
        if (a[i] == '-') a[i] = '_';
    argp.push_back(a.data());
  }
  absl::ParseCommandLine(static_cast<int>(argp.size()), argp.data());
  return difftest::run();
}

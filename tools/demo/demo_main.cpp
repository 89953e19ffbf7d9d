// tracejit-demo SUBCOMMAND [--flags]: `counter` and `regression` walk through the seed tutorial.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "demo.h"

ABSL_FLAG(std::string, dump_dir, "", "write every compilation's IR, LLVM IR and assembly here");

namespace {

constexpr const char* kUsage =
    "usage: tracejit-demo counter|regression [--flag=value ...]\n"
    "  counter     the seed's Counter: side effects run once at trace time, state threaded explicitly\n"
    "  regression  linear regression with a jitted, differentiated SGD step (--loop=scan: all\n"
    "              steps in one jitted tj::scan, timed against one call per step;\n"
    "              --data-parallel under mpirun: the points split over the ranks, gradients\n"
    "              averaged each step)\n"
    "  flags: --dump_dir (both); --steps --lr --seed --threefry --plot --loop --data_parallel\n"
    "  (regression); a bool flag alone means true\n";

// Parses --name=value and --name value with abseil's registered flags, so types, defaults and
// values' syntax come from ABSL_FLAG; a bad flag gives one line and exit status 2.
bool parse_flags(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      std::cerr << "tracejit-demo: unexpected argument '" << arg << "'\n";
      return false;
    }
    arg = arg.substr(2);
    std::string value;
    size_t eq = arg.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    for (char& c : arg)
      if (c == '-') c = '_';  // --dump-dir and --dump_dir both work
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(arg);
    std::string error;
    if (!flag) {
      std::cerr << "tracejit-demo: unknown flag --" << arg
                << " (flags: --dump_dir, --steps, --lr, --seed, --threefry, --plot, --loop, "
                   "--data_parallel)\n";
      return false;
    }
    if (!inline_value) {
      if (flag->IsOfType<bool>() && (i + 1 == args.size() || args[i + 1].rfind("--", 0) == 0)) {
        value = "true";  // --data-parallel
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        std::cerr << "tracejit-demo: flag --" << arg << " needs a value\n";
        return false;
      }
    }
    if (!flag->ParseFrom(value, &error)) {
      // absl's `error` repeats the value; the flag's help and default say what fits instead.
      std::cerr << "tracejit-demo: bad value '" << value << "' for --" << arg << " ("
                << flag->Help() << "); give e.g. --" << arg << "=" << flag->DefaultValue() << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? demo::kUsageError : 0;
  }
  std::string command = args[0];
  if (command != "counter" && command != "regression") {
    std::cerr << "tracejit-demo: unknown subcommand '" << command << "' (use counter or regression)\n";
    return demo::kUsageError;
  }
  if (!parse_flags({args.begin() + 1, args.end()})) return demo::kUsageError;
  std::string dump_dir = absl::GetFlag(FLAGS_dump_dir);
  if (!dump_dir.empty()) setenv("TRACEJIT_DUMP_DIR", dump_dir.c_str(), 1);  // as the env var does
  return command == "counter" ? demo::run_counter() : demo::run_regression();
}

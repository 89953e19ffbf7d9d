#include "runtime/diagnostics.h"

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/errors.h"
#include "base/array_impl.h"

namespace tracejit::detail {

bool env_flag(const char* name, std::string_view value) {
  const char* v = std::getenv(name);
  return v && std::string_view(v) == value;
}

bool outputs_are_constant(const ir::Function& fn) {
  if (fn.outputs.empty()) return false;
  std::vector<bool> dep(static_cast<size_t>(fn.num_vars()), false);
  for (ir::VarId v : fn.inputs) dep[static_cast<size_t>(v)] = true;
  for (const ir::Eqn& e : fn.eqns) {
    bool d = false;
    for (ir::VarId v : e.in) d = d || dep[static_cast<size_t>(v)];
    for (ir::VarId v : e.out) dep[static_cast<size_t>(v)] = d;
  }
  for (ir::VarId v : fn.outputs)
    if (dep[static_cast<size_t>(v)]) return false;
  return true;
}

void warn_constant_outputs(const std::string& name) {
  std::cerr << "[jit] warning: every output of '" << name
            << "' is a constant fixed at trace time: it depends on none of its arguments.\n"
               "  Side effects of the C++ body (counters, prints, reads of outside state) ran once, "
               "while tracing, and will not run again; later calls return the same values.\n"
               "  To keep state across calls, pass it in as an argument and return the new state "
               "(as CounterV2 does). Silence with JitOptions{.warn_constant_outputs = false}.\n";
}

void log_compile(const std::string& name, const FlatArgs& args, double trace_s, const PhaseTimes& times) {
  if (!env_flag("TRACEJIT_LOG", "compile")) return;
  std::vector<std::string> types;
  for (const Array& a : args.leaves) types.push_back(ir::type_str(a.impl()->type));
  std::cerr << absl::StrFormat(
      "[jit] compiled '%s' (%s): trace %.2f ms, passes %.2f ms, lower %.2f ms, llvm-opt %.2f ms, "
      "codegen %.2f ms\n",
      name, absl::StrJoin(types, ", "), trace_s * 1e3, times.passes_s * 1e3, times.lower_s * 1e3,
      times.llvm_opt_s * 1e3, times.codegen_s * 1e3);
}

bool explain_retraces(const JitOptions& options) {
  return options.explain_retraces || env_flag("TRACEJIT_EXPLAIN_RETRACES", "1");
}

bool over_retrace_limit(const JitOptions& options, int64_t retraces) {
  return options.max_retraces >= 0 && retraces > options.max_retraces;
}

std::string retrace_explanation(const std::string& name, int64_t retrace,
                                std::span<const Signature* const> cached, const Signature& sig) {
  const Signature* nearest = nullptr;
  size_t best = SIZE_MAX;
  for (const Signature* s : cached) {
    size_t d = signature_diff(*s, sig).size();
    if (d <= best) {  // on a tie the most recently used signature is the more telling one
      best = d;
      nearest = s;
    }
  }
  return absl::StrCat("'", name, "' is traced again (retrace ", retrace,
                      ") because its arguments differ from the nearest cached signature:\n  ",
                      absl::StrJoin(signature_diff(*nearest, sig), "\n  "));
}

std::string evicted_retrace_explanation(const std::string& name, int64_t retrace, int max_cached) {
  return absl::StrCat("'", name, "' is traced again (retrace ", retrace,
                      ") because its signature was evicted from the cache (max_cached_signatures = ",
                      max_cached, "): more signatures were called than the cache keeps, and this "
                      "one least recently; raise max_cached_signatures to keep them all compiled");
}

void raise_retrace_limit(const std::string& why, int max_retraces) {
  raise<Error>("jit", why, "\nThis exceeds max_retraces = ", max_retraces,
               ": keep shapes and dtypes fixed between calls, or raise the limit");
}

void log_retrace_cost(const std::string& name, double trace_s, double compile_s) {
  std::cerr << absl::StrFormat("[jit] the retrace of '%s' cost %.2f ms (trace %.2f, compile %.2f)\n",
                               name, (trace_s + compile_s) * 1e3, trace_s * 1e3, compile_s * 1e3);
}

}  // namespace tracejit::detail

#pragma once
// What jit tells the user on stderr or in an error: the constant-output warning, the
// TRACEJIT_LOG=compile line, and the retrace explanation and limit.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ir/ir.h"
#include "runtime/compile_pipeline.h"
#include "runtime/signature.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

/// True when the environment variable `name` is set to exactly `value`.
bool env_flag(const char* name, std::string_view value);

/// True when no output depends on an input: every output was fixed while tracing.
bool outputs_are_constant(const ir::Function& fn);
/// Warns on stderr that every output of `name` is a trace-time constant, and why that matters.
void warn_constant_outputs(const std::string& name);

/// When TRACEJIT_LOG=compile, prints one line with the argument types and each phase's time.
void log_compile(const std::string& name, const FlatArgs& args, double trace_s, const PhaseTimes& times);

/// Whether retraces are explained: JitOptions::explain_retraces or TRACEJIT_EXPLAIN_RETRACES=1.
bool explain_retraces(const JitOptions& options);
/// Whether the `retraces`-th retrace passes JitOptions::max_retraces.
bool over_retrace_limit(const JitOptions& options, int64_t retraces);
/// Why `name` is traced again (its `retrace`-th retrace) for `sig`: its differences from the
/// nearest of the signatures cached now (`cached`, least recently used first, not empty).
std::string retrace_explanation(const std::string& name, int64_t retrace,
                                std::span<const Signature* const> cached, const Signature& sig);
/// Why `name` is traced again for a signature that JitOptions::max_cached_signatures evicted.
std::string evicted_retrace_explanation(const std::string& name, int64_t retrace, int max_cached);
/// Throws the tj::Error of a retrace past the limit, with its explanation `why`.
[[noreturn]] void raise_retrace_limit(const std::string& why, int max_retraces);
/// Prints what a retrace cost, once it is compiled.
void log_retrace_cost(const std::string& name, double trace_s, double compile_s);

}  // namespace tracejit::detail

#pragma once
// tj::jit: trace once per signature, compile to native code, then call the compiled code.
#include <chrono>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "tracejit/detail/trace_fn.h"

namespace tracejit {

namespace detail {
class JitCache;
}

/// Options of a jitted function. Designated initializers follow this field order.
struct JitOptions {
  /// Names the function in dumps, logs and warnings; default: derived from the C++ type.
  std::string name;
  /// Warn once on stderr when every output of a trace is a constant fixed at trace time.
  bool warn_constant_outputs = true;
  /// Print why each retrace happened (also env TRACEJIT_EXPLAIN_RETRACES=1).
  bool explain_retraces = false;
  /// When non-negative, a trace beyond this many retraces throws tj::Error.
  int max_retraces = -1;
  /// Lets LLVM reassociate and contract float arithmetic (fast-math flags) in elementwise code.
  /// Off by default: compiled code follows IEEE semantics, as eager evaluation does.
  bool fast_math = false;
  /// How many signatures stay compiled; a new one beyond that evicts the least recently called
  /// (counted in JitStats::evictions; a later call with it traces again). 0 or less: no bound.
  int max_cached_signatures = 256;
  /// Keeps compiled code across processes in this directory (env TRACEJIT_CACHE_DIR when this
  /// is empty; README "Compile cache on disk"). Empty and no env: no disk cache.
  std::string cache_dir;
  /// Reuses code that another jit object in this process compiled from an equal optimized IR
  /// with equal options (counted in JitStats::shared_hits), instead of compiling it again.
  bool share_code = true;
  /// Compiles a new signature in two tiers: quick code (LLVM's light pipeline) for the first
  /// calls, while the fully optimized code compiles on a background thread and replaces it.
  /// Off: one optimized compile before the first call. Env TRACEJIT_TIERED=0 turns it off for
  /// every function; dumps (TRACEJIT_DUMP_DIR) and lower() always show the optimized code.
  bool tiered = true;
};

/// Counters and cumulative phase times (seconds) of a jitted function.
struct JitStats {
  int64_t traces = 0;
  int64_t compiles = 0;
  int64_t cache_hits = 0;
  double trace_s = 0;     // running the C++ function on tracers
  double passes_s = 0;    // IR passes and fusion
  double lower_s = 0;     // IR to LLVM IR
  double llvm_opt_s = 0;  // LLVM's optimization pipeline
  double codegen_s = 0;   // machine code, linking, symbol lookup
  int64_t evictions = 0;  // signatures dropped by JitOptions::max_cached_signatures
  // How each traced signature got its code: `compiles` counts those LLVM compiled for this
  // function (a tiered compile counts once, its quick tier's phase times above), `shared_hits`
  // those reusing code another jit object compiled in this process, `disk_hits` those loaded
  // from the disk cache. traces = compiles + shared_hits + disk_hits + traces inlined into
  // enclosing traces.
  int64_t disk_hits = 0;
  int64_t shared_hits = 0;
};

/// Every stage of one compilation, as text.
class Lowered {
 public:
  const std::string& ir() const { return ir_; }
  const std::string& optimized_ir() const { return optimized_ir_; }
  const std::string& llvm_ir() const { return llvm_ir_; }
  const std::string& optimized_llvm_ir() const { return optimized_llvm_ir_; }
  const std::string& assembly() const { return assembly_; }
  /// The fused plan as a Graphviz DOT digraph: a cluster per kernel with the equations it
  /// evaluates, host steps between them, loops and branches as clusters nesting their regions'
  /// plans. `make_ir(f)(args...).dot()` draws the traced program.
  const std::string& dot() const { return dot_; }

 private:
  friend class detail::JitCache;
  std::string ir_, optimized_ir_, llvm_ir_, optimized_llvm_ir_, assembly_, dot_;
};

namespace detail {

struct JitEntry;

/// The non-template half of a jitted function: its signature cache, the compiler pipeline
/// and the call into compiled code. Shared by copies of one Jitted.
class JitCache {
 public:
  JitCache(JitOptions options, std::string default_name);
  ~JitCache();

  const std::string& name() const { return name_; }
  /// The compiled entry for this signature, or null. Counts a cache hit when found. Allocates
  /// nothing; the entry stays valid while held, even if it is evicted meanwhile.
  std::shared_ptr<const JitEntry> find(const FlatArgs& args);
  /// The entry for the signature of `args`, calling `trace` (once per signature, under no lock:
  /// the trace may call this function again on any thread) and compiling when it is not cached.
  /// A thread asking for a signature that another thread is tracing waits for that trace, so
  /// each signature is traced once; when that trace fails, a waiting thread traces it itself.
  std::shared_ptr<const JitEntry> trace_and_add(const FlatArgs& args, absl::FunctionRef<TracedFn()> trace);
  /// Runs the compiled code on concrete leaves.
  std::vector<Array> run(const JitEntry& entry, std::span<const Array> leaves) const;
  const TreeDef& out_def(const JitEntry& entry) const;
  /// Records a trace made to inline this function into an enclosing trace.
  void count_inline_trace(double trace_s);
  Lowered lower(const TracedFn& traced) const;
  JitStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string name_;
};

double seconds_since(std::chrono::steady_clock::time_point t0);

}  // namespace detail

/// The callable tj::jit returns. Copies share one cache.
template <class F>
class Jitted {
 public:
  Jitted(F f, JitOptions options)
      : f_(std::make_shared<F>(std::move(f))),
        cache_(std::make_shared<detail::JitCache>(std::move(options),
                                                  detail::default_function_name(typeid(F).name()))) {}

  /// Calls the compiled code (tracing and compiling first for a new signature). Inside another
  /// trace (jit of jit, grad of jit) it records a call of f's IR into that trace instead.
  template <class... Args>
  detail::arrayified_t<detail::result_t<F, Args...>> operator()(const Args&... args) const {
    using R = detail::arrayified_t<detail::result_t<F, Args...>>;
    detail::FlatArgs flat = detail::flatten_args(args...);
    if (detail::tracing()) {
      auto t0 = std::chrono::steady_clock::now();
      detail::TracedFn t = detail::trace_fn<Args...>(*f_, cache_->name(), flat);
      cache_->count_inline_trace(detail::seconds_since(t0));
      std::vector<Array> outs = detail::bind_call(cache_->name(), std::move(t.traced), flat.leaves);
      return tree_unflatten<R>(t.out_def, outs);
    }
    std::shared_ptr<const detail::JitEntry> entry = cache_->find(flat);
    if (!entry)
      entry = cache_->trace_and_add(flat, [&] { return detail::trace_fn<Args...>(*f_, cache_->name(), flat); });
    return tree_unflatten<R>(cache_->out_def(*entry), cache_->run(*entry, flat.leaves));
  }

  /// Traces and compiles for these arguments, keeping every stage's text.
  template <class... Args>
  Lowered lower(const Args&... args) const {
    detail::FlatArgs flat = detail::flatten_args(args...);
    return cache_->lower(detail::trace_fn<Args...>(*f_, cache_->name(), flat));
  }

  JitStats stats() const { return cache_->stats(); }

 private:
  std::shared_ptr<F> f_;
  std::shared_ptr<detail::JitCache> cache_;
};

/// Compiles `f` to native code on first call per signature (pytree structure, shapes and
/// dtypes of the leaves). Side effects of f happen only while tracing; C++ values f reads are
/// baked into the compiled code as constants.
template <class F>
Jitted<std::decay_t<F>> jit(F&& f, JitOptions options = {}) {
  return Jitted<std::decay_t<F>>(std::forward<F>(f), std::move(options));
}

}  // namespace tracejit

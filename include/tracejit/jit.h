#pragma once
// tj::jit: trace once per signature, compile to native code, then call the compiled code.
#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <tuple>

#include "absl/container/inlined_vector.h"
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
  /// call; the second call compiles the optimized code (the full pipeline and -O2 machine code,
  /// which a single compile skips for latency) and swaps it in. The tiers agree bit for bit; a
  /// program with a float sum starts on the single compile's code instead of quick code. Off
  /// (the default): one compile before the first call (README "Two tiers"). Env
  /// TRACEJIT_TIERED=1 turns it on and TRACEJIT_TIERED=0 off for every function; dumps
  /// (TRACEJIT_DUMP_DIR), lower() and a disk cache (cache_dir) always use the single compile.
  bool tiered = false;
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

namespace detail {

struct JitEntry;

/// What lowering one signature gives: every stage's text, and the compiled entry that
/// Lowered::compile() hands to a tj::Compiled (so compile() does not compile again).
struct LoweredParts {
  std::string ir, optimized_ir, llvm_ir, optimized_llvm_ir, assembly, dot;
  std::string name;
  std::shared_ptr<const JitEntry> entry;
};

/// The number of results of an entry's executable and their structure.
size_t num_outputs(const JitEntry& entry);
const TreeDef& out_def(const JitEntry& entry);
/// Runs an entry's executable on leaves whose types the caller has checked against the
/// entry's signature, moving its results into outputs[0 .. num_outputs(entry)).
void run_checked_leaves(const JitEntry& entry, const Array* const* leaves, Array* outputs);
/// Compiled's check of one call: every leaf is a concrete array (not a tracer: TracerLeakError,
/// or tj::Error inside a trace) of the dtype and shape it was compiled for, else TypeError
/// naming the leaf's path. `leaves` laid out as the entry's signature.
void check_compiled_leaves(const JitEntry& entry, const std::string& name,
                           const Array* const* leaves, size_t count);
/// The same for arguments whose structure is known only at run time: also compares each
/// argument's TreeDef with the compiled one (TypeError naming the argument and both trees).
void check_compiled_args(const JitEntry& entry, const std::string& name, const FlatArgs& args);

/// Runs `entry` on `leaves` and rebuilds its results as an R.
template <class R>
R run_entry(const JitEntry& entry, const Array* const* leaves) {
  if constexpr (static_trees_v<R>) {
    constexpr size_t n = static_leaf_count<R>();
    std::array<Array, n> outs;
    run_checked_leaves(entry, leaves, outs.data());
    Array* in = outs.data();
    return build_static<R>(in);
  } else {
    std::vector<Array> outs(num_outputs(entry));
    run_checked_leaves(entry, leaves, outs.data());
    return tree_unflatten<R>(out_def(entry), outs);
  }
}

/// The addresses of a FlatArgs' leaves, in order.
absl::InlinedVector<const Array*, 16> leaf_pointers(const FlatArgs& args);

}  // namespace detail

/// A jitted function compiled for exactly one signature (`jitted.lower(args...).compile()`):
/// a call checks each leaf's dtype and shape against that signature, then runs the compiled
/// code, with no cache lookup. A call with another signature throws tj::TypeError naming the
/// leaf. Thread-safe; copies share the compiled code. R is the result type, Args the
/// argument types it was lowered for.
template <class R, class... Args>
class Compiled {
 public:
  Compiled(std::shared_ptr<const detail::JitEntry> entry, std::string name)
      : entry_(std::move(entry)), name_(std::move(name)) {}

  template <class... CallArgs>
  R operator()(const CallArgs&... args) const {
    if constexpr (std::is_same_v<std::tuple<std::remove_cvref_t<CallArgs>...>, std::tuple<Args...>> &&
                  detail::static_trees_v<CallArgs...>) {
      // The structure is the lowered one (it is the type); only the leaf types remain.
      constexpr size_t n = (size_t{0} + ... + detail::static_leaf_count<std::remove_cvref_t<CallArgs>>());
      std::array<const Array*, n> leaves;
      const Array** out = leaves.data();
      (detail::gather_static(args, out), ...);
      detail::check_compiled_leaves(*entry_, name_, leaves.data(), n);
      return detail::run_entry<R>(*entry_, leaves.data());
    } else {
      detail::FlatArgs flat = detail::flatten_args(args...);
      detail::check_compiled_args(*entry_, name_, flat);
      return detail::run_entry<R>(*entry_, detail::leaf_pointers(flat).data());
    }
  }

 private:
  std::shared_ptr<const detail::JitEntry> entry_;
  std::string name_;
};

/// Every stage of one compilation, as text, and the compiled code itself (compile()).
/// `tj::Lowered l = jitted.lower(args...);` deduces R and Args.
template <class R, class... Args>
class Lowered {
 public:
  explicit Lowered(detail::LoweredParts parts) : parts_(std::move(parts)) {}

  const std::string& ir() const { return parts_.ir; }
  const std::string& optimized_ir() const { return parts_.optimized_ir; }
  const std::string& llvm_ir() const { return parts_.llvm_ir; }
  const std::string& optimized_llvm_ir() const { return parts_.optimized_llvm_ir; }
  const std::string& assembly() const { return parts_.assembly; }
  /// The fused plan as a Graphviz DOT digraph: a cluster per kernel with the equations it
  /// evaluates, host steps between them, loops and branches as clusters nesting their regions'
  /// plans. `make_ir(f)(args...).dot()` draws the traced program.
  const std::string& dot() const { return parts_.dot; }
  /// A callable for exactly the lowered signature, over the code already compiled.
  Compiled<R, Args...> compile() const { return Compiled<R, Args...>(parts_.entry, parts_.name); }

 private:
  detail::LoweredParts parts_;
};

namespace detail {

/// The non-template half of a jitted function: its signature cache, the compiler pipeline
/// and the call into compiled code. Shared by copies of one Jitted.
class JitCache {
 public:
  JitCache(JitOptions options, std::string default_name);
  ~JitCache();

  const std::string& name() const { return name_; }
  /// The entry this thread last ran for this function, when the call is of the same static
  /// argument types (`tag`, kTypeTag of them) and every leaf has the type it was compiled for;
  /// else null. Counts a cache hit when found. No lock, no allocation, no hashing: the
  /// thread's own slot holds the entry, so an eviction meanwhile cannot free it (an evicted
  /// entry is not returned: the call takes the slow path and traces again).
  const JitEntry* find_last(const void* tag, const Array* const* leaves, size_t count);
  /// The compiled entry for this signature, or null. Counts a cache hit when found. Allocates
  /// nothing; the entry stays valid while held, even if it is evicted meanwhile. A non-null
  /// `tag` makes the entry this thread's last one for find_last.
  std::shared_ptr<const JitEntry> find(const FlatArgs& args, const void* tag = nullptr);
  /// The entry for the signature of `args`, calling `trace` (once per signature, under no lock:
  /// the trace may call this function again on any thread) and compiling when it is not cached.
  /// A thread asking for a signature that another thread is tracing waits for that trace, so
  /// each signature is traced once; when that trace fails, a waiting thread traces it itself.
  std::shared_ptr<const JitEntry> trace_and_add(const FlatArgs& args, absl::FunctionRef<TracedFn()> trace,
                                                const void* tag = nullptr);
  /// Runs the compiled code on concrete leaves (a tracer among them: TracerLeakError).
  std::vector<Array> run(const JitEntry& entry, std::span<const Array> leaves) const;
  /// Records a trace made to inline this function into an enclosing trace.
  void count_inline_trace(double trace_s);
  /// Compiles `traced` for `args`' signature, keeping every stage's text (not cached).
  LoweredParts lower(const FlatArgs& args, TracedFn traced) const;
  JitStats stats() const;

 private:
  struct Impl;
  void remember(const void* tag, const std::shared_ptr<const JitEntry>& entry) const;
  std::unique_ptr<Impl> impl_;
  std::string name_;
  uint64_t id_;  // unique for the process's lifetime: keys this thread's last-entry slot
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
    const void* tag = nullptr;
    if constexpr (detail::static_trees_v<Args...>) {
      // The fast path of a repeated call: leaf addresses on the stack, one type-tag comparison
      // for the structure, one type comparison per leaf, then the compiled code.
      tag = &detail::kTypeTag<std::remove_cvref_t<Args>...>;
      constexpr size_t n = (size_t{0} + ... + detail::static_leaf_count<std::remove_cvref_t<Args>>());
      std::array<const Array*, n> leaves;
      const Array** out = leaves.data();
      (detail::gather_static(args, out), ...);
      if (const detail::JitEntry* entry = cache_->find_last(tag, leaves.data(), n))
        return detail::run_entry<R>(*entry, leaves.data());
    }
    detail::FlatArgs flat = detail::flatten_args(args...);
    if (detail::tracing()) {
      auto t0 = std::chrono::steady_clock::now();
      detail::TracedFn t = detail::trace_fn<Args...>(*f_, cache_->name(), flat);
      cache_->count_inline_trace(detail::seconds_since(t0));
      std::vector<Array> outs = detail::bind_call(cache_->name(), std::move(t.traced), flat.leaves);
      return tree_unflatten<R>(t.out_def, outs);
    }
    std::shared_ptr<const detail::JitEntry> entry = cache_->find(flat, tag);
    if (!entry)
      entry = cache_->trace_and_add(
          flat, [&] { return detail::trace_fn<Args...>(*f_, cache_->name(), flat); }, tag);
    return tree_unflatten<R>(detail::out_def(*entry), cache_->run(*entry, flat.leaves));
  }

  /// Traces and compiles for these arguments, keeping every stage's text; `.compile()` of the
  /// result is a tj::Compiled for exactly this signature.
  template <class... Args>
  Lowered<detail::arrayified_t<detail::result_t<F, Args...>>, std::remove_cvref_t<Args>...> lower(
      const Args&... args) const {
    detail::FlatArgs flat = detail::flatten_args(args...);
    return Lowered<detail::arrayified_t<detail::result_t<F, Args...>>, std::remove_cvref_t<Args>...>(
        cache_->lower(flat, detail::trace_fn<Args...>(*f_, cache_->name(), flat)));
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

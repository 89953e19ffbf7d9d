// The non-template half of tj::jit: the signature cache, its statistics, and the call into
// compiled code. Signatures, the compile pipeline, dumps and diagnostics have files of their own.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <shared_mutex>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/errors.h"
#include "runtime/compile_pipeline.h"
#include "runtime/diagnostics.h"
#include "runtime/dumps.h"
#include "runtime/signature.h"
#include "base/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

// Evicted signatures remembered (at least; or max_cached_signatures if more), so that a retrace
// of one can say the eviction caused it.
constexpr size_t kMinEvictedRemembered = 64;

// What a cached signature keeps: the output structure and the executable (not the traced IR,
// which nothing reads after compiling, and which held ~1-2 KiB per small function). Held by
// shared_ptr so that a call running it outlives its eviction.
struct JitEntry {
  TreeDef out_def;
  std::shared_ptr<const backend::Executable> exe;
  mutable std::atomic<uint64_t> last_used{0};  // the cache's clock at its latest call
};

// Concurrency: lookups share `mu`; tracing holds no lock, so a trace may call its own function
// again on any thread (with another signature) and join it. Each signature is traced once: a
// thread that meets a signature in `tracing` waits on `traced` instead of tracing it too, and
// since the trace ran once, its side effects happened once and `traces` counts it once.
struct JitCache::Impl {
  JitOptions options;
  mutable std::shared_mutex mu;  // guards entries, tracing, evicted and added
  absl::flat_hash_map<Signature, std::shared_ptr<JitEntry>, SignatureHash, SignatureEq> entries;
  absl::flat_hash_set<Signature, SignatureHash, SignatureEq> tracing;  // being traced now
  std::condition_variable_any traced;  // notified when a signature leaves `tracing`
  std::deque<Signature> evicted;       // the latest evictions, oldest first, bounded
  int64_t added = 0;                   // signatures traced and cached so far
  std::atomic<uint64_t> clock{0};      // stamps entries' last_used, for least-recently-used order
  std::atomic<int64_t> cache_hits{0};
  std::atomic<int64_t> evictions{0};
  std::atomic<bool> warned_constant{false};
  mutable std::mutex stats_mu;
  JitStats stats;

  // Stamps a use of `entry`; a shared lock on `mu` suffices, as last_used is atomic.
  void touch(const JitEntry& entry) {
    entry.last_used.store(clock.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // A call served from the cache. Allocates nothing (the copy only counts a reference).
  std::shared_ptr<const JitEntry> hit(const std::shared_ptr<JitEntry>& entry) {
    touch(*entry);
    cache_hits.fetch_add(1, std::memory_order_relaxed);
    return entry;
  }
  // Drops least recently used entries until one more fits. Under the unique lock of `mu`.
  void evict_for_one_more() {
    const int max = options.max_cached_signatures;
    while (max > 0 && entries.size() >= static_cast<size_t>(max)) {
      auto lru = std::min_element(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        return a.second->last_used.load(std::memory_order_relaxed) <
               b.second->last_used.load(std::memory_order_relaxed);
      });
      evicted.push_back(std::move(entries.extract(lru).key()));
      if (evicted.size() > std::max(kMinEvictedRemembered, static_cast<size_t>(max))) evicted.pop_front();
      evictions.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Whether `sig` was evicted lately; forgets it, as it is about to be cached again.
  bool take_evicted(const Signature& sig) {
    auto it = std::find(evicted.begin(), evicted.end(), sig);
    if (it == evicted.end()) return false;
    evicted.erase(it);
    return true;
  }
  // The cached signatures, least recently used first (the order retrace_explanation breaks ties by).
  std::vector<const Signature*> cached_by_use() const {
    std::vector<std::pair<uint64_t, const Signature*>> by_use;
    for (const auto& [sig, entry] : entries)
      by_use.emplace_back(entry->last_used.load(std::memory_order_relaxed), &sig);
    std::sort(by_use.begin(), by_use.end());
    std::vector<const Signature*> sigs;
    for (const auto& [stamp, sig] : by_use) sigs.push_back(sig);
    return sigs;
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

JitCache::JitCache(JitOptions options, std::string default_name)
    : impl_(std::make_unique<Impl>()), name_(options.name.empty() ? default_name : options.name) {
  impl_->options = std::move(options);
}
JitCache::~JitCache() = default;

std::shared_ptr<const JitEntry> JitCache::find(const FlatArgs& args) {
  SignatureView sig = view_of(args);  // hashed outside the lock
  size_t hash = SignatureHash{}(sig);
  std::shared_lock lock(impl_->mu);
  auto it = impl_->entries.find(sig, hash);
  return it == impl_->entries.end() ? nullptr : impl_->hit(it->second);
}

std::shared_ptr<const JitEntry> JitCache::trace_and_add(const FlatArgs& args,
                                                        absl::FunctionRef<TracedFn()> trace) {
  Impl& c = *impl_;
  Signature sig = signature_of(args);
  int64_t retraces;
  std::string why;  // the retrace's explanation, when it is shown
  {
    std::unique_lock lock(c.mu);
    for (;;) {
      if (auto it = c.entries.find(sig); it != c.entries.end()) return c.hit(it->second);  // compiled meanwhile
      if (c.tracing.insert(sig).second) break;
      c.traced.wait(lock);
    }
    retraces = c.added;
    bool was_evicted = c.take_evicted(sig);
    // The search is linear in the cached signatures, so run it only when its answer is shown:
    // over 10,000 signatures it added ~5 ms to each ~10 ms compile (tools/bench/soak.cpp).
    if (retraces > 0 && (over_retrace_limit(c.options, retraces) || explain_retraces(c.options)))
      why = was_evicted ? evicted_retrace_explanation(name_, retraces, c.options.max_cached_signatures)
                        : retrace_explanation(name_, retraces, c.cached_by_use(), sig);
  }
  // From here on `sig` is in `tracing`: however this ends, take it out and wake the waiters.
  auto done = absl::MakeCleanup([&] {
    std::unique_lock lock(c.mu);
    c.tracing.erase(sig);
    c.traced.notify_all();
  });
  if (over_retrace_limit(c.options, retraces)) raise_retrace_limit(why, c.options.max_retraces);
  if (!why.empty()) std::cerr << "[jit] " << why << "\n";

  auto t0 = std::chrono::steady_clock::now();
  TracedFn traced = trace();
  const double trace_s = seconds_since(t0);
  const ir::Function& fn = *traced.traced.fn;
  TJ_CHECK(traced.traced.captured.empty(), "a top-level trace captured enclosing tracers");
  if (c.options.warn_constant_outputs && !c.warned_constant.load() && outputs_are_constant(fn) &&
      !c.warned_constant.exchange(true))
    warn_constant_outputs(name_);
  t0 = std::chrono::steady_clock::now();
  bool dump = dumps_requested();
  Compiled compiled = compile_traced(fn, name_, c.options, /*want_texts=*/dump);
  if (dump) write_dumps(name_, fn, *compiled.exe);
  const PhaseTimes& pt = compiled.times;
  {
    std::lock_guard<std::mutex> lock(c.stats_mu);
    JitStats& s = c.stats;
    s.traces += 1;
    s.compiles += compiled.source == CodeSource::kCompiled;
    s.shared_hits += compiled.source == CodeSource::kShared;
    s.disk_hits += compiled.source == CodeSource::kDisk;
    s.trace_s += trace_s;
    s.passes_s += pt.passes_s;
    s.lower_s += pt.lower_s;
    s.llvm_opt_s += pt.llvm_opt_s;
    s.codegen_s += pt.codegen_s;
  }
  log_compile(name_, args, trace_s, pt);
  if (retraces > 0 && explain_retraces(c.options)) log_retrace_cost(name_, trace_s, seconds_since(t0));
  auto entry = std::make_shared<JitEntry>();
  entry->out_def = std::move(traced.out_def);
  entry->exe = std::move(compiled.exe);
  std::unique_lock lock(c.mu);
  c.evict_for_one_more();
  c.touch(*entry);
  c.added += 1;
  c.entries.emplace(sig, entry);
  return entry;
}

std::vector<Array> JitCache::run(const JitEntry& entry, std::span<const Array> leaves) const {
  for (const Array& a : leaves)
    if (a.is_tracer()) raise_leak(*a.impl(), "jit");
  return entry.exe->run(leaves);
}

const TreeDef& JitCache::out_def(const JitEntry& entry) const { return entry.out_def; }

void JitCache::count_inline_trace(double trace_s) {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  impl_->stats.traces += 1;
  impl_->stats.trace_s += trace_s;
}

Lowered JitCache::lower(const TracedFn& traced) const {
  const ir::Function& fn = *traced.traced.fn;
  if (!traced.traced.captured.empty())
    raise<Error>("jit.lower", "'", name_, "' captures values of an enclosing trace; call lower() "
                 "outside jit and grad");
  Compiled compiled = compile_traced(fn, name_, impl_->options, /*want_texts=*/true);
  const backend::Executable& exe = *compiled.exe;
  Lowered l;
  l.ir_ = ir::to_string(fn);
  l.optimized_ir_ = exe.fused_ir();
  l.llvm_ir_ = exe.llvm_ir();
  l.optimized_llvm_ir_ = exe.optimized_llvm_ir();
  l.assembly_ = exe.assembly();
  l.dot_ = exe.fused_dot();
  return l;
}

JitStats JitCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  JitStats s = impl_->stats;
  s.cache_hits = impl_->cache_hits.load(std::memory_order_relaxed);
  s.evictions = impl_->evictions.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tracejit::detail

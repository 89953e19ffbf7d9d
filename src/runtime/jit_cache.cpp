// The non-template half of tj::jit: the signature cache, its statistics, and the call into
// compiled code. Signatures, the compile pipeline, dumps and diagnostics have files of their own.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/errors.h"
#include "base/promotion.h"
#include "runtime/compile_pipeline.h"
#include "runtime/diagnostics.h"
#include "runtime/dumps.h"
#include "random/threefry.h"
#include "runtime/signature.h"
#include "base/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/jit.h"
#include "tracejit/random.h"

namespace tracejit::detail {

// Evicted signatures remembered (at least; or max_cached_signatures if more), so that a retrace
// of one can say the eviction caused it.
constexpr size_t kMinEvictedRemembered = 64;

// What a cached signature keeps: the output structure and the executable (not the traced IR,
// which nothing reads after compiling, and which held ~1-2 KiB per small function). Held by
// shared_ptr so that a call running it outlives its eviction.
// A signature leaf's type as find_last compares it: the shape's rank and dims read once, when
// the entry is made, instead of through its InlinedVector on every call.
struct LeafKey {
  DType dtype;
  bool weak;
  uint32_t rank;
  const int64_t* dims;  // into the signature's own shape (a JitEntry never moves: its atomics pin it)
};

struct JitEntry {
  Signature sig;  // what it was compiled for: the fast paths compare a call's leaves with it
  std::vector<LeafKey> keys;  // per leaf of `sig`; set by set_signature
  TreeDef out_def;
  std::shared_ptr<const backend::Executable> exe;
  mutable std::atomic<uint64_t> last_used{0};  // the cache's clock at its latest call
  mutable std::atomic<bool> evicted{false};    // dropped from the cache: find_last skips it

  // Whether `impl` is a concrete array of `key`'s type (and weak bit, with `weak`): the fast
  // paths' test, false for an empty array or a tracer (the slow path then says what is wrong).
  static bool fits(const LeafKey& key, const ArrayImpl* impl, bool weak) {
    if (impl == nullptr || impl->is_tracer()) return false;
    const base::Type& t = impl->type;
    if (t.dtype != key.dtype || (weak && t.weak != key.weak) || t.shape.size() != key.rank) return false;
    for (uint32_t d = 0; d < key.rank; ++d)
      if (t.shape[d] != key.dims[d]) return false;
    return true;
  }

  void set_signature(Signature s) {
    sig = std::move(s);
    keys.clear();
    for (const ir::Type& t : sig.leaves)
      keys.push_back({t.dtype, t.weak, static_cast<uint32_t>(t.shape.size()), t.shape.data()});
  }
};

namespace {

// Each thread keeps its last entry of a few functions (slot: the function's id modulo this), so
// a repeated call finds it with no lock, no hashing and no write to a shared cache line.
constexpr size_t kLastEntrySlots = 8;

// A thread's count of one function's cache hits from find_last: written by that thread alone
// (a plain load and store, no locked instruction, on a line of its own), read by stats().
struct alignas(64) ThreadHits {
  std::atomic<int64_t> hits{0};
  void add_one() { hits.store(hits.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
};
// Threads that get a ThreadHits of their own per function; later ones count in a shared atomic.
constexpr size_t kMaxThreadHits = 64;

// Trivially destructible, so that reading it needs no thread-local initialization guard (read
// through __tls_get_addr at every access, even initial-exec).
struct LastEntry {
  uint64_t cache_id = 0;  // 0: empty (ids start at 1)
  const void* tag = nullptr;
  const JitEntry* entry = nullptr;  // held in t_held: an eviction meanwhile cannot free it
  ThreadHits* hits = nullptr;       // owned by the function's cache; null: count shared
};
// initial-exec: a library's thread-locals otherwise cost a __tls_get_addr call per access.
[[gnu::tls_model("initial-exec")]] constinit thread_local std::array<LastEntry, kLastEntrySlots> t_last{};
[[gnu::tls_model("initial-exec")]] constinit thread_local bool t_held_gone = false;
// The references that keep t_last's entries alive, touched by remember() only. At thread exit
// it empties t_last before releasing them.
struct HeldEntries {
  std::array<std::shared_ptr<const JitEntry>, kLastEntrySlots> entries;
  ~HeldEntries() {
    t_held_gone = true;
    t_last = {};
  }
};
thread_local HeldEntries t_held;

std::atomic<uint64_t> g_next_cache_id{1};

}  // namespace

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
  std::atomic<int64_t> shared_hits{0};  // hits of the slow path, and of threads without ThreadHits
  // Guarded by stats_mu; entries live as long as the cache (LastEntry slots point at them).
  absl::flat_hash_map<std::thread::id, std::unique_ptr<ThreadHits>> thread_hits;
  std::atomic<int64_t> evictions{0};
  std::atomic<bool> warned_constant{false};
  mutable std::mutex stats_mu;
  JitStats stats;

  // Stamps a use of `entry`; a shared lock on `mu` suffices, as last_used is atomic.
  void touch(const JitEntry& entry) {
    entry.last_used.store(clock.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // A use of `entry`. Stamps are unique, so an entry holding the clock's latest stamp is
  // already the most recently used one, and a run of calls to it writes no shared line.
  void stamp(const JitEntry& entry) {
    if (entry.last_used.load(std::memory_order_relaxed) != clock.load(std::memory_order_relaxed)) touch(entry);
  }
  // A call served by the slow path's lookup.
  void hit(const JitEntry& entry) {
    stamp(entry);
    shared_hits.fetch_add(1, std::memory_order_relaxed);
  }
  // This thread's hit counter, made on first use; null past kMaxThreadHits threads.
  ThreadHits* hits_of_this_thread() {
    std::lock_guard<std::mutex> lock(stats_mu);
    auto it = thread_hits.find(std::this_thread::get_id());
    if (it != thread_hits.end()) return it->second.get();
    if (thread_hits.size() >= kMaxThreadHits) return nullptr;
    return thread_hits.emplace(std::this_thread::get_id(), std::make_unique<ThreadHits>()).first->second.get();
  }
  // Drops least recently used entries until one more fits. Under the unique lock of `mu`.
  void evict_for_one_more() {
    const int max = options.max_cached_signatures;
    while (max > 0 && entries.size() >= static_cast<size_t>(max)) {
      auto lru = std::min_element(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        return a.second->last_used.load(std::memory_order_relaxed) <
               b.second->last_used.load(std::memory_order_relaxed);
      });
      lru->second->evicted.store(true, std::memory_order_relaxed);
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
    : impl_(std::make_unique<Impl>()),
      name_(options.name.empty() ? default_name : options.name),
      id_(g_next_cache_id.fetch_add(1, std::memory_order_relaxed)) {
  impl_->options = std::move(options);
}
JitCache::~JitCache() = default;

const JitEntry* JitCache::find_last(const void* tag, const Array* const* leaves, size_t count) {
  const LastEntry& last = t_last[id_ % kLastEntrySlots];
  if (last.cache_id != id_ || last.tag != tag || tracing_now()) return nullptr;
  const JitEntry& entry = *last.entry;
  const Signature& sig = entry.sig;
  if (entry.evicted.load(std::memory_order_relaxed) || sig.promotion != promotion_now() ||
      sig.threefry_partitionable != partitionable_now())
    return nullptr;
  const LeafKey* key = entry.keys.data();
  for (size_t i = 0; i < count; ++i)
    if (!JitEntry::fits(key[i], leaves[i]->impl(), /*weak=*/true)) return nullptr;
  impl_->stamp(entry);
  if (last.hits != nullptr) last.hits->add_one();
  else impl_->shared_hits.fetch_add(1, std::memory_order_relaxed);
  return &entry;
}

void JitCache::remember(const void* tag, const std::shared_ptr<const JitEntry>& entry) const {
  if (tag == nullptr || t_held_gone) return;  // (a call from a thread-local's destructor)
  const size_t slot = id_ % kLastEntrySlots;
  LastEntry& last = t_last[slot];
  ThreadHits* hits = last.cache_id == id_ ? last.hits : impl_->hits_of_this_thread();
  last = {};  // empty while its entry changes
  t_held.entries[slot] = entry;  // may release another function's entry: never under a lock of ours
  last = {.cache_id = id_, .tag = tag, .entry = entry.get(), .hits = hits};
}

std::shared_ptr<const JitEntry> JitCache::find(const FlatArgs& args, const void* tag) {
  SignatureView sig = view_of(args);  // hashed outside the lock
  size_t hash = SignatureHash{}(sig);
  std::shared_ptr<const JitEntry> entry;
  {
    std::shared_lock lock(impl_->mu);
    auto it = impl_->entries.find(sig, hash);
    if (it == impl_->entries.end()) return nullptr;
    impl_->hit(*it->second);
    entry = it->second;
  }
  remember(tag, entry);
  return entry;
}

std::shared_ptr<const JitEntry> JitCache::trace_and_add(const FlatArgs& args,
                                                        absl::FunctionRef<TracedFn()> trace,
                                                        const void* tag) {
  Impl& c = *impl_;
  Signature sig = signature_of(args);
  int64_t retraces;
  std::string why;  // the retrace's explanation, when it is shown
  {
    std::unique_lock lock(c.mu);
    for (;;) {
      if (auto it = c.entries.find(sig); it != c.entries.end()) {  // compiled meanwhile
        c.hit(*it->second);
        std::shared_ptr<const JitEntry> entry = it->second;
        lock.unlock();
        remember(tag, entry);
        return entry;
      }
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
  entry->set_signature(sig);
  entry->out_def = std::move(traced.out_def);
  entry->exe = std::move(compiled.exe);
  {
    std::unique_lock lock(c.mu);
    c.evict_for_one_more();
    c.touch(*entry);
    c.added += 1;
    c.entries.emplace(sig, entry);
  }
  remember(tag, entry);
  return entry;
}

std::vector<Array> JitCache::run(const JitEntry& entry, std::span<const Array> leaves) const {
  for (const Array& a : leaves)
    if (a.is_tracer()) raise_leak(*a.impl(), "jit");
  std::vector<Array> outs(entry.exe->num_outputs());
  absl::InlinedVector<const Array*, 16> ptrs;
  for (const Array& a : leaves) ptrs.push_back(&a);
  entry.exe->run_unchecked(ptrs.data(), outs.data());  // the signature matched: types are right
  return outs;
}

size_t num_outputs(const JitEntry& entry) { return entry.exe->num_outputs(); }
const TreeDef& out_def(const JitEntry& entry) { return entry.out_def; }

void run_checked_leaves(const JitEntry& entry, const Array* const* leaves, Array* outputs) {
  entry.exe->run_unchecked(leaves, outputs);
}

absl::InlinedVector<const Array*, 16> leaf_pointers(const FlatArgs& args) {
  absl::InlinedVector<const Array*, 16> ptrs;
  for (const Array& a : args.leaves) ptrs.push_back(&a);
  return ptrs;
}

namespace {

// "arg 1 .weight" for leaf `leaf` of `sig`.
std::string leaf_name(const Signature& sig, size_t leaf) {
  size_t first = 0;
  for (size_t i = 0; i < sig.defs.size(); ++i) {
    const size_t n = sig.defs[i].num_leaves();
    if (leaf < first + n) {
      std::string path = leaf_paths(sig.defs[i])[leaf - first];
      return cat("arg ", i, path.empty() ? "" : " ", path);
    }
    first += n;
  }
  return cat("leaf ", leaf);
}

constexpr const char* kCompiledFix =
    "; a tj::Compiled runs only the signature it was lowered for: lower and compile again for "
    "this one, or call the jitted function (it compiles each new signature)";

}  // namespace

void check_compiled_leaves(const JitEntry& entry, const std::string& name, const Array* const* leaves,
                           size_t count) {
  const Signature& sig = entry.sig;
  if (count == sig.leaves.size()) {  // the common case first, with no call per leaf
    size_t i = 0;
    while (i < count && JitEntry::fits(entry.keys[i], leaves[i]->impl(), /*weak=*/false)) ++i;
    if (i == count) return;
  }
  if (count != sig.leaves.size())
    raise<TypeError>("Compiled", "'", name, "' was compiled for ", sig.leaves.size(), " leaves, got ",
                     count, kCompiledFix);
  for (size_t i = 0; i < count; ++i) {
    const ArrayImpl& impl = impl_of(*leaves[i], "Compiled");
    const ir::Type& want = sig.leaves[i];
    if (impl.is_tracer()) {
      if (!impl.trace->active()) raise_leak(impl, "Compiled");
      raise<Error>("Compiled", "'", name, "' got a tracer for ", leaf_name(sig, i),
                   ": a tj::Compiled runs on concrete arrays only; inside jit, grad or vmap call "
                   "the jitted function itself");
    }
    if (impl.type.dtype != want.dtype || impl.type.shape != want.shape)
      raise<TypeError>("Compiled", "'", name, "' was compiled for ", leaf_name(sig, i), ": ",
                       ir::type_str(want), ", got ", ir::type_str(impl.type), kCompiledFix);
  }
}

void check_compiled_args(const JitEntry& entry, const std::string& name, const FlatArgs& args) {
  const Signature& sig = entry.sig;
  if (args.defs.size() != sig.defs.size())
    raise<TypeError>("Compiled", "'", name, "' was compiled for ", sig.defs.size(),
                     " arguments, got ", args.defs.size(), kCompiledFix);
  for (size_t i = 0; i < sig.defs.size(); ++i)
    if (args.defs[i] != sig.defs[i])
      raise<TypeError>("Compiled", "'", name, "' was compiled for arg ", i, ": ", sig.defs[i].str(),
                       ", got ", args.defs[i].str(), kCompiledFix);
  check_compiled_leaves(entry, name, leaf_pointers(args).data(), args.leaves.size());
}

void JitCache::count_inline_trace(double trace_s) {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  impl_->stats.traces += 1;
  impl_->stats.trace_s += trace_s;
}

LoweredParts JitCache::lower(const FlatArgs& args, TracedFn traced) const {
  const ir::Function& fn = *traced.traced.fn;
  if (!traced.traced.captured.empty())
    raise<Error>("jit.lower", "'", name_, "' captures values of an enclosing trace; call lower() "
                 "outside jit and grad");
  Compiled compiled = compile_traced(fn, name_, impl_->options, /*want_texts=*/true);
  const backend::Executable& exe = *compiled.exe;
  LoweredParts l;
  l.ir = ir::to_string(fn);
  l.optimized_ir = exe.fused_ir();
  l.llvm_ir = exe.llvm_ir();
  l.optimized_llvm_ir = exe.optimized_llvm_ir();
  l.assembly = exe.assembly();
  l.dot = exe.fused_dot();
  l.name = name_;
  auto entry = std::make_shared<JitEntry>();
  entry->set_signature(signature_of(args));
  entry->out_def = std::move(traced.out_def);
  entry->exe = std::move(compiled.exe);
  l.entry = std::move(entry);
  return l;
}

JitStats JitCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  JitStats s = impl_->stats;
  s.cache_hits = impl_->shared_hits.load(std::memory_order_relaxed);
  for (const auto& [thread, hits] : impl_->thread_hits) s.cache_hits += hits->hits.load(std::memory_order_relaxed);
  s.evictions = impl_->evictions.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tracejit::detail

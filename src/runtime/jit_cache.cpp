// The non-template half of tj::jit: the signature cache, its statistics, and the call into
// compiled code. Signatures, the compile pipeline, dumps and diagnostics have files of their own.
#include <atomic>
#include <iostream>
#include <mutex>
#include <shared_mutex>

#include "absl/container/flat_hash_map.h"
#include "base/errors.h"
#include "runtime/compile_pipeline.h"
#include "runtime/diagnostics.h"
#include "runtime/dumps.h"
#include "runtime/signature.h"
#include "base/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

// What a cached signature keeps: the output structure and the executable (not the traced IR,
// which nothing reads after compiling, and which held ~1-2 KiB per small function).
struct JitEntry {
  TreeDef out_def;
  std::shared_ptr<const backend::Executable> exe;
};

struct JitCache::Impl {
  JitOptions options;
  mutable std::shared_mutex mu;  // guards entries and order
  absl::flat_hash_map<Signature, std::unique_ptr<JitEntry>, SignatureHash, SignatureEq> entries;
  std::vector<Signature> order;  // signatures in the order they were traced
  std::atomic<int64_t> cache_hits{0};
  mutable std::mutex stats_mu;
  JitStats stats;
  bool warned_constant = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

JitCache::JitCache(JitOptions options, std::string default_name)
    : impl_(std::make_unique<Impl>()), name_(options.name.empty() ? default_name : options.name) {
  impl_->options = std::move(options);
}
JitCache::~JitCache() = default;

const JitEntry* JitCache::find(const FlatArgs& args) {
  SignatureView sig = view_of(args);  // hashed outside the lock
  size_t hash = SignatureHash{}(sig);
  std::shared_lock lock(impl_->mu);
  auto it = impl_->entries.find(sig, hash);
  if (it == impl_->entries.end()) return nullptr;
  impl_->cache_hits.fetch_add(1, std::memory_order_relaxed);
  return it->second.get();
}

void JitCache::before_trace(const FlatArgs& args) {
  std::shared_lock lock(impl_->mu);
  const int64_t retraces = static_cast<int64_t>(impl_->order.size());
  if (retraces == 0) return;
  bool limit = over_retrace_limit(impl_->options, retraces);
  // The search is linear in the cached signatures, so run it only when its answer is shown:
  // over 10,000 signatures it added ~5 ms to each ~10 ms compile (tools/bench/soak.cpp).
  if (!limit && !explain_retraces(impl_->options)) return;
  std::string why = retrace_explanation(name_, impl_->order, signature_of(args));
  lock.unlock();
  if (limit) raise_retrace_limit(why, impl_->options.max_retraces);
  std::cerr << "[jit] " << why << "\n";
}

const JitEntry* JitCache::add(const FlatArgs& args, TracedFn traced, double trace_s) {
  const ir::Function& fn = *traced.traced.fn;
  TJ_CHECK(traced.traced.captured.empty(), "a top-level trace captured enclosing tracers");
  if (impl_->options.warn_constant_outputs && !impl_->warned_constant && outputs_are_constant(fn)) {
    impl_->warned_constant = true;
    warn_constant_outputs(name_);
  }
  auto t0 = std::chrono::steady_clock::now();
  bool dump = dumps_requested();
  Compiled compiled = compile_traced(fn, name_, impl_->options, /*want_texts=*/dump);
  if (dump) write_dumps(name_, fn, *compiled.exe);
  const PhaseTimes& pt = compiled.times;
  {
    std::lock_guard<std::mutex> lock(impl_->stats_mu);
    JitStats& s = impl_->stats;
    s.traces += 1;
    s.compiles += 1;
    s.trace_s += trace_s;
    s.passes_s += pt.passes_s;
    s.lower_s += pt.lower_s;
    s.llvm_opt_s += pt.llvm_opt_s;
    s.codegen_s += pt.codegen_s;
  }
  log_compile(name_, args, trace_s, pt);
  bool retrace;
  {
    std::shared_lock lock(impl_->mu);
    retrace = !impl_->order.empty();
  }
  if (retrace && explain_retraces(impl_->options)) log_retrace_cost(name_, trace_s, seconds_since(t0));
  auto entry = std::make_unique<JitEntry>(JitEntry{std::move(traced.out_def), std::move(compiled.exe)});
  Signature sig = signature_of(args);
  std::unique_lock lock(impl_->mu);
  impl_->order.push_back(sig);
  return impl_->entries.insert_or_assign(std::move(sig), std::move(entry)).first->second.get();
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
  return l;
}

JitStats JitCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  JitStats s = impl_->stats;
  s.cache_hits = impl_->cache_hits.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tracejit::detail

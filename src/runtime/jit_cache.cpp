// The non-template half of tj::jit: signatures and the cache, the compile pipeline
// (passes -> backend), dumps, diagnostics, and the call into compiled code.
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <shared_mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backend/compile.h"
#include "frontend/errors.h"
#include "passes/pipeline.h"
#include "trace/array_impl.h"
#include "trace/trace_state.h"
#include "tracejit/jit.h"
#include "tracejit/random.h"

namespace tracejit::detail {

// What a cached signature keeps: the output structure and the executable (not the traced IR,
// which nothing reads after compiling, and which held ~1-2 KiB per small function).
struct JitEntry {
  TreeDef out_def;
  std::shared_ptr<const backend::Executable> exe;
};

namespace {

// What selects a compiled executable: the arguments' structure and leaf types, and the global
// settings that tracing reads (the threefry scheme decides which IR random draws record).
struct Signature {
  std::vector<TreeDef> defs;
  std::vector<ir::Type> leaves;
  bool threefry_partitionable = true;
  bool operator==(const Signature&) const = default;
};

// A call's signature read in place from its FlatArgs: a cache hit builds no Signature, which
// would copy every TreeDef and allocate two vectors per call.
struct SignatureView {
  const FlatArgs* args;
  bool threefry_partitionable;
};

// Hashes and compares both forms alike, so the cache can be searched with a view.
struct SignatureHash {
  using is_transparent = void;
  size_t operator()(const Signature& s) const {
    size_t h = absl::HashOf(s.defs, s.leaves.size(), s.threefry_partitionable);
    for (const ir::Type& t : s.leaves) h = absl::HashOf(h, t);
    return h;
  }
  size_t operator()(const SignatureView& v) const {
    size_t h = absl::HashOf(v.args->defs, v.args->leaves.size(), v.threefry_partitionable);
    for (const Array& a : v.args->leaves) h = absl::HashOf(h, impl_of(a, "jit").type);
    return h;
  }
};

struct SignatureEq {
  using is_transparent = void;
  bool operator()(const Signature& a, const Signature& b) const { return a == b; }
  bool operator()(const Signature& s, const SignatureView& v) const { return (*this)(v, s); }
  bool operator()(const SignatureView& v, const Signature& s) const {
    if (v.threefry_partitionable != s.threefry_partitionable || v.args->defs != s.defs ||
        v.args->leaves.size() != s.leaves.size())
      return false;
    for (size_t i = 0; i < s.leaves.size(); ++i)
      if (!(v.args->leaves[i].impl()->type == s.leaves[i])) return false;
    return true;
  }
};

SignatureView view_of(const FlatArgs& args) { return {&args, random::threefry_partitionable()}; }

Signature signature_of(const FlatArgs& args) {
  Signature s{args.defs, {}, random::threefry_partitionable()};
  s.leaves.reserve(args.leaves.size());
  for (const Array& a : args.leaves) s.leaves.push_back(impl_of(a, "jit").type);
  return s;
}

bool env_flag(const char* name, std::string_view value) {
  const char* v = std::getenv(name);
  return v && std::string_view(v) == value;
}

// True when no output depends on an input: every output was fixed while tracing.
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

std::atomic<int64_t> g_dump_sequence{0};

// A dump is a diagnostic: failing to write one must not fail the user's call. One warning per
// directory, not one per compilation.
void warn_dump_failure(const std::string& dir, const std::string& what) {
  static std::mutex mu;
  static absl::flat_hash_set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (!warned.insert(dir).second) return;
  std::cerr << "[jit] warning: " << what << " (TRACEJIT_DUMP_DIR=" << dir
            << "): no dumps are written there; compiled code runs as usual. Point "
               "TRACEJIT_DUMP_DIR at a writable directory\n";
}

void write_dumps(const std::string& name, const ir::Function& traced, const backend::Executable& exe) {
  const char* dir = std::getenv("TRACEJIT_DUMP_DIR");
  if (!dir || !*dir) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return warn_dump_failure(
        dir,
        absl::StrCat("cannot write dump files: cannot create the directory (", ec.message(), ")"));
  std::string base = absl::StrFormat("%s/%s.%04d", dir, name, g_dump_sequence.fetch_add(1));
  const std::pair<const char*, std::string> files[] = {
      {".traced.txt", ir::to_string(traced)},     {".optimized.txt", exe.fused_ir()},
      {".ll", exe.llvm_ir()},                     {".opt.ll", exe.optimized_llvm_ir()},
      {".s", exe.assembly()}};
  for (const auto& [suffix, text] : files) {
    std::ofstream out(base + suffix);
    out << text << "\n";
    if (!out) return warn_dump_failure(dir, absl::StrCat("cannot write dump file ", base, suffix));
  }
}

}  // namespace

struct JitCache::Impl {
  JitOptions options;
  mutable std::shared_mutex mu;  // guards entries and order
  absl::flat_hash_map<Signature, std::unique_ptr<JitEntry>, SignatureHash, SignatureEq> entries;
  std::vector<Signature> order;  // signatures in the order they were traced
  std::atomic<int64_t> cache_hits{0};
  mutable std::mutex stats_mu;
  JitStats stats;
  bool warned_constant = false;

  bool explain() const { return options.explain_retraces || env_flag("TRACEJIT_EXPLAIN_RETRACES", "1"); }
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

namespace {

// Each difference between two signatures, with its path in the argument tree.
std::vector<std::string> signature_diff(const Signature& old_sig, const Signature& new_sig,
                                        const FlatArgs& args) {
  std::vector<std::string> diffs;
  size_t leaf = 0;
  for (size_t i = 0; i < new_sig.defs.size(); ++i) {
    size_t n = new_sig.defs[i].num_leaves();
    if (i >= old_sig.defs.size() || old_sig.defs[i] != new_sig.defs[i]) {
      diffs.push_back(absl::StrCat("arg ", i, ": ",
                                   i < old_sig.defs.size() ? old_sig.defs[i].str() : "(absent)",
                                   " -> ", new_sig.defs[i].str()));
    } else {
      std::vector<std::string> paths = leaf_paths(new_sig.defs[i]);
      size_t old_leaf = 0;
      for (size_t k = 0; k < i; ++k) old_leaf += old_sig.defs[k].num_leaves();
      for (size_t j = 0; j < n; ++j) {
        const ir::Type& a = old_sig.leaves[old_leaf + j];
        const ir::Type& b = new_sig.leaves[leaf + j];
        if (a == b) continue;
        std::string path = paths[j].empty() ? "" : absl::StrCat(" ", paths[j]);
        // The weak bit is shown only when it is the whole difference.
        bool only_weak = ir::type_str(a) == ir::type_str(b);
        diffs.push_back(absl::StrCat("arg ", i, path, ": ", ir::type_str(a),
                                     only_weak && a.weak ? " (weak)" : "", " -> ", ir::type_str(b),
                                     only_weak && b.weak ? " (weak)" : ""));
      }
    }
    leaf += n;
  }
  if (old_sig.threefry_partitionable != new_sig.threefry_partitionable)
    diffs.push_back(absl::StrCat("threefry scheme: ",
                                 old_sig.threefry_partitionable ? "partitionable" : "original", " -> ",
                                 new_sig.threefry_partitionable ? "partitionable" : "original"));
  if (old_sig.defs.size() > new_sig.defs.size())
    diffs.push_back(absl::StrCat("number of arguments: ", old_sig.defs.size(), " -> ", new_sig.defs.size()));
  return diffs;
}

}  // namespace

void JitCache::before_trace(const FlatArgs& args) {
  std::shared_lock lock(impl_->mu);
  const int64_t retraces = static_cast<int64_t>(impl_->order.size());
  if (retraces == 0) return;
  bool limit = impl_->options.max_retraces >= 0 && retraces > impl_->options.max_retraces;
  // The search is linear in the cached signatures, so run it only when its answer is shown:
  // over 10,000 signatures it added ~5 ms to each ~10 ms compile (tools/bench/soak.cpp).
  if (!limit && !impl_->explain()) return;
  Signature sig = signature_of(args);
  const Signature* nearest = nullptr;
  size_t best = SIZE_MAX;
  for (const Signature& s : impl_->order) {
    size_t d = signature_diff(s, sig, args).size();
    if (d <= best) {  // on a tie the most recent signature is the more telling one
      best = d;
      nearest = &s;
    }
  }
  std::string why = absl::StrCat("'", name_, "' is traced again (retrace ", retraces,
                                 ") because its arguments differ from the nearest cached signature:\n  ",
                                 absl::StrJoin(signature_diff(*nearest, sig, args), "\n  "));
  lock.unlock();
  if (limit)
    raise<Error>("jit", why, "\nThis exceeds max_retraces = ", impl_->options.max_retraces,
                 ": keep shapes and dtypes fixed between calls, or raise the limit");
  std::cerr << "[jit] " << why << "\n";
}

const JitEntry* JitCache::add(const FlatArgs& args, TracedFn traced, double trace_s) {
  const ir::Function& fn = *traced.traced.fn;
  TJ_CHECK(traced.traced.captured.empty(), "a top-level trace captured enclosing tracers");
  if (impl_->options.warn_constant_outputs && !impl_->warned_constant && outputs_are_constant(fn)) {
    impl_->warned_constant = true;
    std::cerr << "[jit] warning: every output of '" << name_
              << "' is a constant fixed at trace time: it depends on none of its arguments.\n"
                 "  Side effects of the C++ body (counters, prints, reads of outside state) ran once, "
                 "while tracing, and will not run again; later calls return the same values.\n"
                 "  To keep state across calls, pass it in as an argument and return the new state "
                 "(as CounterV2 does). Silence with JitOptions{.warn_constant_outputs = false}.\n";
  }
  auto t0 = std::chrono::steady_clock::now();
  ir::Function optimized = passes::optimize(fn);
  double passes_s = seconds_since(t0);
  bool dump = std::getenv("TRACEJIT_DUMP_DIR") != nullptr;
  auto exe = backend::compile(optimized, backend::CompileOptions{.name = name_, .want_texts = dump,
                                                                 .fast_math = impl_->options.fast_math});
  if (dump) write_dumps(name_, fn, *exe);
  const backend::BackendTimes& bt = exe->times();
  {
    std::lock_guard<std::mutex> lock(impl_->stats_mu);
    JitStats& s = impl_->stats;
    s.traces += 1;
    s.compiles += 1;
    s.trace_s += trace_s;
    s.passes_s += passes_s + bt.fusion_s;
    s.lower_s += bt.lower_s;
    s.llvm_opt_s += bt.llvm_opt_s;
    s.codegen_s += bt.codegen_s;
  }
  if (env_flag("TRACEJIT_LOG", "compile")) {
    std::vector<std::string> types;
    for (const Array& a : args.leaves) types.push_back(ir::type_str(a.impl()->type));
    std::cerr << absl::StrFormat(
        "[jit] compiled '%s' (%s): trace %.2f ms, passes %.2f ms, lower %.2f ms, llvm-opt %.2f ms, "
        "codegen %.2f ms\n",
        name_, absl::StrJoin(types, ", "), trace_s * 1e3, (passes_s + bt.fusion_s) * 1e3,
        bt.lower_s * 1e3, bt.llvm_opt_s * 1e3, bt.codegen_s * 1e3);
  }
  bool retrace;
  {
    std::shared_lock lock(impl_->mu);
    retrace = !impl_->order.empty();
  }
  if (retrace && impl_->explain())
    std::cerr << absl::StrFormat("[jit] the retrace of '%s' cost %.2f ms (trace %.2f, compile %.2f)\n",
                                 name_, (trace_s + seconds_since(t0)) * 1e3, trace_s * 1e3,
                                 seconds_since(t0) * 1e3);
  auto entry = std::make_unique<JitEntry>(JitEntry{std::move(traced.out_def), std::move(exe)});
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
  ir::Function optimized = passes::optimize(fn);
  auto exe = backend::compile(optimized, backend::CompileOptions{.name = name_, .want_texts = true,
                                                                 .fast_math = impl_->options.fast_math});
  Lowered l;
  l.ir_ = ir::to_string(fn);
  l.optimized_ir_ = exe->fused_ir();
  l.llvm_ir_ = exe->llvm_ir();
  l.optimized_llvm_ir_ = exe->optimized_llvm_ir();
  l.assembly_ = exe->assembly();
  return l;
}

JitStats JitCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  JitStats s = impl_->stats;
  s.cache_hits = impl_->cache_hits.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tracejit::detail

#include "runtime/tiered.h"

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>

#include "runtime/diagnostics.h"
#include "tracejit/error.h"

namespace tracejit::detail {
namespace {

std::atomic<int64_t> g_tier_swaps{0};

class TieredExecutable final : public backend::Executable {
 public:
  TieredExecutable(std::shared_ptr<const backend::Executable> quick,
                   std::shared_ptr<const ir::Function> fn, backend::CompileOptions options)
      : quick_(std::move(quick)), current_(quick_.get()), fn_(std::move(fn)),
        options_(std::move(options)) {}

  std::vector<Array> run(std::span<const Array> inputs) const override { return code().run(inputs); }
  void run_unchecked(const Array* const* inputs, Array* outputs) const override {
    code().run_unchecked(inputs, outputs);
  }
  size_t num_outputs() const override { return quick_->num_outputs(); }
  const std::string& fused_ir() const override { return now().fused_ir(); }
  const std::string& fused_dot() const override { return now().fused_dot(); }
  const std::string& llvm_ir() const override { return now().llvm_ir(); }
  const std::string& optimized_llvm_ir() const override { return now().optimized_llvm_ir(); }
  const std::string& assembly() const override { return now().assembly(); }
  const backend::BackendTimes& times() const override { return quick_->times(); }
  const backend::ObjectCode* object_code() const override {
    return optimized() ? now().object_code() : nullptr;
  }
  size_t code_bytes() const override {
    return quick_->code_bytes() + (optimized() ? now().code_bytes() : 0);
  }

  bool optimized() const { return &now() != quick_.get(); }

 private:
  const backend::Executable& now() const { return *current_.load(std::memory_order_acquire); }

  // The code this call runs; the call that reaches kTierUpCalls first makes the optimized code.
  const backend::Executable& code() const {
    const backend::Executable* current = current_.load(std::memory_order_acquire);
    if (current == quick_.get() && calls_.fetch_add(1, std::memory_order_relaxed) + 1 == kTierUpCalls)
      tier_up();
    return now();
  }

  // Runs once, on the calling thread. `optimized_` is written before the pointer that publishes
  // it, and read only through that pointer; other threads go on with the quick code meanwhile.
  void tier_up() const {
    if (env_flag("TRACEJIT_TIERED", "quick")) return;  // measuring the quick code alone
    try {
      auto t0 = std::chrono::steady_clock::now();
      optimized_ = backend::compile(*fn_, options_);
      current_.store(optimized_.get(), std::memory_order_release);
      g_tier_swaps.fetch_add(1, std::memory_order_relaxed);
      if (env_flag("TRACEJIT_LOG", "compile"))
        std::cerr << "[jit] compile '" << options_.name << "': optimized tier swapped in after "
                  << seconds_since(t0) * 1e3 << " ms, at call " << kTierUpCalls << "\n";
    } catch (const std::exception& e) {
      std::cerr << "[jit] warning: the optimized compile of '" << options_.name << "' failed ("
                << e.what() << "); it keeps running its quick code\n";
    }
  }

  std::shared_ptr<const backend::Executable> quick_;
  mutable std::shared_ptr<const backend::Executable> optimized_;
  mutable std::atomic<const backend::Executable*> current_;
  mutable std::atomic<int64_t> calls_{0};
  std::shared_ptr<const ir::Function> fn_;
  backend::CompileOptions options_;
};

}  // namespace

bool tiers_enabled(const JitOptions& options) {
  if (env_flag("TRACEJIT_TIERED", "0")) return false;
  return options.tiered || env_flag("TRACEJIT_TIERED", "1") || env_flag("TRACEJIT_TIERED", "quick");
}

bool quick_tier_exact(const ir::Function& fn, bool fast_math) {
  if (fast_math) return false;
  std::vector<const ir::Function*> todo{&fn};
  while (!todo.empty()) {  // iterative: programs nest regions deeply
    const ir::Function* f = todo.back();
    todo.pop_back();
    for (const ir::Eqn& e : f->eqns) {
      if (e.prim == ir::Prim::kReduceSum && is_float(f->type(e.out[0]).dtype)) return false;
      for (const auto& r : e.params.regions) todo.push_back(r.get());
    }
  }
  return true;
}

std::shared_ptr<const backend::Executable> compile_tiered(std::shared_ptr<const ir::Function> fn,
                                                          const backend::CompileOptions& options) {
  backend::CompileOptions first = options;
  first.quick = env_flag("TRACEJIT_TIERED", "quick") || quick_tier_exact(*fn, options.fast_math);
  first.keep_object = false;
  std::shared_ptr<const backend::Executable> code = backend::compile(*fn, first);
  backend::CompileOptions optimized = options;
  optimized.full_codegen = true;
  return std::make_shared<TieredExecutable>(std::move(code), std::move(fn), optimized);
}

int64_t tier_swaps() { return g_tier_swaps.load(std::memory_order_relaxed); }

}  // namespace tracejit::detail

#include "runtime/tiered.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "runtime/diagnostics.h"
#include "tracejit/error.h"

namespace tracejit::detail {
namespace {

std::atomic<int64_t> g_tier_swaps{0};
std::atomic<bool> g_no_background{false};  // disable_background_compiles()

class TieredExecutable final : public backend::Executable {
 public:
  explicit TieredExecutable(std::shared_ptr<const backend::Executable> quick)
      : quick_(std::move(quick)), current_(quick_.get()) {}

  std::vector<Array> run(std::span<const Array> inputs) const override {
    return current_.load(std::memory_order_acquire)->run(inputs);
  }
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
  // Called once, by the background thread. `optimized_` is written before the pointer that
  // publishes it, and read only through that pointer.
  void install(std::shared_ptr<const backend::Executable> exe) {
    optimized_ = std::move(exe);
    current_.store(optimized_.get(), std::memory_order_release);
    g_tier_swaps.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  const backend::Executable& now() const { return *current_.load(std::memory_order_acquire); }

  std::shared_ptr<const backend::Executable> quick_;
  std::shared_ptr<const backend::Executable> optimized_;
  std::atomic<const backend::Executable*> current_;
};

struct Job {
  std::weak_ptr<TieredExecutable> target;
  std::shared_ptr<const ir::Function> fn;
  backend::CompileOptions options;
  std::function<void(const backend::Executable&)> on_optimized;
};

// The one background thread, started with the first job. At exit an atexit handler drops the
// queue and joins the thread (letting a compile in progress finish). It is registered when the
// thread starts and again after the first compile, so that it runs before the destructors of
// the function-local statics LLVM creates in its first compiles, which that compile may use.
class Background {
 public:
  static Background& instance() {
    static Background* background = new Background();  // leaked: the atexit handler stops it
    return *background;
  }
  void push(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;  // exiting
    if (!thread_.joinable()) {
      thread_ = std::thread([this] { loop(); });
      std::atexit([] { instance().stop(); });
    }
    queue_.push_back(std::move(job));
    ++queued_;
    wake_.notify_one();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = queued_;
    idle_.wait(lock, [&] { return finished_ >= target; });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
      finished_ += queue_.size();
      queue_.clear();
      wake_.notify_all();
      idle_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (bool first = true;; first = false) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      Job job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      run(job);
      job = Job{};  // its executable and IR go before the count says so
      if (first) std::atexit([] { instance().stop(); });
      lock.lock();
      ++finished_;
      idle_.notify_all();
    }
  }

  static void run(const Job& job) {
    if (job.target.expired()) return;  // dropped meanwhile: nobody would run the code
    try {
      auto t0 = std::chrono::steady_clock::now();
      std::shared_ptr<const backend::Executable> exe = backend::compile(*job.fn, job.options);
      if (job.on_optimized) job.on_optimized(*exe);
      if (std::shared_ptr<TieredExecutable> target = job.target.lock()) target->install(std::move(exe));
      if (env_flag("TRACEJIT_LOG", "compile"))
        std::cerr << "[jit] compile '" << job.options.name << "': optimized tier swapped in after "
                  << seconds_since(t0) * 1e3 << " ms in the background\n";
    } catch (const std::exception& e) {
      std::cerr << "[jit] warning: the optimized compile of '" << job.options.name
                << "' failed in the background (" << e.what() << "); it keeps running its quick code\n";
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<Job> queue_;
  uint64_t queued_ = 0, finished_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

bool tiers_enabled(const JitOptions& options) {
  return options.tiered && !g_no_background.load(std::memory_order_relaxed) &&
         !env_flag("TRACEJIT_TIERED", "0");
}

std::shared_ptr<const backend::Executable> compile_tiered(
    std::shared_ptr<const ir::Function> fn, const backend::CompileOptions& options,
    std::function<void(const backend::Executable&)> on_optimized) {
  backend::CompileOptions quick = options;
  quick.quick = true;
  quick.keep_object = false;
  auto exe = std::make_shared<TieredExecutable>(backend::compile(*fn, quick));
  // TRACEJIT_TIERED=quick keeps the quick code alone, to measure it (tools/bench).
  if (!env_flag("TRACEJIT_TIERED", "quick"))
    Background::instance().push(Job{exe, std::move(fn), options, std::move(on_optimized)});
  return exe;
}

bool runs_optimized(const backend::Executable& exe) {
  const auto* tiered = dynamic_cast<const TieredExecutable*>(&exe);
  return tiered ? tiered->optimized() : true;
}

int64_t tier_swaps() { return g_tier_swaps.load(std::memory_order_relaxed); }

void wait_for_background_compiles() { Background::instance().wait(); }

void disable_background_compiles() { g_no_background.store(true, std::memory_order_relaxed); }

}  // namespace tracejit::detail

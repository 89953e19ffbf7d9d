// backend::compile (fusion, lowering, ORC) and the runtime that runs the kernels: one slot array
// of buffer pointers per run, kernels in order, large ranges cut into chunks across threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/container/inlined_vector.h"
#include "backend/compile.h"
#include "backend/fusion.h"
#include "backend/lower_llvm.h"
#include "frontend/debug_format.h"
#include "frontend/errors.h"
#include "trace/array_impl.h"

namespace tracejit::backend {
namespace {

// A kernel call runs on several threads when its work (Kernel::work units, about 0.02-0.03 ns
// each once vectorized) reaches kParallelMinWork, in chunks of at least kMinChunkWork: about 10
// and 3 microseconds, against a few microseconds to wake a worker.
constexpr int64_t kParallelMinWork = int64_t{1} << 19;
constexpr int64_t kMinChunkWork = int64_t{1} << 17;
constexpr int64_t kChunksPerThread = 4;

using KernelFn = void (*)(void** buffers, int64_t begin, int64_t end);

struct Step {
  KernelFn fn = nullptr;  // null: host step `host` of the program
  int host = -1;
  int64_t trip_count = 0;
  int64_t work = 0;
  bool splittable = false;
};

// Where an output or a host step's operand comes from: an input, a constant, or a slot.
struct OutputSource {
  enum Kind : uint8_t { kInput, kConstant, kSlot } kind;
  int index = 0;  // input position or slot
  Array constant;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A pool of hardware_concurrency() - 1 workers. The calling thread runs chunks too, and every
// chunk is claimed from an atomic counter, so a worker that wakes late (a busy machine) costs
// nothing: the caller takes its chunks. Several run() calls may share the pool at once.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // never destroyed: workers may outlive main
    return *pool;
  }
  int64_t threads() const { return static_cast<int64_t>(workers_) + 1; }

  // Calls fn(c) for every c in [0, chunks), on this thread and on idle workers.
  template <class F>
  void run(int64_t chunks, F&& fn) {
    Job job;
    job.chunks = chunks;
    job.call = [](void* f, int64_t c) { (*static_cast<F*>(f))(c); };
    job.fn = &fn;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(&job);
    }
    for (int64_t i = 0; i < std::min<int64_t>(chunks - 1, static_cast<int64_t>(workers_)); ++i)
      wake_.notify_one();
    work_on(job);
    std::unique_lock<std::mutex> lock(mutex_);
    remove(job);
    finished_.wait(lock, [&] { return job.active == 0; });
  }

 private:
  struct Job {
    int64_t chunks = 0;
    std::atomic<int64_t> next{0};
    void (*call)(void*, int64_t) = nullptr;
    void* fn = nullptr;
    int active = 0;  // workers inside this job; guarded by mutex_
  };

  ThreadPool() : workers_(std::max(1u, std::thread::hardware_concurrency()) - 1) {
    for (unsigned i = 0; i < workers_; ++i) std::thread([this] { worker(); }).detach();
  }

  static void work_on(Job& job) {
    for (int64_t c; (c = job.next.fetch_add(1, std::memory_order_relaxed)) < job.chunks;)
      job.call(job.fn, c);
  }
  void remove(Job& job) {
    auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) queue_.erase(it);
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Job& job = *queue_.front();
      ++job.active;
      lock.unlock();
      work_on(job);
      lock.lock();
      remove(job);  // exhausted: let the next job through
      if (--job.active == 0) finished_.notify_all();
    }
  }

  const unsigned workers_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::deque<Job*> queue_;
};

void run_step(const Step& step, void** slots) {
  const int64_t total = step.trip_count * step.work;
  ThreadPool& pool = ThreadPool::instance();
  const int64_t chunks =
      !step.splittable || total < kParallelMinWork || pool.threads() < 2
          ? 1
          : std::min({step.trip_count, pool.threads() * kChunksPerThread, total / kMinChunkWork});
  if (chunks < 2) {
    step.fn(slots, 0, step.trip_count);
    return;
  }
  pool.run(chunks, [&](int64_t c) {
    step.fn(slots, step.trip_count * c / chunks, step.trip_count * (c + 1) / chunks);
  });
}

class CompiledProgram final : public Executable {
 public:
  CompiledProgram(const ir::Function& fn, const FusionPlan& plan, CompiledModule module,
                  const CompileOptions& options)
      : module_(std::move(module)) {
    for (VarId v : fn.inputs) {
      input_types_.push_back(fn.type(v));
      input_slots_.push_back(plan.slot[static_cast<size_t>(v)]);
    }
    num_slots_ = plan.slots.size();
    for (size_t i = 0; i < fn.const_vars.size(); ++i) {
      int slot = plan.slot[static_cast<size_t>(fn.const_vars[i])];
      if (slot >= 0) constants_.emplace_back(slot, fn.const_values[i]);
    }
    size_t next_host = 0;
    auto add_host_steps = [&](int after) {
      for (; next_host < plan.host_steps.size() && plan.host_steps[next_host].after == after; ++next_host) {
        const ir::Eqn& e = fn.eqns[static_cast<size_t>(plan.host_steps[next_host].eqn)];
        HostPrint print{e.params.text, {}};
        for (VarId v : e.in) print.operands.push_back(source_of(fn, plan, v));
        steps_.push_back(Step{.host = static_cast<int>(host_prints_.size())});
        host_prints_.push_back(std::move(print));
      }
    };
    add_host_steps(-1);
    for (size_t k = 0; k < plan.kernels.size(); ++k) {
      const Kernel& kernel = plan.kernels[k];
      for (VarId r : kernel.roots) temporaries_.emplace_back(plan.slot[static_cast<size_t>(r)], fn.type(r));
      bool empty = std::all_of(kernel.roots.begin(), kernel.roots.end(),
                               [&](VarId r) { return fn.type(r).size() == 0; });
      if (!empty && kernel.trip_count > 0) {
        Step step;
        step.fn = reinterpret_cast<KernelFn>(module_.symbol(kernel_symbol(options.name, k)));
        step.trip_count = kernel.trip_count;
        step.work = kernel.work;
        step.splittable = kernel.splittable;
        steps_.push_back(step);
      }
      add_host_steps(static_cast<int>(k));
    }
    for (VarId v : fn.outputs) outputs_.push_back(source_of(fn, plan, v));
    if (options.want_texts) {
      llvm_ir_ = module_.llvm_ir();
      optimized_llvm_ir_ = module_.optimized_llvm_ir();
      assembly_ = module_.assembly();
    }
  }

  std::vector<Array> run(std::span<const Array> inputs) const override {
    if (inputs.size() != input_types_.size())
      detail::raise<Error>("jit", "the compiled function takes ", input_types_.size(),
                           " inputs, got ", inputs.size());
    absl::InlinedVector<void*, 32> slots(num_slots_, nullptr);
    absl::InlinedVector<Array, 32> buffers(num_slots_);  // this run's own buffers, by slot
    for (size_t i = 0; i < inputs.size(); ++i) {
      const detail::ArrayImpl& impl = detail::concrete_impl(inputs[i], "jit");
      const ir::Type& t = input_types_[i];
      if (impl.type.dtype != t.dtype || impl.type.shape != t.shape)
        detail::raise<TypeError>("jit", "input ", i, " is ", ir::type_str(impl.type),
                                 " but the function was compiled for ", ir::type_str(t));
      slots[static_cast<size_t>(input_slots_[i])] = impl.buffer->data();
    }
    for (const auto& [slot, value] : constants_) slots[static_cast<size_t>(slot)] = value.impl()->buffer->data();
    for (const auto& [slot, type] : temporaries_) {
      Array& a = buffers[static_cast<size_t>(slot)];
      a = detail::make_concrete(type);
      slots[static_cast<size_t>(slot)] = a.impl()->buffer->data();
    }
    auto value = [&](const OutputSource& o) -> Array {
      switch (o.kind) {
        case OutputSource::kInput: return inputs[static_cast<size_t>(o.index)];
        case OutputSource::kConstant: return o.constant;
        case OutputSource::kSlot: return buffers[static_cast<size_t>(o.index)];
      }
      return Array();
    };
    std::vector<Array> operands;
    for (const Step& step : steps_) {
      if (step.fn) {
        run_step(step, slots.data());
        continue;
      }
      const HostPrint& print = host_prints_[static_cast<size_t>(step.host)];
      operands.clear();
      for (const OutputSource& o : print.operands) operands.push_back(value(o));
      detail::emit_debug(print.text, operands);
    }

    std::vector<Array> out;
    out.reserve(outputs_.size());
    for (const OutputSource& o : outputs_) out.push_back(value(o));
    return out;
  }

  const std::string& fused_ir() const override { return fused_ir_; }
  const std::string& llvm_ir() const override { return llvm_ir_; }
  const std::string& optimized_llvm_ir() const override { return optimized_llvm_ir_; }
  const std::string& assembly() const override { return assembly_; }
  const BackendTimes& times() const override { return times_; }

  std::string fused_ir_;
  BackendTimes times_;

 private:
  using VarId = ir::VarId;
  // A debug_print run on the host: its format and where each operand's value lives.
  struct HostPrint {
    std::string text;
    std::vector<OutputSource> operands;
  };

  static OutputSource source_of(const ir::Function& fn, const FusionPlan& plan, VarId v) {
    OutputSource out{OutputSource::kSlot};
    switch (plan.storage[static_cast<size_t>(v)]) {
      case Storage::kInput:
        out.kind = OutputSource::kInput;
        out.index = static_cast<int>(std::find(fn.inputs.begin(), fn.inputs.end(), v) - fn.inputs.begin());
        break;
      case Storage::kConstant: case Storage::kLiteral:
        out.kind = OutputSource::kConstant;
        for (size_t i = 0; i < fn.const_vars.size(); ++i)
          if (fn.const_vars[i] == v) out.constant = fn.const_values[i];
        break;
      case Storage::kComputed: case Storage::kResult:
        out.index = plan.slot[static_cast<size_t>(v)];
        break;
      case Storage::kInline: case Storage::kUnused:
        TJ_CHECK(false, "value ", v, " has no storage");
    }
    return out;
  }

  CompiledModule module_;  // owns the code every Step points into
  std::vector<ir::Type> input_types_;
  std::vector<int> input_slots_;
  size_t num_slots_ = 0;
  std::vector<std::pair<int, Array>> constants_;
  std::vector<std::pair<int, ir::Type>> temporaries_;
  std::vector<Step> steps_;  // kernels and host steps, in order
  std::vector<HostPrint> host_prints_;
  std::vector<OutputSource> outputs_;
  std::string llvm_ir_, optimized_llvm_ir_, assembly_;
};

}  // namespace

std::shared_ptr<const Executable> compile(const ir::Function& fn, const CompileOptions& options) {
  BackendTimes times;
  auto start = std::chrono::steady_clock::now();
  FusionOptions fusion;
  FusionPlan plan = plan_fusion(fn, fusion);
  times.fusion_s = seconds_since(start);
  std::optional<CompiledModule> module;
  try {
    module.emplace(lower_and_compile(fn, plan, fusion, options, &times.lower_s));
  } catch (const KernelTooLarge&) {
    // Some value is recomputed at too many index patterns: store every moved layout result.
    start = std::chrono::steady_clock::now();
    fusion.materialize_layout = true;
    plan = plan_fusion(fn, fusion);
    times.fusion_s += seconds_since(start);
    double lower_s = 0;
    module.emplace(lower_and_compile(fn, plan, fusion, options, &lower_s));
    times.lower_s += lower_s;
  }
  times.llvm_opt_s = module->llvm_opt_s();
  times.codegen_s = module->codegen_s();
  start = std::chrono::steady_clock::now();
  auto program = std::make_shared<CompiledProgram>(fn, plan, std::move(*module), options);
  program->fused_ir_ = fused_ir_str(fn, plan);
  times.fusion_s += seconds_since(start);
  program->times_ = times;
  return program;
}

}  // namespace tracejit::backend

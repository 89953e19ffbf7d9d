// backend::compile (fusion, lowering, ORC) and the runtime that runs the plan: a tree of blocks
// (the program, and one per region of each loop or branch), each run with a slot array of buffer
// pointers; kernels in order, large ranges cut into chunks across threads; loops and branches
// driven here, on the host, over carry buffers allocated once per call.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <thread>

#include "absl/container/inlined_vector.h"
#include "backend/compile.h"
#include "backend/compiled_module.h"
#include "backend/fusion.h"
#include "backend/lower_llvm.h"
#include "base/debug_format.h"
#include "distributed/collectives.h"
#include "base/errors.h"
#include "base/array_impl.h"

namespace tracejit::backend {
namespace {

// A kernel call runs on several threads from kParallelMinWork (fusion.h), in chunks of at least
// kMinChunkWork: about 3 microseconds each.
constexpr int64_t kMinChunkWork = int64_t{1} << 17;
constexpr int64_t kChunksPerThread = 4;

using KernelFn = void (*)(void** buffers, int64_t begin, int64_t end);

// Where a value comes from when a block runs: one of its inputs, a constant, or a slot.
struct Source {
  enum Kind : uint8_t { kInput, kConstant, kSlot } kind = kSlot;
  int index = 0;  // input position or slot
  Array constant;
};

struct Block;

// A control-flow equation run on the host: its operands in the enclosing block, the slots that
// receive its results, and one block per region.
struct RegionStep {
  ir::Prim prim = ir::Prim::kCond;
  int64_t length = 0;
  bool reverse = false, trajectory = false;
  size_t group0 = 0, group1 = 0;
  std::vector<Source> operands;
  std::vector<int64_t> operand_bytes;
  std::vector<int> result_slots;
  std::vector<ir::Type> result_types;
  std::vector<std::unique_ptr<Block>> blocks;
  ScanDriver driver = nullptr;  // a driven scan: the whole loop as one compiled function
  WhileDriver while_driver = nullptr;  // the same for a while loop
  // A chunked scan (fusion.h): the range its body's kernels split, and their work per element.
  bool chunked = false;
  int64_t range = 0, work = 0;
};

// An effect run on the host (debug_print, all_sum): where each operand's value lives, and the
// slot receiving its result, if it has one.
struct HostCall {
  ir::Prim prim = ir::Prim::kDebugPrint;
  std::string text;
  std::vector<Source> operands;
  std::vector<ir::Type> types;
  int result_slot = -1;
};

struct Step {
  KernelFn fn = nullptr;  // a kernel; else host step `host` or region step `region`
  KernelFn combine = nullptr;  // a split reduction's second function: run once after fn
  int host = -1, region = -1;
  int64_t trip_count = 0;
  int64_t work = 0;
  // Kernel::parallel(): else the step always runs over [0, trip_count), which its code may
  // assume (lower_llvm.cpp's lower_function).
  bool parallel = false;
};

// One plan, ready to run: the whole program, or a region's body.
struct Block {
  size_t num_slots = 0;
  std::vector<ir::Type> input_types;
  std::vector<int> input_slots;
  std::vector<std::pair<int, Array>> constants;
  struct Temporary {
    int slot;
    ir::Type type;
    int64_t bytes;
    int64_t scratch = -1;  // flat blocks: its offset in the call's stack scratch (no output reads it)
    int output = -1;       // flat blocks: the one output that reads it, which it is made in
  };
  std::vector<Temporary> temporaries;  // kernel results, allocated per frame
  void add_temporary(int slot, const ir::Type& type) {
    temporaries.push_back({slot, type, type.size() * dtype_size(type.dtype)});
  }
  std::vector<Step> steps;                            // in order
  std::vector<HostCall> host_calls;
  std::vector<RegionStep> regions;
  std::vector<Source> outputs;
  std::vector<uint8_t> output_moves;  // per output: no later output reads its slot, so it may move
  std::vector<int64_t> output_bytes;
  // Per output: the slot a caller may point at its own buffer before the block runs (the
  // output is then written there directly), or -1 when it must be copied out afterwards.
  std::vector<int> redirect;
  // Kernels only, over few slots and temporaries: the root block then runs on stack arrays
  // (run_flat). The temporaries that no output reads live in a stack scratch area; the others
  // are Arrays, their owners indexed by owner_of_slot (-1: none).
  bool flat = false;
  bool zero_slots = false;             // some slot is none of the above: clear them first
  std::vector<int> owner_of_slot;
  // Flat blocks: `temporaries` in three runs, so that run_flat's loops have no branches: the
  // first num_scratch in the scratch area, the next num_direct made in their outputs, the rest
  // owned. And the outputs take_output hands over (those not made in place).
  size_t num_scratch = 0, num_direct = 0;
  std::vector<int> taken_outputs;
  // Flat blocks of one small kernel whose every result is an output made in place, over at
  // most kSimpleMaxSlots slots, and nothing else (no constants, scratch, owned temporaries or
  // outputs to hand over): run_simple runs them with none of run_flat's empty loops.
  bool simple = false;
};

// The most slots and temporaries a flat block has: a 64-leaf call is 65 slots and one temporary.
constexpr size_t kFlatMaxSlots = 256;
constexpr size_t kFlatMaxTemporaries = 16;
// The stack scratch of a flat block's call, for the temporaries no output reads (the partial
// results between its kernels).
constexpr int64_t kFlatScratchBytes = 4096;
// The most slots a simple block (Block::simple) has.
constexpr size_t kSimpleMaxSlots = 32;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Waits until done() holds, for at most kSpinTime, yielding the core between checks; false when
// it did not. Waking a sleeping thread costs 5-50 us (a futex call, then the scheduler), as much
// as a chunk; the kernels of one call, and the calls of a loop, come microseconds apart.
constexpr auto kSpinTime = std::chrono::microseconds(50);
template <class P>
bool spin_until(P&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A pool of hardware_concurrency() - 1 workers. The calling thread runs chunks too, and every
// chunk is claimed from an atomic counter, so a worker that wakes late (a busy machine) costs
// nothing: the caller takes its chunks. Several run() calls may share the pool at once. A
// worker spins for a while after its last job before it sleeps, and the caller for the workers
// still in its job, so back-to-back jobs make no system calls.
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
    unsigned sleeping = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(&job);
      queued_.fetch_add(1, std::memory_order_release);
      sleeping = sleeping_;
    }
    const int64_t helpers = std::min<int64_t>(chunks - 1, static_cast<int64_t>(workers_));
    for (int64_t i = 0; i < std::min<int64_t>(helpers, sleeping); ++i) wake_.notify_one();
    work_on(job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      remove(job);  // no worker joins it now
    }
    if (spin_until([&] { return job.active.load(std::memory_order_acquire) == 0; })) return;
    std::unique_lock<std::mutex> lock(mutex_);
    job.waiting = true;
    finished_.wait(lock, [&] { return job.active.load(std::memory_order_acquire) == 0; });
  }

 private:
  struct Job {
    int64_t chunks = 0;
    std::atomic<int64_t> next{0};
    void (*call)(void*, int64_t) = nullptr;
    void* fn = nullptr;
    std::atomic<int> active{0};  // workers inside this job; changed under mutex_
    bool waiting = false;        // the caller sleeps on finished_; guarded by mutex_
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
    if (it == queue_.end()) return;
    queue_.erase(it);
    queued_.fetch_sub(1, std::memory_order_relaxed);
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      if (queue_.empty()) {
        lock.unlock();
        spin_until([&] { return queued_.load(std::memory_order_acquire) > 0; });
        lock.lock();
        ++sleeping_;
        wake_.wait(lock, [&] { return !queue_.empty(); });
        --sleeping_;
      }
      Job& job = *queue_.front();
      job.active.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      work_on(job);
      lock.lock();
      remove(job);  // exhausted: let the next job through
      // The caller may return once active is 0: nothing of the job is touched after.
      const bool waiting = job.waiting;
      if (job.active.fetch_sub(1, std::memory_order_acq_rel) == 1 && waiting)
        finished_.notify_all();
    }
  }

  const unsigned workers_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::deque<Job*> queue_;
  std::atomic<int> queued_{0};  // queue_.size(), for spinning workers to read without the lock
  unsigned sleeping_ = 0;       // workers waiting on wake_; guarded by mutex_
};

// A step big enough for the pool, in chunks.
[[gnu::noinline]] void run_parallel(const Step& step, void** slots) {
  const int64_t total = step.trip_count * step.work;
  ThreadPool& pool = ThreadPool::instance();
  const int64_t chunks =
      pool.threads() < 2
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

// Inlined into the callers' loops: the common small step is one indirect call.
inline void run_range(const Step& step, void** slots) {
  if (!step.parallel) step.fn(slots, 0, step.trip_count);
  else run_parallel(step, slots);
}

inline void run_step(const Step& step, void** slots) {
  run_range(step, slots);
  if (step.combine) step.combine(slots, 0, 1);
}

// ---- Building blocks from plans ----

int64_t bytes_of(const ir::Type& t) { return t.size() * dtype_size(t.dtype); }

Source source_of(const ir::Function& fn, const FusionPlan& plan, ir::VarId v) {
  Source out;
  switch (plan.storage[static_cast<size_t>(v)]) {
    case Storage::kInput:
      out.kind = Source::kInput;
      out.index = static_cast<int>(std::find(fn.inputs.begin(), fn.inputs.end(), v) - fn.inputs.begin());
      break;
    case Storage::kConstant: case Storage::kLiteral:
      out.kind = Source::kConstant;
      for (size_t i = 0; i < fn.const_vars.size(); ++i)
        if (fn.const_vars[i] == v) out.constant = detail::array_over(fn.type(v), fn.const_values[i]);
      break;
    case Storage::kComputed: case Storage::kResult:
      out.index = plan.slot[static_cast<size_t>(v)];
      break;
    case Storage::kInline: case Storage::kUnused:
      TJ_CHECK(false, "value ", v, " has no storage");
  }
  return out;
}

// Whether `b` runs as a flat block, and where its temporaries live then.
void plan_flat(Block& b) {
  b.flat = b.regions.empty() && b.host_calls.empty() && b.num_slots <= kFlatMaxSlots;
  if (!b.flat) return;
  std::vector<int> readers(b.num_slots, 0), reader(b.num_slots, -1);  // outputs reading each slot
  for (size_t k = 0; k < b.outputs.size(); ++k)
    if (const Source& o = b.outputs[k]; o.kind == Source::kSlot) {
      ++readers[static_cast<size_t>(o.index)];
      reader[static_cast<size_t>(o.index)] = static_cast<int>(k);
    }
  std::vector<bool> set(b.num_slots, false);
  for (const auto& [slot, value] : b.constants) set[static_cast<size_t>(slot)] = true;
  for (int slot : b.input_slots) set[static_cast<size_t>(slot)] = true;
  b.owner_of_slot.assign(b.num_slots, -1);
  std::vector<bool> direct(b.outputs.size(), false);  // per output: made in place (Temporary::output)
  int64_t used = 0;
  int owners = 0;
  for (Block::Temporary& t : b.temporaries) {
    const auto slot = static_cast<size_t>(t.slot);
    set[slot] = true;
    const int64_t size = (std::max<int64_t>(t.bytes, 1) + 63) / 64 * 64;  // 64-byte aligned
    if (readers[slot] == 0 && used + size <= kFlatScratchBytes) {
      t.scratch = used;
      used += size;
    } else if (readers[slot] == 1) {
      t.output = reader[slot];
      direct[static_cast<size_t>(t.output)] = true;
    } else {
      b.owner_of_slot[slot] = owners++;
    }
  }
  b.zero_slots = std::find(set.begin(), set.end(), false) != set.end();
  b.flat = static_cast<size_t>(owners) <= kFlatMaxTemporaries;
  if (!b.flat) {  // a Frame runs it: every temporary in its buffers
    for (Block::Temporary& t : b.temporaries) t.output = -1;
    return;
  }
  auto rank = [](const Block::Temporary& t) { return t.scratch >= 0 ? 0 : t.output >= 0 ? 1 : 2; };
  std::stable_sort(b.temporaries.begin(), b.temporaries.end(),
                   [&](const auto& x, const auto& y) { return rank(x) < rank(y); });
  for (const Block::Temporary& t : b.temporaries) {
    b.num_scratch += rank(t) == 0;
    b.num_direct += rank(t) == 1;
  }
  for (size_t k = 0; k < b.outputs.size(); ++k)
    if (!direct[k]) b.taken_outputs.push_back(static_cast<int>(k));
  b.simple = b.constants.empty() && b.num_scratch == 0 && b.num_direct == b.temporaries.size() &&
             b.taken_outputs.empty() && !b.zero_slots && b.num_slots <= kSimpleMaxSlots &&
             b.steps.size() == 1 && !b.steps[0].parallel && b.steps[0].combine == nullptr;
}

std::unique_ptr<Block> build_block(const ir::Function& fn, const FusionPlan& plan,
                                   const CompiledModule& module, const std::string& prefix) {
  auto block = std::make_unique<Block>();
  for (ir::VarId v : fn.inputs) {
    block->input_types.push_back(fn.type(v));
    block->input_slots.push_back(plan.slot[static_cast<size_t>(v)]);
  }
  block->num_slots = plan.slots.size();
  for (size_t i = 0; i < fn.const_vars.size(); ++i) {
    int slot = plan.slot[static_cast<size_t>(fn.const_vars[i])];
    if (slot >= 0)
      block->constants.emplace_back(slot, detail::array_over(fn.type(fn.const_vars[i]), fn.const_values[i]));
  }
  auto add_host_call = [&](int eqn) {
    const ir::Eqn& e = fn.eqns[static_cast<size_t>(eqn)];
    HostCall call{e.prim, e.params.text, {}, {}};
    for (ir::VarId v : e.in) {
      call.operands.push_back(source_of(fn, plan, v));
      call.types.push_back(fn.type(v));
    }
    if (!e.out.empty()) {
      call.result_slot = plan.slot[static_cast<size_t>(e.out[0])];
      block->add_temporary(call.result_slot, fn.type(e.out[0]));
    }
    block->steps.push_back(Step{.host = static_cast<int>(block->host_calls.size())});
    block->host_calls.push_back(std::move(call));
  };
  size_t next_host = 0;
  auto add_host_steps = [&](int after) {
    for (; next_host < plan.host_steps.size() && plan.host_steps[next_host].after == after;
         ++next_host)
      add_host_call(plan.host_steps[next_host].eqn);
  };
  add_host_steps(-1);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const Kernel& kernel = plan.kernels[k];
    if (kernel.kind == KernelKind::kHost) {
      add_host_call(kernel.eqn);
    } else if (kernel.kind == KernelKind::kRegion) {
      const ir::Eqn& e = fn.eqns[static_cast<size_t>(kernel.eqn)];
      RegionStep r;
      r.prim = e.prim;
      r.length = e.params.length;
      r.reverse = e.params.reverse;
      r.trajectory = e.params.trajectory;
      if (!e.params.groups.empty()) r.group0 = static_cast<size_t>(e.params.groups[0]);
      if (e.params.groups.size() > 1) r.group1 = static_cast<size_t>(e.params.groups[1]);
      for (ir::VarId v : e.in) {
        r.operands.push_back(source_of(fn, plan, v));
        r.operand_bytes.push_back(bytes_of(fn.type(v)));
      }
      for (ir::VarId v : e.out) {
        r.result_slots.push_back(plan.slot[static_cast<size_t>(v)]);
        r.result_types.push_back(fn.type(v));
      }
      for (size_t i = 0; i < kernel.regions.size(); ++i)
        r.blocks.push_back(build_block(*e.params.regions[i], *kernel.regions[i], module,
                                       region_prefix(prefix, k, i)));
      if (kernel.driven && e.prim == ir::Prim::kScan)
        r.driver = reinterpret_cast<ScanDriver>(module.symbol(driver_symbol(region_prefix(prefix, k, 0))));
      if (kernel.driven && e.prim == ir::Prim::kWhile)
        r.while_driver =
            reinterpret_cast<WhileDriver>(module.symbol(driver_symbol(region_prefix(prefix, k, 1))));
      if (kernel.chunked) {
        r.chunked = true;
        r.range = kernel.regions[0]->kernels[0].trip_count;
        for (const Kernel& b : kernel.regions[0]->kernels) r.work += b.work;
      }
      block->steps.push_back(Step{.region = static_cast<int>(block->regions.size())});
      block->regions.push_back(std::move(r));
    } else {
      for (ir::VarId r : kernel.roots)
        block->add_temporary(plan.slot[static_cast<size_t>(r)], fn.type(r));
      for (const auto& [slot, type] : kernel.partials) block->add_temporary(slot, type);
      if (kernel.runs) {
        Step step;
        step.fn = reinterpret_cast<KernelFn>(module.symbol(kernel_symbol(prefix, k)));
        if (kernel.parts > 0)
          step.combine = reinterpret_cast<KernelFn>(module.symbol(combine_symbol(prefix, k)));
        step.trip_count = kernel.trip_count;
        step.work = kernel.work;
        step.parallel = kernel.parallel();
        block->steps.push_back(step);
      }
    }
    add_host_steps(static_cast<int>(k));
  }
  for (ir::VarId v : fn.outputs) {
    block->outputs.push_back(source_of(fn, plan, v));
    block->output_bytes.push_back(bytes_of(fn.type(v)));
  }
  for (size_t k = 0; k < block->outputs.size(); ++k) {
    const Source& o = block->outputs[k];
    bool later = false;
    for (size_t j = k + 1; j < block->outputs.size(); ++j)
      later |= block->outputs[j].kind == Source::kSlot && block->outputs[j].index == o.index;
    block->output_moves.push_back(o.kind == Source::kSlot && !later);
  }
  block->redirect = plan.redirect;
  plan_flat(*block);
  return block;
}

// ---- Running blocks ----

struct Frame;

// What a region step keeps across its executions within one call: the frames of its blocks
// and the buffers of its carries and results, allocated on first use, never per iteration.
struct RegionState {
  std::vector<std::unique_ptr<Frame>> frames;
  std::vector<Array> sets[2];  // two carry buffers per leaf: a step reads one, writes the other
  std::vector<Array> extra;    // scan: the stacked ys; while: step count and trajectory; cond: results
  std::vector<void*> in, out;  // scratch pointer lists for the blocks
};

// One run of a block: its slot array and the buffers it owns.
struct Frame {
  explicit Frame(const Block& b) : block(b), slots(b.num_slots, nullptr), buffers(b.num_slots) {
    for (const auto& [slot, value] : b.constants) slots[static_cast<size_t>(slot)] = value.impl()->elements;
    for (const Block::Temporary& t : b.temporaries) {
      Array& a = buffers[static_cast<size_t>(t.slot)];
      a = detail::make_concrete(t.type, t.bytes);
      slots[static_cast<size_t>(t.slot)] = a.impl()->elements;
    }
    regions.resize(b.regions.size());
  }
  const void* ptr(const Source& s) const {
    switch (s.kind) {
      case Source::kInput: return slots[static_cast<size_t>(block.input_slots[static_cast<size_t>(s.index)])];
      case Source::kConstant: return s.constant.impl()->elements;
      case Source::kSlot: return slots[static_cast<size_t>(s.index)];
    }
    return nullptr;
  }
  RegionState& state(size_t region) {
    std::unique_ptr<RegionState>& st = regions[region];
    if (!st) {
      st = std::make_unique<RegionState>();
      st->frames.resize(block.regions[region].blocks.size());
    }
    return *st;
  }
  Frame& sub(size_t region, size_t index) {
    std::unique_ptr<Frame>& f = state(region).frames[index];
    if (!f) f = std::make_unique<Frame>(*block.regions[region].blocks[index]);
    return *f;
  }

  const Block& block;
  absl::InlinedVector<void*, 16> slots;
  absl::InlinedVector<Array, 16> buffers;  // by slot: kernel results and region results it owns
  std::vector<std::unique_ptr<RegionState>> regions;
};

void run_frame(Frame& f, const void* const* inputs);

// Runs a region's block on `inputs`, leaving its outputs at `outputs` (written in place where
// the block allows, copied otherwise).
void run_into(Frame& f, const void* const* inputs, void* const* outputs) {
  const Block& b = f.block;
  for (size_t k = 0; k < b.redirect.size(); ++k)
    if (b.redirect[k] >= 0) f.slots[static_cast<size_t>(b.redirect[k])] = outputs[k];
  run_frame(f, inputs);
  for (size_t k = 0; k < b.outputs.size(); ++k)
    if (b.redirect[k] < 0 && b.output_bytes[k] > 0)
      std::memcpy(outputs[k], f.ptr(b.outputs[k]), static_cast<size_t>(b.output_bytes[k]));
}

std::vector<Array> allocate(std::span<const ir::Type> types) {
  std::vector<Array> out;
  for (const ir::Type& t : types) out.push_back(detail::make_concrete(t));
  return out;
}

void* data(const Array& a) { return a.impl()->elements; }

void copy_into(const Array& dst, const void* src, int64_t bytes) {
  if (bytes > 0) std::memcpy(data(dst), src, static_cast<size_t>(bytes));
}

// cond runs the block its index selects; a call (left in place when the pipeline did not
// inline it) runs its one block.
void run_branch(Frame& f, const RegionStep& r, RegionState& st) {
  size_t branch = 0, first = 0;
  if (r.prim == ir::Prim::kCond) {
    const int32_t index = *static_cast<const int32_t*>(f.ptr(r.operands[0]));
    branch = static_cast<size_t>(std::clamp<int64_t>(index, 0, static_cast<int64_t>(r.blocks.size()) - 1));
    first = 1;
  }
  Frame& sub = f.sub(static_cast<size_t>(&r - f.block.regions.data()), branch);
  if (st.extra.empty()) st.extra = allocate(r.result_types);
  st.in.clear();
  for (size_t i = first; i < r.operands.size(); ++i) st.in.push_back(const_cast<void*>(f.ptr(r.operands[i])));
  st.out.clear();
  for (const Array& a : st.extra) st.out.push_back(data(a));
  run_into(sub, st.in.data(), st.out.data());
  for (size_t k = 0; k < r.result_slots.size(); ++k) {
    f.buffers[static_cast<size_t>(r.result_slots[k])] = st.extra[k];
    f.slots[static_cast<size_t>(r.result_slots[k])] = data(st.extra[k]);
  }
}

// The carries of a loop: `cur` is -1 while they are still the loop's operands, else the set
// that holds them.
struct Carries {
  RegionState& st;
  const RegionStep& r;
  const Frame& f;
  size_t first, count;  // where the init operands start, and how many
  int cur = -1;

  void bind(std::vector<void*>& ptrs, size_t at) const {
    for (size_t i = 0; i < count; ++i)
      ptrs[at + i] = cur < 0 ? const_cast<void*>(f.ptr(r.operands[first + i]))
                             : data(st.sets[cur][i]);
  }
  int next() const { return cur == 0 ? 1 : 0; }
  void targets(std::vector<void*>& ptrs, size_t at) const {
    for (size_t i = 0; i < count; ++i) ptrs[at + i] = data(st.sets[next()][i]);
  }
  // The final carries as arrays of this call: a loop that ran no step copies its init.
  const std::vector<Array>& finish() {
    if (cur < 0) {
      for (size_t i = 0; i < count; ++i)
        copy_into(st.sets[0][i], f.ptr(r.operands[first + i]), r.operand_bytes[first + i]);
      cur = 0;
    }
    return st.sets[cur];
  }
};

void prepare_sets(RegionState& st, const RegionStep& r, size_t count) {
  if (!st.sets[0].empty() || count == 0) return;
  std::span<const ir::Type> types(r.result_types.data(), count);
  st.sets[0] = allocate(types);
  st.sets[1] = allocate(types);
}

void run_while(Frame& f, const RegionStep& r, RegionState& st) {
  const size_t region = static_cast<size_t>(&r - f.block.regions.data());
  const size_t nc = r.group0, nb = r.group1, n = r.operands.size() - nc - nb;
  Frame& cond = f.sub(region, 0);
  Frame& body = f.sub(region, 1);
  prepare_sets(st, r, n);
  if (r.trajectory && st.extra.empty())
    st.extra = allocate(std::span<const ir::Type>(r.result_types).subspan(n));
  Carries carry{st, r, f, nc + nb, n};
  std::vector<void*> cin(nc + n), bin(nb + n), out(n);
  for (size_t i = 0; i < nc; ++i) cin[i] = const_cast<void*>(f.ptr(r.operands[i]));
  for (size_t i = 0; i < nb; ++i) bin[i] = const_cast<void*>(f.ptr(r.operands[nc + i]));
  if (r.trajectory)
    for (size_t i = 1; i < st.extra.size(); ++i)
      std::memset(data(st.extra[i]), 0, static_cast<size_t>(bytes_of(st.extra[i].impl()->type)));
  int64_t steps = 0;
  auto too_many = [&] {
    detail::raise<Error>("while_loop", "the loop needs more than max_iterations = ", r.length,
                         " steps; raise WhileOptions::max_iterations (it bounds the trajectory "
                         "that reverse-mode AD keeps)");
  };
  if (r.while_driver) {  // one call runs every step
    std::vector<void*> init(n), set0(n), set1(n), traj;
    for (size_t i = 0; i < nc; ++i) cond.slots[static_cast<size_t>(cond.block.input_slots[i])] = cin[i];
    for (size_t i = 0; i < nb; ++i) body.slots[static_cast<size_t>(body.block.input_slots[i])] = bin[i];
    for (size_t k = 0; k < n; ++k) {
      init[k] = const_cast<void*>(f.ptr(r.operands[nc + nb + k]));
      set0[k] = data(st.sets[0][k]);
      set1[k] = data(st.sets[1][k]);
    }
    if (r.trajectory)
      for (size_t i = 1; i < st.extra.size(); ++i) traj.push_back(data(st.extra[i]));
    steps = r.while_driver(cond.slots.data(), body.slots.data(), init.data(), set0.data(),
                           set1.data(), traj.data());
    if (steps < 0) too_many();
    if (steps > 0) carry.cur = static_cast<int>((steps - 1) % 2);
  }
  while (!r.while_driver) {
    carry.bind(cin, nc);
    run_frame(cond, cin.data());
    if (!*static_cast<const bool*>(cond.ptr(cond.block.outputs[0]))) break;
    if (r.length >= 0 && steps == r.length) too_many();
    carry.bind(bin, nb);
    if (r.trajectory)
      for (size_t i = 0; i < n; ++i) {
        const int64_t row = r.operand_bytes[nc + nb + i];
        if (row > 0) std::memcpy(static_cast<char*>(data(st.extra[1 + i])) + steps * row, bin[nb + i],
                                 static_cast<size_t>(row));
      }
    carry.targets(out, 0);
    run_into(body, bin.data(), out.data());
    carry.cur = carry.next();
    ++steps;
  }
  const std::vector<Array>& final_carry = carry.finish();
  std::vector<Array> results(final_carry.begin(), final_carry.end());
  if (r.trajectory) {
    *static_cast<int32_t*>(data(st.extra[0])) = static_cast<int32_t>(steps);
    results.insert(results.end(), st.extra.begin(), st.extra.end());
  }
  for (size_t k = 0; k < r.result_slots.size(); ++k) {
    f.buffers[static_cast<size_t>(r.result_slots[k])] = results[k];
    f.slots[static_cast<size_t>(r.result_slots[k])] = data(results[k]);
  }
}

void run_scan(Frame& f, const RegionStep& r, RegionState& st) {
  const size_t region = static_cast<size_t>(&r - f.block.regions.data());
  const size_t nk = r.group0, nc = r.group1, nx = r.operands.size() - nk - nc;
  const size_t ny = r.result_types.size() - nc;
  Frame& body = f.sub(region, 0);
  const Block& b = body.block;
  prepare_sets(st, r, nc);
  if (st.extra.empty() && ny > 0)
    st.extra = allocate(std::span<const ir::Type>(r.result_types).subspan(nc));
  Carries carry{st, r, f, nk, nc};
  if (r.driver) {  // one call runs every step
    std::vector<void*> init(nc), set0(nc), set1(nc), xs(nx), ys(ny);
    for (size_t i = 0; i < nk; ++i)
      body.slots[static_cast<size_t>(b.input_slots[i])] = const_cast<void*>(f.ptr(r.operands[i]));
    for (size_t k = 0; k < nc; ++k) {
      init[k] = const_cast<void*>(f.ptr(r.operands[nk + k]));
      set0[k] = data(st.sets[0][k]);
      set1[k] = data(st.sets[1][k]);
    }
    for (size_t k = 0; k < nx; ++k) xs[k] = const_cast<void*>(f.ptr(r.operands[nk + nc + k]));
    for (size_t j = 0; j < ny; ++j) ys[j] = data(st.extra[j]);
    auto run = [&](void** slots, int64_t begin, int64_t end) {
      r.driver(slots, init.data(), set0.data(), set1.data(), xs.data(), ys.data(), r.length, begin, end);
    };
    ThreadPool& pool = ThreadPool::instance();
    const int64_t total = r.range * r.work * r.length;
    const int64_t chunks = !r.chunked || total < kParallelMinWork || pool.threads() < 2
                               ? 1
                               : std::min({r.range, pool.threads() * kChunksPerThread, total / kMinChunkWork});
    if (chunks < 2) {
      run(body.slots.data(), 0, r.range);
    } else {  // each chunk runs every step over its part of the range, on its own slot array
      pool.run(chunks, [&](int64_t c) {
        absl::InlinedVector<void*, 16> slots(body.slots.begin(), body.slots.end());
        run(slots.data(), r.range * c / chunks, r.range * (c + 1) / chunks);
      });
    }
    if (r.length > 0) carry.cur = static_cast<int>((r.length - 1) % 2);
  }
  std::vector<void*> in(nk + nc + nx), out(nc + ny);
  std::vector<int64_t> x_bytes(nx), y_bytes(ny);
  for (size_t i = 0; i < nk; ++i) in[i] = const_cast<void*>(f.ptr(r.operands[i]));
  for (size_t k = 0; k < nx; ++k) x_bytes[k] = bytes_of(b.input_types[nk + nc + k]);
  for (size_t j = 0; j < ny; ++j) y_bytes[j] = b.output_bytes[nc + j];
  for (int64_t step = 0; !r.driver && step < r.length; ++step) {
    const int64_t i = r.reverse ? r.length - 1 - step : step;
    carry.bind(in, nk);
    for (size_t k = 0; k < nx; ++k)
      in[nk + nc + k] = static_cast<char*>(const_cast<void*>(f.ptr(r.operands[nk + nc + k]))) + i * x_bytes[k];
    carry.targets(out, 0);
    for (size_t j = 0; j < ny; ++j) out[nc + j] = static_cast<char*>(data(st.extra[j])) + i * y_bytes[j];
    run_into(body, in.data(), out.data());
    carry.cur = carry.next();
  }
  const std::vector<Array>& final_carry = carry.finish();
  for (size_t k = 0; k < r.result_slots.size(); ++k) {
    const Array& a = k < nc ? final_carry[k] : st.extra[k - nc];
    f.buffers[static_cast<size_t>(r.result_slots[k])] = a;
    f.slots[static_cast<size_t>(r.result_slots[k])] = data(a);
  }
}

void run_region(Frame& f, size_t index) {
  const RegionStep& r = f.block.regions[index];
  RegionState& st = f.state(index);
  if (r.prim == ir::Prim::kCond || r.prim == ir::Prim::kCall) return run_branch(f, r, st);
  if (r.prim == ir::Prim::kWhile) return run_while(f, r, st);
  // custom_vjp is not among them: the pass pipeline inlines its primal before the backend.
  TJ_CHECK(r.prim == ir::Prim::kScan, "no region step for ", ir::prim_name(r.prim));
  run_scan(f, r, st);
}

void run_host(Frame& f, const HostCall& call) {
  if (call.prim == ir::Prim::kAllSum) {
    detail::all_sum_buffer(f.ptr(call.operands[0]), f.slots[static_cast<size_t>(call.result_slot)],
                           call.types[0]);
    return;
  }
  TJ_CHECK(call.prim == ir::Prim::kDebugPrint, "no host step for ", ir::prim_name(call.prim));
  std::vector<Array> operands;
  for (size_t i = 0; i < call.operands.size(); ++i) {
    Array a = detail::make_concrete(call.types[i]);
    copy_into(a, f.ptr(call.operands[i]), bytes_of(call.types[i]));
    operands.push_back(std::move(a));
  }
  detail::emit_debug(call.text, operands);
}

void run_frame(Frame& f, const void* const* inputs) {
  const Block& b = f.block;
  for (size_t i = 0; i < b.input_slots.size(); ++i)
    f.slots[static_cast<size_t>(b.input_slots[i])] = const_cast<void*>(inputs[i]);
  for (const Step& step : b.steps) {
    if (step.fn) run_step(step, f.slots.data());
    else if (step.host >= 0) run_host(f, b.host_calls[static_cast<size_t>(step.host)]);
    else run_region(f, static_cast<size_t>(step.region));
  }
}

// The Arrays owning a flat block's temporaries, on the stack: only the block's temporaries are
// constructed (a Frame's inline vectors are zeroed whole, which cost a scalar call ~10%), each
// in place by make_concrete: assigning its result instead read the handle back with one wide
// load over two narrow stores, a store-forwarding stall per result.
class SlotArrays {
 public:
  SlotArrays() = default;
  Array& add(const ir::Type& type, int64_t bytes) {
    Array* a = new (&raw_[n_]) Array(detail::make_concrete(type, bytes));
    ++n_;  // after: a throw leaves nothing to destroy
    return *a;
  }
  ~SlotArrays() {
    for (size_t i = 0; i < n_; ++i) at(i).~Array();
  }
  SlotArrays(const SlotArrays&) = delete;
  SlotArrays& operator=(const SlotArrays&) = delete;
  Array& at(size_t i) { return *std::launder(reinterpret_cast<Array*>(&raw_[i])); }

 private:
  size_t n_ = 0;
  alignas(Array) unsigned char raw_[kFlatMaxTemporaries][sizeof(Array)];
};

// A value returned twice (CounterV2's `n + 1`) is copied up to this size rather than shared: a
// fresh free-list block costs less than the two locked reference-count updates of sharing.
constexpr int64_t kCopiedOutputBytes = 64;

// Hands the root block's result k to the caller: an input or constant shared, a slot's buffer
// (owned(slot)) moved out at its last use (or copied before, when small).
template <class Owned>
void take_output(const Block& b, size_t k, const Array* const* inputs, Array* outputs, Owned owned) {
  const Source& o = b.outputs[k];
  switch (o.kind) {
    case Source::kInput: outputs[k] = *inputs[static_cast<size_t>(o.index)]; break;
    case Source::kConstant: outputs[k] = o.constant; break;
    case Source::kSlot: {
      Array& a = owned(static_cast<size_t>(o.index));
      if (b.output_moves[k]) {
        outputs[k] = std::move(a);
      } else if (const int64_t bytes = b.output_bytes[k]; bytes <= kCopiedOutputBytes) {
        outputs[k] = detail::make_concrete(a.impl()->type, bytes);
        std::memcpy(outputs[k].impl()->elements, a.impl()->elements, static_cast<size_t>(bytes));
      } else {
        outputs[k] = a;
      }
      break;
    }
  }
}

// Makes temporary `t` in its output, which is empty (run_unchecked's contract): no temporary
// Array, no move, no release.
[[gnu::always_inline]] inline void make_in_output(const Block::Temporary& t, Array* outputs, void** slots) {
  Array* out = new (&outputs[static_cast<size_t>(t.output)]) Array(detail::make_concrete(t.type, t.bytes));
  slots[static_cast<size_t>(t.slot)] = out->impl()->elements;
}

[[gnu::always_inline]] inline void bind_inputs(const Block& b, const Array* const* inputs, void** slots) {
  for (size_t i = 0; i < b.input_slots.size(); ++i)
    slots[static_cast<size_t>(b.input_slots[i])] = inputs[i]->impl()->elements;
}

// Runs a flat root block: kernels in order over a slot array on the stack, a result read by one
// output made in that output (`outputs` are empty, run_unchecked's contract).
[[gnu::noinline]] void run_flat(const Block& b, const Array* const* inputs, Array* outputs) try {
  void* slots[kFlatMaxSlots];
  if (b.zero_slots)
    for (size_t i = 0; i < b.num_slots; ++i) slots[i] = nullptr;
  SlotArrays owned;
  alignas(64) unsigned char scratch[kFlatScratchBytes];
  for (const auto& [slot, value] : b.constants) slots[static_cast<size_t>(slot)] = value.impl()->elements;
  const Block::Temporary* t = b.temporaries.data();
  const Block::Temporary* const direct = t + b.num_scratch;
  const Block::Temporary* const owners = direct + b.num_direct;
  const Block::Temporary* const end = t + b.temporaries.size();
  for (; t != direct; ++t) slots[static_cast<size_t>(t->slot)] = scratch + t->scratch;
  for (t = direct; t != owners; ++t) make_in_output(*t, outputs, slots);
  for (t = owners; t != end; ++t) slots[static_cast<size_t>(t->slot)] = owned.add(t->type, t->bytes).impl()->elements;
  bind_inputs(b, inputs, slots);
  for (const Step& step : b.steps) run_step(step, slots);
  for (int k : b.taken_outputs)
    take_output(b, static_cast<size_t>(k), inputs, outputs, [&](size_t slot) -> Array& {
      return owned.at(static_cast<size_t>(b.owner_of_slot[slot]));
    });
} catch (const ResourceError& e) {
  detail::rethrow_as("jit", e);
}

// Runs a root block that is not flat, in a Frame.
[[gnu::noinline]] void run_framed(const Block& b, const Array* const* inputs, Array* outputs) {
  absl::InlinedVector<const void*, 16> ptrs(b.input_types.size());
  for (size_t i = 0; i < ptrs.size(); ++i) ptrs[i] = inputs[i]->impl()->elements;
  std::optional<Frame> frame;
  try {
    frame.emplace(b);
    run_frame(*frame, ptrs.data());
  } catch (const ResourceError& e) {
    detail::rethrow_as("jit", e);
  }
  for (size_t k = 0; k < b.outputs.size(); ++k)
    take_output(b, k, inputs, outputs, [&](size_t slot) -> Array& { return frame->buffers[slot]; });
}

// Runs a simple block (Block::simple): its results made in the empty outputs, then its kernel.
// Out of run_unchecked's line, with a frame of its own (run_flat's is 6 KiB).
[[gnu::noinline]] void run_simple(const Block& b, const Array* const* inputs, Array* outputs) {
  void* slots[kSimpleMaxSlots];
  try {
    for (const Block::Temporary& t : b.temporaries) make_in_output(t, outputs, slots);
  } catch (const ResourceError& e) {
    detail::rethrow_as("jit", e);
  }
  bind_inputs(b, inputs, slots);
  const Step& step = b.steps[0];
  step.fn(slots, 0, step.trip_count);
}

class CompiledProgram final : public Executable {
 public:
  CompiledProgram(const ir::Function& fn, const FusionPlan& plan, CompiledModule module,
                  const CompileOptions& options)
      : module_(std::move(module)), root_(build_block(fn, plan, module_, options.name)) {
    if (options.want_texts) {
      llvm_ir_ = module_.llvm_ir();
      optimized_llvm_ir_ = module_.optimized_llvm_ir();
      assembly_ = module_.assembly();
    }
  }

  std::vector<Array> run(std::span<const Array> inputs) const override {
    const Block& b = *root_;
    if (inputs.size() != b.input_types.size())
      detail::raise<Error>("jit", "the compiled function takes ", b.input_types.size(),
                           " inputs, got ", inputs.size());
    absl::InlinedVector<const Array*, 16> ptrs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const detail::ArrayImpl& impl = detail::concrete_impl(inputs[i], "jit");
      const ir::Type& t = b.input_types[i];
      if (impl.type.dtype != t.dtype || impl.type.shape != t.shape)
        detail::raise<TypeError>("jit", "input ", i, " is ", ir::type_str(impl.type),
                                 " but the function was compiled for ", ir::type_str(t));
      ptrs.push_back(&inputs[i]);
    }
    std::vector<Array> out(b.outputs.size());
    run_unchecked(ptrs.data(), out.data());
    return out;
  }

  // A dispatcher whose three paths are calls in tail position: a simple block's call sets up
  // none of the others' frames.
  void run_unchecked(const Array* const* inputs, Array* outputs) const override {
    const Block& b = *root_;
    if (b.simple) return run_simple(b, inputs, outputs);
    if (b.flat) return run_flat(b, inputs, outputs);
    run_framed(b, inputs, outputs);
  }

  const CompiledModule& module() const { return module_; }
  size_t num_outputs() const override { return root_->outputs.size(); }

  const std::string& fused_ir() const override { return fused_ir_; }
  const std::string& fused_dot() const override { return fused_dot_; }
  const std::string& llvm_ir() const override { return llvm_ir_; }
  const std::string& optimized_llvm_ir() const override { return optimized_llvm_ir_; }
  const std::string& assembly() const override { return assembly_; }
  const BackendTimes& times() const override { return times_; }
  const ObjectCode* object_code() const override { return object_code_ ? &*object_code_ : nullptr; }
  size_t code_bytes() const override { return module_.code_bytes(); }

  std::string fused_ir_, fused_dot_;
  BackendTimes times_;
  std::optional<ObjectCode> object_code_;

 private:
  CompiledModule module_;  // owns the code every Step points into
  std::unique_ptr<Block> root_;
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
  std::string object = module->take_object();
  start = std::chrono::steady_clock::now();
  auto program = std::make_shared<CompiledProgram>(fn, plan, std::move(*module), options);
  program->fused_ir_ = fused_ir_str(fn, plan);
  if (options.want_texts) program->fused_dot_ = backend::fused_dot(fn, plan);
  times.fusion_s += seconds_since(start);
  program->times_ = times;
  if (options.keep_object)
    program->object_code_ = ObjectCode{.object = std::move(object), .suffix = program->module().suffix(),
                                       .symbols = program->module().symbol_names(),
                                       .prefix = options.name, .materialize_layout = fusion.materialize_layout};
  return program;
}

std::shared_ptr<const Executable> load(const ir::Function& fn, const ObjectCode& code) {
  BackendTimes times;
  auto start = std::chrono::steady_clock::now();
  FusionPlan plan = plan_fusion(fn, FusionOptions{.materialize_layout = code.materialize_layout});
  times.fusion_s = seconds_since(start);
  CompiledModule module = load_object(code.object, code.suffix, code.symbols);
  times.codegen_s = module.codegen_s();
  start = std::chrono::steady_clock::now();
  // build_block asks the module for each entry point the plan has: an object made for another
  // plan lacks one, and that throws here rather than run.
  auto program = std::make_shared<CompiledProgram>(fn, plan, std::move(module),
                                                   CompileOptions{.name = code.prefix});
  program->fused_ir_ = fused_ir_str(fn, plan);
  times.fusion_s += seconds_since(start);
  program->times_ = times;
  return program;
}

}  // namespace tracejit::backend

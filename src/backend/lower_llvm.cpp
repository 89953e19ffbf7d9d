// Lowering of fused kernels to LLVM IR. Inline values are evaluated at the index a consumer
// needs, through the index maps of layout ops; within one loop body each (value, index) is
// computed once. Elementwise code keeps IEEE semantics (no fast-math flags unless asked);
// reductions mark their accumulating fadd `reassoc`, so their order is unspecified, as in XLA.
#include "backend/lower_llvm.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "base/errors.h"
#include "base/array_impl.h"
#include "trace/eager.h"

namespace tracejit::backend {
namespace {

using ir::Eqn;
using ir::Prim;
using ir::VarId;
using llvm::Value;

// Distinct (value, index) evaluations one kernel may emit before the backend plans again with
// every element-moving layout result stored (which bounds each value to one index pattern).
constexpr int64_t kMaxInlineEvaluations = 20000;
// Bytes of matmul's right operand kept in cache while a row range passes over them.
constexpr int64_t kMatmulBlockBytes = 64 * 1024;

[[noreturn]] void cannot_lower(Prim p, DType d) {
  throw Error(detail::cat("[jit] cannot lower ", ir::prim_name(p), " for ", dtype_name(d),
                          " yet: compute it in another dtype (tj::astype) or outside jit"));
}

/// A position in an array of some shape: its row-major offset, its per-dimension indices, or
/// both. Values are i64.
struct Index {
  Value* flat = nullptr;
  std::vector<Value*> multi;
  bool has_multi = false;
};

struct MemoKey {
  VarId var;
  absl::InlinedVector<Value*, 4> index;
  bool operator==(const MemoKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const MemoKey& k) {
    return H::combine(std::move(h), k.var, k.index);
  }
};

std::vector<int64_t> non_unit_dims(const Shape& shape) {
  std::vector<int64_t> dims;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) dims.push_back(static_cast<int64_t>(i));
  return dims;
}

class Lowering {
 public:
  // Lowers the kernels of `plan` (a plan of `fn`) into `module`, named after `prefix`.
  // A region's inputs and outputs may be rows of stacked arrays (scan's xs and ys), so only the
  // buffers the runtime allocates itself are known to be aligned there.
  Lowering(const ir::Function& fn, const FusionPlan& plan, const FusionOptions& fusion,
           const CompileOptions& options, llvm::Module& module, std::string prefix, bool region)
      : fn_(fn), plan_(plan), fusion_(fusion), options_(options),
        context_(&module.getContext()),
        module_(&module),
        prefix_(std::move(prefix)),
        b_(*context_),
        i64_(b_.getInt64Ty()),
        ptr_(b_.getPtrTy()),
        region_(region) {
    if (options.fast_math) fast_.setFast();
    aligned_.assign(plan.slots.size(), true);
    if (region)
      for (const auto* vars : {&fn.inputs, &fn.outputs})
        for (VarId v : *vars)
          if (int s = plan.slot[static_cast<size_t>(v)]; s >= 0) aligned_[static_cast<size_t>(s)] = false;
    for (size_t i = 0; i < fn.const_vars.size(); ++i) literals_[fn.const_vars[i]] = fn.const_values[i].get();
  }

  /// Lowers every kernel, and those of the region steps' sub-plans, into the one module;
  /// appends their entry points to `symbols`.
  void lower_all(std::vector<std::string>& symbols) {
    for (size_t k = 0; k < plan_.kernels.size(); ++k) {
      const Kernel& kernel = plan_.kernels[k];
      if (kernel.kind == KernelKind::kHost) continue;  // no code: the runtime performs it
      if (kernel.kind != KernelKind::kRegion) {
        lower_kernel(static_cast<int>(k));
        symbols.push_back(kernel_symbol(prefix_, k));
        if (kernel.parts > 0) symbols.push_back(combine_symbol(prefix_, k));
        continue;
      }
      const ir::Eqn& e = fn_.eqns[static_cast<size_t>(kernel.eqn)];
      for (size_t r = 0; r < kernel.regions.size(); ++r)
        Lowering(*e.params.regions[r], *kernel.regions[r], fusion_, options_, *module_,
                 region_prefix(prefix_, k, r), /*region=*/true)
            .lower_all(symbols);
      if (kernel.driven && e.prim == Prim::kScan)
        lower_scan_driver(e, *kernel.regions[0], region_prefix(prefix_, k, 0), kernel.chunked);
      if (kernel.driven && e.prim == Prim::kWhile)
        lower_while_driver(e, *kernel.regions[0], *kernel.regions[1], region_prefix(prefix_, k, 0),
                           region_prefix(prefix_, k, 1));
      if (kernel.driven) symbols.push_back(driver_symbol(region_prefix(prefix_, k, e.params.regions.size() - 1)));
    }
  }

  // ---- Drivers: whole loops as one function (ScanDriver and WhileDriver in lower_llvm.h) ----

  Value* slot_ptr(Value* slots, int s) {
    return b_.CreateConstInBoundsGEP1_64(ptr_, slots, static_cast<uint64_t>(s));
  }
  Value* load_ptr(Value* base, size_t i) {
    return b_.CreateAlignedLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, base, i), llvm::Align(8));
  }
  void store_ptr(Value* p, Value* slots, int s) { b_.CreateAlignedStore(p, slot_ptr(slots, s), llvm::Align(8)); }
  static int64_t bytes_of(const ir::Type& t) { return t.size() * dtype_size(t.dtype); }

  // Calls the kernels of `plan` (lowered under `prefix`) on `slots`, as the runtime would; over
  // [begin, end) of their range when given.
  void call_kernels(const FusionPlan& plan, const std::string& prefix, Value* slots,
                    Value* begin = nullptr, Value* end = nullptr) {
    auto* kty = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false);
    for (size_t j = 0; j < plan.kernels.size(); ++j) {
      const Kernel& kernel = plan.kernels[j];
      if (!kernel.runs) continue;
      llvm::Function* callee = module_->getFunction(kernel_symbol(prefix, j));
      TJ_CHECK(callee && callee->getFunctionType() == kty, "loop driver: no kernel ", j);
      b_.CreateCall(callee, {slots, begin ? begin : i64(0), end ? end : i64(kernel.trip_count)});
      if (kernel.parts > 0)
        b_.CreateCall(module_->getFunction(combine_symbol(prefix, j)), {slots, i64(0), i64(1)});
    }
  }

  // A copy of `value` in the module's read-only data. Not the host buffer's address: the object
  // may be stored in the disk cache and run by another process.
  Value* constant_bytes(const base::Buffer& value, const ir::Type& type) {
    const auto* bytes = static_cast<const char*>(value.data());
    auto* init = llvm::ConstantDataArray::getRaw(llvm::StringRef(bytes, static_cast<size_t>(bytes_of(type))),
                                                 static_cast<uint64_t>(bytes_of(type)), b_.getInt8Ty());
    auto* global = new llvm::GlobalVariable(*module_, init->getType(), /*isConstant=*/true,
                                            llvm::GlobalValue::PrivateLinkage, init);
    global->setAlignment(llvm::Align(64));
    return global;
  }

  // Where output `v` of region `fn` (planned as `plan`) lives once its kernels ran.
  Value* output_ptr(const ir::Function& fn, const FusionPlan& plan, VarId v, Value* slots) {
    switch (plan.storage[static_cast<size_t>(v)]) {
      case Storage::kConstant: case Storage::kLiteral:
        for (size_t c = 0; c < fn.const_vars.size(); ++c)
          if (fn.const_vars[c] == v) return constant_bytes(*fn.const_values[c], fn.type(v));
        break;
      case Storage::kInput: case Storage::kComputed: case Storage::kResult:
        return b_.CreateAlignedLoad(ptr_, slot_ptr(slots, plan.slot[static_cast<size_t>(v)]), llvm::Align(8));
      case Storage::kInline: case Storage::kUnused:
        break;
    }
    detail::fail_internal(__FILE__, __LINE__, "loop driver: an output has no storage");
  }

  // Runs a region's plan with its outputs going to `dest`: redirected ones written in place,
  // the others copied after the kernels, as run_into does in the runtime.
  void run_into(const ir::Function& fn, const FusionPlan& plan, const std::string& prefix,
                Value* slots, const std::vector<Value*>& dest, Value* begin = nullptr,
                Value* end = nullptr) {
    for (size_t o = 0; o < dest.size(); ++o)
      if (plan.redirect[o] >= 0) store_ptr(dest[o], slots, plan.redirect[o]);
    call_kernels(plan, prefix, slots, begin, end);
    for (size_t o = 0; o < dest.size(); ++o) {
      const int64_t bytes = bytes_of(fn.type(fn.outputs[o]));
      if (plan.redirect[o] >= 0 || bytes == 0) continue;
      b_.CreateMemCpy(dest[o], llvm::MaybeAlign(1), output_ptr(fn, plan, fn.outputs[o], slots),
                      llvm::MaybeAlign(1), static_cast<uint64_t>(bytes));
    }
  }

  // Step t reads the carries from set (t-1) % 2 (the init at t = 0) and writes set t % 2.
  struct Sets {
    Value *init, *set0, *set1;
  };
  Value* carry_in(const Sets& s, Value* step, size_t k) {
    Value* odd = b_.CreateTrunc(step, b_.getInt1Ty());
    return b_.CreateSelect(b_.CreateICmpEQ(step, i64(0)), load_ptr(s.init, k),
                           b_.CreateSelect(odd, load_ptr(s.set0, k), load_ptr(s.set1, k)));
  }
  Value* carry_out(const Sets& s, Value* step, size_t k) {
    return b_.CreateSelect(b_.CreateTrunc(step, b_.getInt1Ty()), load_ptr(s.set1, k), load_ptr(s.set0, k));
  }

  llvm::Function* driver(const std::string& name, std::vector<llvm::Type*> params, llvm::Type* result) {
    auto* f = llvm::Function::Create(llvm::FunctionType::get(result, params, false),
                                     llvm::Function::ExternalLinkage, name, *module_);
    f->setDoesNotThrow();
    b_.SetInsertPoint(llvm::BasicBlock::Create(*context_, "entry", f));
    memo_.assign(1, {});
    return f;
  }

  void lower_scan_driver(const Eqn& e, const FusionPlan& body_plan, const std::string& body_prefix,
                         bool chunked) {
    const ir::Function& body = *e.params.regions[0];
    const size_t nk = static_cast<size_t>(e.params.groups[0]), nc = static_cast<size_t>(e.params.groups[1]);
    const size_t nx = body.inputs.size() - nk - nc, ny = body.outputs.size() - nc;
    llvm::Function* f = driver(driver_symbol(body_prefix),
                               {ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, i64_, i64_, i64_}, b_.getVoidTy());
    Value *slots = f->getArg(0), *xs = f->getArg(4), *ys = f->getArg(5), *length = f->getArg(6);
    const Sets sets{f->getArg(1), f->getArg(2), f->getArg(3)};
    auto row = [&](Value* base, Value* i, int64_t bytes) {
      return b_.CreateInBoundsGEP(b_.getInt8Ty(), base, b_.CreateMul(i, i64(bytes), "", true, true));
    };
    loop(i64(0), length, [&](Value* step) {
      Value* i = e.params.reverse ? b_.CreateSub(b_.CreateSub(length, i64(1)), step) : step;
      std::vector<Value*> dest(nc + ny);
      for (size_t k = 0; k < nc; ++k) {
        store_ptr(carry_in(sets, step, k), slots, body_plan.slot[static_cast<size_t>(body.inputs[nk + k])]);
        dest[k] = carry_out(sets, step, k);
      }
      for (size_t k = 0; k < nx; ++k) {
        const VarId x = body.inputs[nk + nc + k];
        store_ptr(row(load_ptr(xs, k), i, bytes_of(body.type(x))), slots, body_plan.slot[static_cast<size_t>(x)]);
      }
      for (size_t j = 0; j < ny; ++j)
        dest[nc + j] = row(load_ptr(ys, j), i, bytes_of(body.type(body.outputs[nc + j])));
      run_into(body, body_plan, body_prefix, slots, dest, chunked ? f->getArg(7) : nullptr,
               chunked ? f->getArg(8) : nullptr);
    }, "step");
    b_.CreateRetVoid();
  }

  // A while loop: per step the cond region's kernels, the predicate read back, the trajectory
  // row stored when asked, then the body region's kernels. Returns the number of steps, or -1
  // when the loop needed more than max_iterations (the runtime then throws).
  void lower_while_driver(const Eqn& e, const FusionPlan& cond_plan, const FusionPlan& body_plan,
                          const std::string& cond_prefix, const std::string& body_prefix) {
    const ir::Function& cond = *e.params.regions[0];
    const ir::Function& body = *e.params.regions[1];
    const size_t ncc = static_cast<size_t>(e.params.groups[0]), nb = static_cast<size_t>(e.params.groups[1]);
    const size_t n = body.outputs.size();
    llvm::Function* f = driver(driver_symbol(body_prefix), {ptr_, ptr_, ptr_, ptr_, ptr_, ptr_}, i64_);
    Value *cslots = f->getArg(0), *bslots = f->getArg(1), *traj = f->getArg(5);
    const Sets sets{f->getArg(2), f->getArg(3), f->getArg(4)};
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(*context_, "step", f);
    auto* run = llvm::BasicBlock::Create(*context_, "body", f);
    auto* done = llvm::BasicBlock::Create(*context_, "done", f);
    auto* over = llvm::BasicBlock::Create(*context_, "over", f);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode* step = b_.CreatePHI(i64_, 2, "step");
    step->addIncoming(i64(0), pre);
    std::vector<Value*> in(n);
    for (size_t k = 0; k < n; ++k) {
      in[k] = carry_in(sets, step, k);
      store_ptr(in[k], cslots, cond_plan.slot[static_cast<size_t>(cond.inputs[ncc + k])]);
    }
    call_kernels(cond_plan, cond_prefix, cslots);
    Value* pred = b_.CreateAlignedLoad(b_.getInt8Ty(), output_ptr(cond, cond_plan, cond.outputs[0], cslots),
                                       llvm::Align(1));
    b_.CreateCondBr(b_.CreateICmpNE(pred, b_.getInt8(0)), run, done);
    b_.SetInsertPoint(run);
    if (e.params.length >= 0) {
      auto* ok = llvm::BasicBlock::Create(*context_, "within", f);
      b_.CreateCondBr(b_.CreateICmpEQ(step, i64(e.params.length)), over, ok);
      b_.SetInsertPoint(ok);
    }
    std::vector<Value*> dest(n);
    for (size_t k = 0; k < n; ++k) {
      const int64_t bytes = bytes_of(body.type(body.inputs[nb + k]));
      if (e.params.trajectory && bytes > 0)
        b_.CreateMemCpy(b_.CreateInBoundsGEP(b_.getInt8Ty(), load_ptr(traj, k), b_.CreateMul(step, i64(bytes))),
                        llvm::MaybeAlign(1), in[k], llvm::MaybeAlign(1), static_cast<uint64_t>(bytes));
      store_ptr(in[k], bslots, body_plan.slot[static_cast<size_t>(body.inputs[nb + k])]);
      dest[k] = carry_out(sets, step, k);
    }
    run_into(body, body_plan, body_prefix, bslots, dest);
    step->addIncoming(b_.CreateAdd(step, i64(1)), b_.GetInsertBlock());
    b_.CreateBr(header);
    b_.SetInsertPoint(done);
    b_.CreateRet(step);
    b_.SetInsertPoint(over);
    b_.CreateRet(i64(-1));
  }

 private:
  const ir::Function& fn_;
  const FusionPlan& plan_;
  FusionOptions fusion_;
  CompileOptions options_;
  llvm::LLVMContext* context_;
  llvm::Module* module_;
  std::string prefix_;  // symbol prefix of this plan's kernels
  std::vector<bool> aligned_;  // per slot: the buffer is a base::Buffer (kBufferAlign)
  llvm::IRBuilder<> b_;
  llvm::Type* i64_;
  llvm::Type* ptr_;
  bool region_;  // lowering a region's plan (a loop body or a branch)
  llvm::FastMathFlags fast_;  // for elementwise float ops: empty unless fast_math
  absl::flat_hash_map<VarId, const base::Buffer*> literals_;  // constant values by variable

  // Per kernel.
  int kernel_ = -1;
  std::vector<Value*> buffer_;  // per slot: the body's pointer argument
  std::vector<absl::flat_hash_map<MemoKey, Value*>> memo_;  // one scope per enclosing loop
  int64_t evaluations_ = 0;
  llvm::BasicBlock* entry_ = nullptr;

  // ---- Types and constants ----

  llvm::Type* reg_type(DType d) {
    switch (d) {
      case DType::f32: return b_.getFloatTy();
      case DType::f64: return b_.getDoubleTy();
      case DType::i32: case DType::u32: return b_.getInt32Ty();
      case DType::bool_: return b_.getInt1Ty();
    }
    detail::fail_internal(__FILE__, __LINE__, "unknown dtype");
  }
  llvm::Type* mem_type(DType d) { return d == DType::bool_ ? b_.getInt8Ty() : reg_type(d); }
  Value* i64(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }
  llvm::Align elem_align(DType d) { return llvm::Align(static_cast<uint64_t>(dtype_size(d))); }

  Value* literal(DType dtype, const base::Buffer& value) {
    const void* p = value.data();
    switch (dtype) {
      case DType::f32: {
        uint32_t bits;
        std::memcpy(&bits, p, 4);
        return llvm::ConstantFP::get(*context_, llvm::APFloat(llvm::APFloat::IEEEsingle(),
                                                              llvm::APInt(32, bits)));
      }
      case DType::f64: {
        uint64_t bits;
        std::memcpy(&bits, p, 8);
        return llvm::ConstantFP::get(*context_, llvm::APFloat(llvm::APFloat::IEEEdouble(),
                                                              llvm::APInt(64, bits)));
      }
      case DType::i32: return b_.getInt32(static_cast<uint32_t>(*static_cast<const int32_t*>(p)));
      case DType::u32: return b_.getInt32(*static_cast<const uint32_t*>(p));
      case DType::bool_: return b_.getInt1(*static_cast<const bool*>(p));
    }
    detail::fail_internal(__FILE__, __LINE__, "unknown dtype");
  }

  Value* const_of(DType d, double value) {
    llvm::Type* t = reg_type(d);
    if (is_float(d)) return llvm::ConstantFP::get(t, value);
    return llvm::ConstantInt::get(t, static_cast<uint64_t>(static_cast<int64_t>(value)));
  }

  // ---- Loops ----

  // for (i = lo; i < hi; ++i) body(i), at the insertion point; leaves it after the loop.
  template <class F>
  void loop(Value* lo, Value* hi, F&& body, const char* name = "i") {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(*context_, "loop", f);
    auto* exit = llvm::BasicBlock::Create(*context_, "loop.end", f);
    b_.CreateCondBr(b_.CreateICmpSLT(lo, hi), header, exit);
    b_.SetInsertPoint(header);
    llvm::PHINode* i = b_.CreatePHI(i64_, 2, name);
    i->addIncoming(lo, pre);
    memo_.emplace_back();
    body(static_cast<Value*>(i));
    memo_.pop_back();
    Value* next = b_.CreateAdd(i, i64(1), "", /*HasNUW=*/true, /*HasNSW=*/true);
    i->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, hi), header, exit);
    b_.SetInsertPoint(exit);
  }

  // body() if lo < hi, for a range of at most one step (a one-element kernel): a loop there is
  // widened by the vectorizer into vector code and remainders for that one element.
  template <class F>
  void once(Value* lo, Value* hi, F&& body) {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    auto* then = llvm::BasicBlock::Create(*context_, "once", f);
    auto* exit = llvm::BasicBlock::Create(*context_, "once.end", f);
    b_.CreateCondBr(b_.CreateICmpSLT(lo, hi), then, exit);
    b_.SetInsertPoint(then);
    memo_.emplace_back();
    body();
    memo_.pop_back();
    b_.CreateBr(exit);
    b_.SetInsertPoint(exit);
  }

  // Loops over `dims` of `shape` (the first over [lo, hi), the rest whole) and calls body with
  // the full index, 0 in the other dimensions. With no dims (one element): once over [lo, hi).
  template <class F>
  void nest(const Shape& shape, const std::vector<int64_t>& dims, Value* lo, Value* hi, F&& body) {
    std::vector<Value*> index(shape.size(), i64(0));
    if (dims.empty()) {
      once(lo, hi, [&] { body(index); });
      return;
    }
    auto level = [&](auto& self, size_t l) -> void {
      size_t d = static_cast<size_t>(dims[l]);
      Value* from = l == 0 ? lo : i64(0);
      Value* to = l == 0 ? hi : i64(shape[d]);
      loop(from, to, [&](Value* i) {
        index[d] = i;
        if (l + 1 == dims.size()) body(index);
        else self(self, l + 1);
      });
    };
    level(level, 0);
  }

  // ---- Indices ----

  Value* flat_of(const Index& ix, const Shape& shape) {
    if (ix.flat) return ix.flat;
    std::vector<int64_t> strides = detail::row_major_strides(shape);
    Value* acc = nullptr;
    for (size_t k = 0; k < shape.size(); ++k) {
      if (shape[k] == 1) continue;
      Value* term = strides[k] == 1 ? ix.multi[k]
                                    : b_.CreateMul(ix.multi[k], i64(strides[k]), "", true, true);
      acc = acc ? b_.CreateAdd(acc, term, "", true, true) : term;
    }
    return acc ? acc : i64(0);
  }

  Index multi_of(const Index& ix, const Shape& shape) {
    if (ix.has_multi) return ix;
    Index out;
    out.flat = ix.flat;
    out.has_multi = true;
    std::vector<int64_t> strides = detail::row_major_strides(shape);
    bool first = true;
    for (size_t k = 0; k < shape.size(); ++k) {
      if (shape[k] == 1) {
        out.multi.push_back(i64(0));
        continue;
      }
      Value* q = strides[k] == 1 ? ix.flat : b_.CreateUDiv(ix.flat, i64(strides[k]));
      if (!first) q = b_.CreateURem(q, i64(shape[k]));
      first = false;
      out.multi.push_back(q);
    }
    return out;
  }

  static Index from_multi(std::vector<Value*> multi) {
    Index ix;
    ix.multi = std::move(multi);
    ix.has_multi = true;
    return ix;
  }
  static Index from_flat(Value* flat) {
    Index ix;
    ix.flat = flat;
    return ix;
  }

  // ---- Memory ----

  Value* element_ptr(VarId v, Value* offset) {
    const int slot = plan_.slot[static_cast<size_t>(v)];
    TJ_CHECK(slot >= 0 && buffer_[static_cast<size_t>(slot)], "kernel ", kernel_,
             " has no buffer for variable ", v);
    Value* base = buffer_[static_cast<size_t>(slot)];
    return b_.CreateInBoundsGEP(mem_type(fn_.type(v).dtype), base, offset);
  }
  // Element `offset` of root j's partial results in a split reduction.
  Value* partial_ptr(const Kernel& kernel, size_t j, Value* offset) {
    const auto& [slot, type] = kernel.partials[j];
    return b_.CreateInBoundsGEP(mem_type(type.dtype), buffer_[static_cast<size_t>(slot)], offset);
  }
  Value* load_at(DType d, Value* ptr) {
    Value* x = b_.CreateAlignedLoad(mem_type(d), ptr, elem_align(d));
    return d == DType::bool_ ? b_.CreateICmpNE(x, b_.getInt8(0)) : x;
  }
  void store_at(DType d, Value* ptr, Value* x) {
    if (d == DType::bool_) x = b_.CreateZExt(x, b_.getInt8Ty());
    b_.CreateAlignedStore(x, ptr, elem_align(d));
  }
  Value* load(VarId v, Value* offset) { return load_at(fn_.type(v).dtype, element_ptr(v, offset)); }
  void store(VarId v, Value* offset, Value* x) {
    store_at(fn_.type(v).dtype, element_ptr(v, offset), x);
  }

  // ---- Evaluation of inline values ----

  bool computed_here(VarId v) const {
    switch (plan_.storage[static_cast<size_t>(v)]) {
      case Storage::kInline: return true;
      case Storage::kComputed:
        return plan_.kernel_of[static_cast<size_t>(v)] == kernel_ &&
               plan_.kernels[static_cast<size_t>(kernel_)].kind == KernelKind::kElementwise;
      case Storage::kUnused: case Storage::kInput: case Storage::kConstant: case Storage::kLiteral:
      case Storage::kResult:
        return false;
    }
    return false;
  }

  // The value of `v` at `ix` (an index into v's shape).
  Value* eval(VarId v, const Index& ix) {
    Storage s = plan_.storage[static_cast<size_t>(v)];
    if (s == Storage::kLiteral) return literal(fn_.type(v).dtype, *literals_.at(v));
    TJ_CHECK(s != Storage::kUnused, "evaluating an unused variable ", v);
    MemoKey key{v, {}};
    if (ix.has_multi) key.index.assign(ix.multi.begin(), ix.multi.end());
    else key.index.push_back(ix.flat);
    for (auto it = memo_.rbegin(); it != memo_.rend(); ++it) {
      auto found = it->find(key);
      if (found != it->end()) return found->second;
    }
    Value* x;
    if (computed_here(v)) {
      if (++evaluations_ > kMaxInlineEvaluations && !fusion_.materialize_layout)
        throw KernelTooLarge("[jit] kernel too large");
      const Shape& shape = fn_.type(v).shape;
      x = compute(fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(v)])], ix, shape);
    } else {
      x = load(v, flat_of(ix, fn_.type(v).shape));
    }
    memo_.back().emplace(std::move(key), x);
    return x;
  }

  Value* compute(const Eqn& e, const Index& ix, const Shape& shape) {
    const Prim p = e.prim;
    const DType in_dtype = fn_.type(e.in.empty() ? e.out[0] : e.in[0]).dtype;
    switch (p) {
      case Prim::kNeg: case Prim::kExp: case Prim::kLog: case Prim::kLog1p: case Prim::kSin:
      case Prim::kCos: case Prim::kTanh: case Prim::kSqrt: case Prim::kAbs: case Prim::kSign:
      case Prim::kStopGradient:
        return unary(p, in_dtype, eval(e.in[0], ix));
      case Prim::kConvert:
        return convert(eval(e.in[0], ix), in_dtype, e.params.dtype);
      case Prim::kBitcast:
        return bitcast(eval(e.in[0], ix), in_dtype, e.params.dtype);
      case Prim::kAdd: case Prim::kMul: case Prim::kDiv: case Prim::kPow: case Prim::kMax:
      case Prim::kMin: case Prim::kAnd: case Prim::kOr: case Prim::kXor: case Prim::kShl:
      case Prim::kShr:
        return binary(p, in_dtype, eval(e.in[0], ix), eval(e.in[1], ix));
      case Prim::kEq: case Prim::kNe: case Prim::kLt: case Prim::kLe: case Prim::kGt: case Prim::kGe:
        return compare(p, in_dtype, eval(e.in[0], ix), eval(e.in[1], ix));
      case Prim::kSelect: {
        Value* c = eval(e.in[0], ix);
        Value* a = eval(e.in[1], ix);
        Value* b = eval(e.in[2], ix);
        return b_.CreateSelect(c, a, b);
      }
      case Prim::kBroadcast: return eval(e.in[0], broadcast_index(e, ix, shape));
      case Prim::kReshape: return eval(e.in[0], reshape_index(e, ix, shape));
      case Prim::kTranspose: {
        Index m = multi_of(ix, shape);
        std::vector<Value*> src(shape.size());
        for (size_t i = 0; i < shape.size(); ++i)
          src[static_cast<size_t>(e.params.axes[i])] = m.multi[i];
        return eval(e.in[0], from_multi(std::move(src)));
      }
      case Prim::kSlice: {
        Index m = multi_of(ix, shape);
        std::vector<Value*> src(shape.size());
        for (size_t i = 0; i < shape.size(); ++i) {
          int64_t start = e.params.axes[i];
          src[i] = start == 0 ? m.multi[i] : b_.CreateAdd(m.multi[i], i64(start), "", true, true);
        }
        return eval(e.in[0], from_multi(std::move(src)));
      }
      case Prim::kIota: {
        const size_t axis = static_cast<size_t>(e.params.axis);
        std::vector<int64_t> dims = non_unit_dims(shape);
        Value* i;
        if (ix.has_multi) i = ix.multi[axis];
        else if (dims.empty()) i = i64(0);
        else if (dims.size() == 1 && dims[0] == e.params.axis) i = ix.flat;
        else i = multi_of(ix, shape).multi[axis];
        DType d = e.params.dtype;
        if (is_float(d)) return b_.CreateSIToFP(i, reg_type(d));
        if (is_integer(d)) return b_.CreateTrunc(i, reg_type(d));
        cannot_lower(p, d);
      }
      case Prim::kReduceSum: case Prim::kReduceMax: case Prim::kMatmul: case Prim::kConcatenate:
      case Prim::kDebugPrint: case Prim::kAllSum: case Prim::kCall: case Prim::kCond:
      case Prim::kWhile: case Prim::kScan: case Prim::kCustomVjp:
        break;
    }
    detail::fail_internal(__FILE__, __LINE__, "a kernel-level primitive cannot be inline");
  }

  Index broadcast_index(const Eqn& e, const Index& ix, const Shape& shape) {
    const Shape& in = fn_.type(e.in[0]).shape;
    const int64_t in_size = shape_size(in);
    if (in_size == 1) return from_flat(i64(0));
    if (!ix.has_multi && in_size == shape_size(shape)) return from_flat(ix.flat);
    Index m = multi_of(ix, shape);
    std::vector<Value*> src(in.size());
    for (size_t i = 0; i < in.size(); ++i)
      src[i] = in[i] == 1 ? i64(0) : m.multi[static_cast<size_t>(e.params.axes[i])];
    return from_multi(std::move(src));
  }

  Index reshape_index(const Eqn& e, const Index& ix, const Shape& shape) {
    const Shape& in = fn_.type(e.in[0]).shape;
    std::vector<int64_t> out_dims = non_unit_dims(shape), in_dims = non_unit_dims(in);
    bool same_dims = out_dims.size() == in_dims.size();
    for (size_t i = 0; same_dims && i < out_dims.size(); ++i)
      same_dims = shape[static_cast<size_t>(out_dims[i])] == in[static_cast<size_t>(in_dims[i])];
    if (ix.has_multi && same_dims) {
      std::vector<Value*> src(in.size(), i64(0));
      for (size_t i = 0; i < in_dims.size(); ++i)
        src[static_cast<size_t>(in_dims[i])] = ix.multi[static_cast<size_t>(out_dims[i])];
      Index r = from_multi(std::move(src));
      r.flat = ix.flat;
      return r;
    }
    return from_flat(flat_of(ix, shape));
  }

  // ---- Element operations ----

  llvm::Function* libm(const char* name, llvm::Type* t) {
    llvm::Function* f = module_->getFunction(name);
    if (f) return f;
    f = llvm::Function::Create(llvm::FunctionType::get(t, {t}, false),
                               llvm::Function::ExternalLinkage, name, *module_);
    // Pure for our purposes (errno is never read), so LLVM may hoist and merge calls.
    f->setDoesNotAccessMemory();
    f->setDoesNotThrow();
    f->setWillReturn();
    return f;
  }

  // Vectorizable f32 exp, log, log1p and tanh, written in IR (libm's scalar calls would keep
  // loops scalar): Cephes' polynomials with Cody-Waite range reduction, within a few ulps of
  // glibc. Each is an internal alwaysinline function, so the loop vectorizer sees its body.
  enum class MathFn { kExpF, kLogF, kLog1pF, kTanhF };

  llvm::Function* math_fn(MathFn which) {
    const char* name = nullptr;
    switch (which) {
      case MathFn::kExpF: name = "tj.expf"; break;
      case MathFn::kLogF: name = "tj.logf"; break;
      case MathFn::kLog1pF: name = "tj.log1pf"; break;
      case MathFn::kTanhF: name = "tj.tanhf"; break;
    }
    if (llvm::Function* f = module_->getFunction(name)) return f;
    llvm::Type* f32 = b_.getFloatTy();
    auto* fn = llvm::Function::Create(llvm::FunctionType::get(f32, {f32}, false),
                                      llvm::Function::InternalLinkage, name, *module_);
    fn->addFnAttr(llvm::Attribute::AlwaysInline);
    fn->setDoesNotAccessMemory();
    fn->setDoesNotThrow();
    fn->setWillReturn();
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(*context_, "entry", fn));
    Value* x = fn->getArg(0);
    switch (which) {
      case MathFn::kExpF: b.CreateRet(emit_expf(b, x)); break;
      case MathFn::kLogF: b.CreateRet(emit_logf(b, x)); break;
      case MathFn::kLog1pF: b.CreateRet(emit_log1pf(b, x)); break;
      case MathFn::kTanhF: b.CreateRet(emit_tanhf(b, x)); break;
    }
    return fn;
  }

  static Value* poly(llvm::IRBuilder<>& b, Value* x, std::initializer_list<double> coeffs) {
    Value* p = nullptr;
    for (double c : coeffs) {
      Value* k = llvm::ConstantFP::get(x->getType(), c);
      p = p ? b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {x->getType()}, {p, x, k}) : k;
    }
    return p;
  }

  static Value* emit_expf(llvm::IRBuilder<>& b, Value* x) {
    llvm::Type* f32 = x->getType();
    llvm::Type* i32 = b.getInt32Ty();
    auto c = [&](double v) { return llvm::ConstantFP::get(f32, v); };
    auto fma = [&](Value* p, Value* q, Value* r) {
      return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {f32}, {p, q, r});
    };
    // Clamped so that n stays in [-150, 129]: below, the result rounds to 0; above, to inf.
    Value* xc = b.CreateBinaryIntrinsic(llvm::Intrinsic::minnum,
                                        b.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, x, c(-104.0)), c(89.0));
    // n = round(x / ln 2), by adding and removing 1.5 * 2^23 (round to nearest even).
    Value* n = b.CreateFSub(b.CreateFAdd(b.CreateFMul(xc, c(1.44269504088896341)), c(12582912.0)), c(12582912.0));
    Value* r = fma(n, c(-0.693359375), xc);  // exact: 0.693359375 has 9 significant bits
    r = fma(n, c(2.12194440e-4), r);
    Value* z = b.CreateFMul(r, r);
    Value* p = poly(b, r, {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2,
                           1.6666665459E-1, 5.0000001201E-1});
    p = b.CreateFAdd(fma(p, z, r), c(1.0));
    // p * 2^n in two steps, so that subnormal results round once and 2^n never overflows.
    Value* ni = b.CreateFPToSI(n, i32);
    Value* n1 = b.CreateAShr(ni, 1);
    Value* n2 = b.CreateSub(ni, n1);
    auto pow2 = [&](Value* k) {
      return b.CreateBitCast(b.CreateShl(b.CreateAdd(k, b.getInt32(127)), 23), f32);
    };
    Value* y = b.CreateFMul(b.CreateFMul(p, pow2(n1)), pow2(n2));
    return b.CreateSelect(b.CreateFCmpUNO(x, x), x, y);
  }

  static Value* emit_logf(llvm::IRBuilder<>& b, Value* x) {
    llvm::Type* f32 = x->getType();
    llvm::Type* i32 = b.getInt32Ty();
    auto c = [&](double v) { return llvm::ConstantFP::get(f32, v); };
    auto fma = [&](Value* p, Value* q, Value* r) {
      return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {f32}, {p, q, r});
    };
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); subnormals are scaled by 2^23 first.
    Value* subnormal = b.CreateFCmpOLT(x, c(1.17549435e-38));
    Value* xs = b.CreateSelect(subnormal, b.CreateFMul(x, c(8388608.0)), x);
    Value* bits = b.CreateBitCast(xs, i32);
    Value* e = b.CreateSub(b.CreateLShr(bits, 23), b.getInt32(126));
    e = b.CreateSelect(subnormal, b.CreateSub(e, b.getInt32(23)), e);
    Value* m = b.CreateBitCast(b.CreateOr(b.CreateAnd(bits, b.getInt32(0x007fffff)), b.getInt32(0x3f000000)), f32);
    Value* low = b.CreateFCmpOLT(m, c(0.707106781186547524));
    e = b.CreateSelect(low, b.CreateSub(e, b.getInt32(1)), e);
    Value* t = b.CreateFSub(b.CreateSelect(low, b.CreateFAdd(m, m), m), c(1.0));
    Value* z = b.CreateFMul(t, t);
    Value* p = poly(b, t, {7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                           1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1,
                           3.3333331174E-1});
    Value* y = b.CreateFMul(t, b.CreateFMul(z, p));
    Value* ef = b.CreateSIToFP(e, f32);
    y = fma(ef, c(-2.12194440e-4), y);
    y = fma(z, c(-0.5), y);
    Value* r = fma(ef, c(0.693359375), b.CreateFAdd(t, y));
    // log(inf) = inf, log(±0) = -inf, log(x < 0) and log(NaN) = NaN.
    r = b.CreateSelect(b.CreateFCmpOEQ(x, llvm::ConstantFP::getInfinity(f32)), x, r);
    r = b.CreateSelect(b.CreateFCmpOEQ(x, c(0.0)), llvm::ConstantFP::getInfinity(f32, true), r);
    return b.CreateSelect(b.CreateFCmpULT(x, c(0.0)), llvm::ConstantFP::getNaN(f32), r);
  }

  static Value* emit_log1pf(llvm::IRBuilder<>& b, Value* x) {
    // Goldberg's log(u) * x / (u - 1) with u = 1 + x: the quotient cancels u's rounding error.
    llvm::Type* f32 = x->getType();
    Value* one = llvm::ConstantFP::get(f32, 1.0);
    Value* u = b.CreateFAdd(one, x);
    Value* r = b.CreateFMul(emit_logf(b, u), b.CreateFDiv(x, b.CreateFSub(u, one)));
    r = b.CreateSelect(b.CreateFCmpOEQ(u, one), x, r);  // |x| below half an ulp of 1
    return b.CreateSelect(b.CreateFCmpOEQ(x, llvm::ConstantFP::getInfinity(f32)), x, r);
  }

  static Value* emit_tanhf(llvm::IRBuilder<>& b, Value* x) {
    llvm::Type* f32 = x->getType();
    auto c = [&](double v) { return llvm::ConstantFP::get(f32, v); };
    Value* a = b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
    // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), with x's sign; exp overflowing to inf gives 1.
    Value* s = emit_expf(b, b.CreateFAdd(a, a));
    Value* big = b.CreateFSub(c(1.0), b.CreateFDiv(c(2.0), b.CreateFAdd(s, c(1.0))));
    big = b.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, big, x);
    // Below: an odd polynomial (keeps -0 and NaN).
    Value* w = b.CreateFMul(x, x);
    Value* p = poly(b, w, {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2, 1.33314422036E-1,
                           -3.33332819422E-1});
    Value* small = b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {f32}, {b.CreateFMul(p, w), x, x});
    return b.CreateSelect(b.CreateFCmpOGE(a, c(0.625)), big, small);
  }

  Value* float_op(Value* x) {
    if (auto* inst = llvm::dyn_cast<llvm::Instruction>(x);
        inst && fast_.any() && llvm::isa<llvm::FPMathOperator>(inst))
      inst->setFastMathFlags(fast_);
    return x;
  }

  Value* unary(Prim p, DType d, Value* x) {
    const bool f = is_float(d);
    switch (p) {
      case Prim::kNeg:
        if (f) return float_op(b_.CreateFNeg(x));
        if (is_integer(d)) return b_.CreateSub(b_.getInt32(0), x);
        break;
      case Prim::kExp:
        if (d == DType::f32) return b_.CreateCall(math_fn(MathFn::kExpF), {x});
        if (f) return float_op(b_.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x));
        break;
      case Prim::kLog:
        if (d == DType::f32) return b_.CreateCall(math_fn(MathFn::kLogF), {x});
        if (f) return float_op(b_.CreateUnaryIntrinsic(llvm::Intrinsic::log, x));
        break;
      case Prim::kSin: if (f) return float_op(b_.CreateUnaryIntrinsic(llvm::Intrinsic::sin, x)); break;
      case Prim::kCos: if (f) return float_op(b_.CreateUnaryIntrinsic(llvm::Intrinsic::cos, x)); break;
      case Prim::kSqrt: if (f) return float_op(b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x)); break;
      case Prim::kLog1p:
        if (d == DType::f32) return b_.CreateCall(math_fn(MathFn::kLog1pF), {x});
        if (f) return b_.CreateCall(libm("log1p", x->getType()), {x});
        break;
      case Prim::kTanh:
        if (d == DType::f32) return b_.CreateCall(math_fn(MathFn::kTanhF), {x});
        if (f) return b_.CreateCall(libm("tanh", x->getType()), {x});
        break;
      case Prim::kAbs:
        if (f) return b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
        if (d == DType::i32) return b_.CreateBinaryIntrinsic(llvm::Intrinsic::abs, x, b_.getFalse());
        if (d == DType::u32) return x;
        break;
      case Prim::kSign: {
        if (f) {
          // NaN and ±0 stay themselves (as XLA: sign(-0.0) is -0.0); the rest become ±1.
          Value* zero = llvm::ConstantFP::get(x->getType(), 0.0);
          Value* s = b_.CreateSelect(b_.CreateFCmpOLT(x, zero), llvm::ConstantFP::get(x->getType(), -1.0), x);
          return b_.CreateSelect(b_.CreateFCmpOGT(x, zero), llvm::ConstantFP::get(x->getType(), 1.0), s);
        }
        Value* zero = b_.getInt32(0);
        if (d == DType::i32)
          return b_.CreateSub(b_.CreateZExt(b_.CreateICmpSGT(x, zero), x->getType()),
                              b_.CreateZExt(b_.CreateICmpSLT(x, zero), x->getType()));
        if (d == DType::u32) return b_.CreateZExt(b_.CreateICmpNE(x, zero), x->getType());
        break;
      }
      case Prim::kStopGradient: return x;
      default: detail::fail_internal(__FILE__, __LINE__, "not a unary primitive");
    }
    cannot_lower(p, d);
  }

  Value* convert(Value* x, DType from, DType to) {
    if (from == to) return x;
    llvm::Type* t = reg_type(to);
    if (to == DType::bool_) {
      if (is_float(from)) return b_.CreateFCmpUNE(x, llvm::ConstantFP::get(x->getType(), 0.0));
      return b_.CreateICmpNE(x, llvm::ConstantInt::get(x->getType(), 0));
    }
    if (from == DType::bool_) return is_float(to) ? b_.CreateUIToFP(x, t) : b_.CreateZExt(x, t);
    if (is_float(from) && is_float(to)) return b_.CreateFPCast(x, t);
    if (is_float(from)) {  // saturating, NaN -> 0 (the reference's rule)
      auto id = to == DType::i32 ? llvm::Intrinsic::fptosi_sat : llvm::Intrinsic::fptoui_sat;
      return b_.CreateIntrinsic(id, {t, x->getType()}, {x});
    }
    if (is_float(to)) return from == DType::i32 ? b_.CreateSIToFP(x, t) : b_.CreateUIToFP(x, t);
    return x;  // i32 <-> u32: the same bits
  }

  Value* bitcast(Value* x, DType from, DType to) {
    if (from == to || (is_integer(from) && is_integer(to))) return x;
    if (dtype_size(from) == dtype_size(to) && from != DType::bool_ && to != DType::bool_)
      return b_.CreateBitCast(x, reg_type(to));
    cannot_lower(Prim::kBitcast, from);
  }

  Value* int_div(DType d, Value* a, Value* b) {
    // XLA's rules: x / 0 is all ones; INT_MIN / -1 is INT_MIN. The divisor is made safe first,
    // so the division never traps and stays vectorizable.
    Value* zero = b_.getInt32(0);
    Value* one = b_.getInt32(1);
    Value* by_zero = b_.CreateICmpEQ(b, zero);
    Value* bad = by_zero;
    if (d == DType::i32) {
      Value* overflow = b_.CreateAnd(b_.CreateICmpEQ(a, b_.getInt32(0x80000000u)),
                                     b_.CreateICmpEQ(b, b_.getInt32(0xFFFFFFFFu)));
      bad = b_.CreateOr(bad, overflow);  // INT_MIN / 1 = INT_MIN
    }
    Value* safe = b_.CreateSelect(bad, one, b);
    Value* q = d == DType::i32 ? b_.CreateSDiv(a, safe) : b_.CreateUDiv(a, safe);
    return b_.CreateSelect(by_zero, b_.getInt32(0xFFFFFFFFu), q);
  }

  // The eager reference's int_pow: 32 branch-free squaring steps (vectorizable), then the
  // negative exponents of a signed one: 1 for a = 1, +-1 for a = -1, else 0.
  Value* int_pow(bool sgn, Value* a, Value* b) {
    Value* one = b_.getInt32(1);
    Value *acc = one, *base = a, *e = b;
    for (int bit = 0; bit < 32; ++bit) {
      Value* odd = b_.CreateTrunc(e, b_.getInt1Ty());
      acc = b_.CreateSelect(odd, b_.CreateMul(acc, base), acc);
      base = b_.CreateMul(base, base);
      e = b_.CreateLShr(e, one);
    }
    if (!sgn) return acc;
    Value* minus_one = b_.getInt32(0xFFFFFFFFu);
    Value* inverse = b_.CreateSelect(
        b_.CreateICmpEQ(a, one), one,
        b_.CreateSelect(b_.CreateICmpEQ(a, minus_one),
                        b_.CreateSelect(b_.CreateTrunc(b, b_.getInt1Ty()), minus_one, one), b_.getInt32(0)));
    return b_.CreateSelect(b_.CreateICmpSLT(b, b_.getInt32(0)), inverse, acc);
  }

  Value* binary(Prim p, DType d, Value* a, Value* b) {
    const bool f = is_float(d);
    const bool i = is_integer(d);
    const bool sgn = d == DType::i32;
    switch (p) {
      case Prim::kAdd:
        if (f) return float_op(b_.CreateFAdd(a, b));
        if (i) return b_.CreateAdd(a, b);
        break;
      case Prim::kMul:
        if (f) return float_op(b_.CreateFMul(a, b));
        if (i) return b_.CreateMul(a, b);
        break;
      case Prim::kDiv:
        if (f) return float_op(b_.CreateFDiv(a, b));
        if (i) return int_div(d, a, b);
        break;
      case Prim::kPow:
        if (f) return float_op(b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a, b));
        if (i) return int_pow(sgn, a, b);
        break;
      case Prim::kMax: case Prim::kMin: {
        const bool max = p == Prim::kMax;
        if (f) {
          // The reference: NaN if either is NaN, else a > b ? a : b (a < b for min).
          Value* pick = max ? b_.CreateFCmpOGT(a, b) : b_.CreateFCmpOLT(a, b);
          Value* r = b_.CreateSelect(pick, a, b);
          return b_.CreateSelect(b_.CreateFCmpUNO(a, b), llvm::ConstantFP::getNaN(a->getType()), r);
        }
        if (d == DType::bool_) return max ? b_.CreateOr(a, b) : b_.CreateAnd(a, b);
        auto id = max ? (sgn ? llvm::Intrinsic::smax : llvm::Intrinsic::umax)
                      : (sgn ? llvm::Intrinsic::smin : llvm::Intrinsic::umin);
        return b_.CreateBinaryIntrinsic(id, a, b);
      }
      case Prim::kAnd: if (!f) return b_.CreateAnd(a, b); break;
      case Prim::kOr: if (!f) return b_.CreateOr(a, b); break;
      case Prim::kXor: if (!f) return b_.CreateXor(a, b); break;
      case Prim::kShl:
        if (i) {
          // Shifting by 32 or more gives 0 (LLVM would give poison).
          Value* big = b_.CreateICmpUGE(b, b_.getInt32(32));
          Value* s = b_.CreateShl(a, b_.CreateAnd(b, b_.getInt32(31)));
          return b_.CreateSelect(big, b_.getInt32(0), s);
        }
        break;
      case Prim::kShr:
        if (sgn)  // arithmetic: 32 or more fills with the sign, as a shift by 31
          return b_.CreateAShr(a, b_.CreateBinaryIntrinsic(llvm::Intrinsic::umin, b, b_.getInt32(31)));
        if (i) {
          Value* big = b_.CreateICmpUGE(b, b_.getInt32(32));
          Value* s = b_.CreateLShr(a, b_.CreateAnd(b, b_.getInt32(31)));
          return b_.CreateSelect(big, b_.getInt32(0), s);
        }
        break;
      default: detail::fail_internal(__FILE__, __LINE__, "not a binary primitive");
    }
    cannot_lower(p, d);
  }

  Value* compare(Prim p, DType d, Value* a, Value* b) {
    using P = llvm::CmpInst::Predicate;
    const bool f = is_float(d);
    const bool s = d == DType::i32;  // u32 and bool compare unsigned (false < true)
    P pred;
    switch (p) {
      case Prim::kEq: pred = f ? P::FCMP_OEQ : P::ICMP_EQ; break;
      case Prim::kNe: pred = f ? P::FCMP_UNE : P::ICMP_NE; break;
      case Prim::kLt: pred = f ? P::FCMP_OLT : s ? P::ICMP_SLT : P::ICMP_ULT; break;
      case Prim::kLe: pred = f ? P::FCMP_OLE : s ? P::ICMP_SLE : P::ICMP_ULE; break;
      case Prim::kGt: pred = f ? P::FCMP_OGT : s ? P::ICMP_SGT : P::ICMP_UGT; break;
      case Prim::kGe: pred = f ? P::FCMP_OGE : s ? P::ICMP_SGE : P::ICMP_UGE; break;
      default: detail::fail_internal(__FILE__, __LINE__, "not a comparison");
    }
    return f ? b_.CreateFCmp(pred, a, b) : b_.CreateICmp(pred, a, b);
  }

  // ---- Reductions ----

  Value* identity(Prim p, DType d) {
    if (p == Prim::kReduceSum) {
      if (d == DType::bool_) cannot_lower(p, d);
      return const_of(d, 0);
    }
    switch (d) {
      case DType::f32: case DType::f64: return llvm::ConstantFP::getInfinity(reg_type(d), true);
      case DType::i32: return b_.getInt32(0x80000000u);
      case DType::u32: return b_.getInt32(0);
      case DType::bool_: return b_.getFalse();
    }
    detail::fail_internal(__FILE__, __LINE__, "unknown dtype");
  }

  Value* accumulate(Prim p, DType d, Value* acc, Value* x) {
    if (p == Prim::kReduceSum) {
      if (!is_float(d)) return b_.CreateAdd(acc, x);
      Value* sum = b_.CreateFAdd(acc, x);
      // Reductions may be reassociated (so vectorized): their order is unspecified.
      if (auto* inst = llvm::dyn_cast<llvm::Instruction>(sum)) {
        inst->setFastMathFlags(fast_);
        inst->setHasAllowReassoc(true);
      }
      return sum;
    }
    switch (d) {
      case DType::f32: case DType::f64: return b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, acc, x);
      case DType::i32: return b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, acc, x);
      case DType::u32: return b_.CreateBinaryIntrinsic(llvm::Intrinsic::umax, acc, x);
      case DType::bool_: return b_.CreateOr(acc, x);
    }
    detail::fail_internal(__FILE__, __LINE__, "unknown dtype");
  }

  // ---- Kernels ----

  void lower_kernel(int k) {
    const Kernel& kernel = plan_.kernels[static_cast<size_t>(k)];
    kernel_ = k;
    evaluations_ = 0;
    const std::string symbol = kernel_symbol(prefix_, static_cast<size_t>(k));
    if (kernel.parts > 0) {  // the parts, then their combination
      std::vector<int> partials, outputs;
      for (const auto& p : kernel.partials) partials.push_back(p.first);
      for (VarId r : kernel.roots) outputs.push_back(plan_.slot[static_cast<size_t>(r)]);
      lower_function(symbol, kernel.reads, partials,
                     [&](Value* begin, Value* end) { lower_reduce(kernel, begin, end); });
      lower_function(combine_symbol(prefix_, static_cast<size_t>(k)), partials, outputs,
                     [&](Value*, Value*) { lower_combine(kernel); });
      return;
    }
    lower_function(symbol, kernel.reads, kernel.writes, [&](Value* begin, Value* end) {
      switch (kernel.kind) {
        case KernelKind::kElementwise: lower_elementwise(kernel, begin, end); break;
        case KernelKind::kReduce: lower_reduce(kernel, begin, end); break;
        case KernelKind::kMatmul: lower_matmul(kernel, begin, end); break;
        case KernelKind::kConcatenate: lower_concatenate(kernel, begin, end); break;
        case KernelKind::kRegion: break;  // runs its sub-plans on the host; see lower_all
        case KernelKind::kHost: break;    // the runtime performs it
      }
    }, !region_ && !kernel.parallel() ? kernel.trip_count : -1);
  }

  // Emits `symbol`, an entry point (buffers, begin, end) that loads the pointers of the slots
  // `reads` and `writes` and calls an internal body, which `emit(begin, end)` fills. With
  // `whole` >= 0 the runtime always calls it over [0, whole) (a root kernel it never splits),
  // and the body is emitted over those constants: a known trip count lets the optimizer
  // unroll a short loop whole, and straight-line code is what level-0 code generation keeps in
  // registers (a loop's state it spills to the stack at every block boundary).
  template <class F>
  void lower_function(const std::string& symbol, const std::vector<int>& reads,
                      const std::vector<int>& writes, F&& emit, int64_t whole = -1) {
    buffer_.assign(plan_.slots.size(), nullptr);
    std::vector<int> slots = reads;
    slots.insert(slots.end(), writes.begin(), writes.end());
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());

    // The body: noalias pointers, one per buffer, then the range.
    std::vector<llvm::Type*> params(slots.size(), ptr_);
    params.push_back(i64_);
    params.push_back(i64_);
    auto* body = llvm::Function::Create(llvm::FunctionType::get(b_.getVoidTy(), params, false),
                                        llvm::Function::InternalLinkage, symbol + ".body", *module_);
    body->setDoesNotThrow();
    // Inlined into its entry point, the body was optimized twice (before and after the inliner)
    // and its noalias arguments became scope lists on every access, which alias analysis
    // compares pairwise: a kernel over 60 buffers took tens of ms. A loop driver's kernels stay
    // inlinable, so that its steps run as one function.
    if (!region_) body->addFnAttr(llvm::Attribute::NoInline);
    for (size_t a = 0; a < slots.size(); ++a) {
      body->addParamAttr(static_cast<unsigned>(a), llvm::Attribute::NoAlias);
      body->addParamAttr(static_cast<unsigned>(a), llvm::Attribute::NoCapture);
      if (aligned_[static_cast<size_t>(slots[a])])
        body->addParamAttr(static_cast<unsigned>(a),
                           llvm::Attribute::getWithAlignment(*context_, llvm::Align(base::kBufferAlign)));
      if (std::find(writes.begin(), writes.end(), slots[a]) == writes.end())
        body->addParamAttr(static_cast<unsigned>(a), llvm::Attribute::ReadOnly);
      buffer_[static_cast<size_t>(slots[a])] = body->getArg(static_cast<unsigned>(a));
    }
    Value* begin = body->getArg(static_cast<unsigned>(slots.size()));
    Value* end = body->getArg(static_cast<unsigned>(slots.size() + 1));
    entry_ = llvm::BasicBlock::Create(*context_, "entry", body);
    b_.SetInsertPoint(entry_);
    memo_.assign(1, {});
    if (whole >= 0) emit(i64(0), i64(whole));
    else emit(begin, end);
    b_.CreateRetVoid();

    // The entry point: load the pointers from the slot array and call the body.
    auto* entry_point = llvm::Function::Create(
        llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false),
        llvm::Function::ExternalLinkage, symbol, *module_);
    entry_point->setDoesNotThrow();
    b_.SetInsertPoint(llvm::BasicBlock::Create(*context_, "entry", entry_point));
    std::vector<Value*> args;
    for (int s : slots)
      args.push_back(b_.CreateAlignedLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, entry_point->getArg(0), static_cast<uint64_t>(s)),
                                          llvm::Align(8)));
    args.push_back(entry_point->getArg(1));
    args.push_back(entry_point->getArg(2));
    b_.CreateCall(body, args);
    b_.CreateRetVoid();
  }

  void lower_elementwise(const Kernel& kernel, Value* begin, Value* end) {
    const Shape& shape = kernel.domain.shape;
    if (kernel.scheme == LoopScheme::kFlat) {
      if (shape_size(shape) == 1) {  // its range is [0, 1)
        once(begin, end, [&] {
          for (VarId r : kernel.roots) store(r, i64(0), eval(r, from_flat(i64(0))));
        });
        return;
      }
      loop(begin, end, [&](Value* i) {
        for (VarId r : kernel.roots) store(r, i, eval(r, from_flat(i)));
      });
      return;
    }
    nest(shape, non_unit_dims(shape), begin, end, [&](const std::vector<Value*>& multi) {
      Index ix = from_multi(multi);
      Value* offset = flat_of(ix, shape);
      for (VarId r : kernel.roots) store(r, offset, eval(r, ix));
    });
  }

  void lower_reduce(const Kernel& kernel, Value* begin, Value* end) {
    const Shape& shape = kernel.domain.shape;
    const std::vector<int64_t>& axes = kernel.axes;
    auto reduced = [&](int64_t d) { return std::binary_search(axes.begin(), axes.end(), d); };
    struct Root {
      VarId out, operand;
      Prim prim;
      DType dtype;
      llvm::AllocaInst* acc;
    };
    std::vector<Root> roots;
    for (VarId r : kernel.roots) {
      const Eqn& e = fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(r)])];
      DType d = fn_.type(r).dtype;
      if (e.prim == Prim::kReduceSum && d == DType::bool_) cannot_lower(e.prim, d);
      roots.push_back({r, e.in[0], e.prim, d, nullptr});
    }
    // Output strides per input dimension (0 along reduced ones).
    const Shape& out_shape = fn_.type(kernel.roots[0]).shape;
    std::vector<int64_t> out_strides = detail::row_major_strides(out_shape);
    std::vector<int64_t> in_out_strides(shape.size(), 0);
    for (size_t i = 0, j = 0; i < shape.size(); ++i)
      if (!reduced(static_cast<int64_t>(i))) in_out_strides[i] = out_strides[j++];
    auto out_offset = [&](const std::vector<Value*>& multi) {
      Value* acc = i64(0);
      for (size_t i = 0; i < shape.size(); ++i)
        if (in_out_strides[i] != 0 && shape[i] != 1)
          acc = b_.CreateAdd(acc, b_.CreateMul(multi[i], i64(in_out_strides[i]), "", true, true), "", true, true);
      return acc;
    };

    if (kernel.scheme == LoopScheme::kRowMajor && kernel.parts > 0) {
      // Part p accumulates its slice of dimension 0, in input order, into row p of partials.
      std::vector<int64_t> dims = non_unit_dims(shape);
      const int64_t outputs = shape_size(out_shape);
      const int64_t rows = shape[static_cast<size_t>(dims[0])];
      loop(begin, end, [&](Value* p) {
        Value* row = b_.CreateMul(p, i64(outputs), "", true, true);
        loop(i64(0), i64(outputs), [&](Value* o) {
          Value* q = b_.CreateAdd(row, o, "", true, true);
          for (size_t j = 0; j < roots.size(); ++j) {
            const DType acc = kernel.partials[j].second.dtype;
            store_at(acc, partial_ptr(kernel, j, q), identity(roots[j].prim, acc));
          }
        }, "o");
        Value* next = b_.CreateAdd(p, i64(1), "", true, true);
        nest(shape, dims, part_bound(p, rows, kernel.parts), part_bound(next, rows, kernel.parts),
             [&](const std::vector<Value*>& multi) {
               Index ix = from_multi(multi);
               Value* q = b_.CreateAdd(row, out_offset(multi), "", true, true);
               for (size_t j = 0; j < roots.size(); ++j) {
                 const DType acc = kernel.partials[j].second.dtype;
                 Value* x = eval(roots[j].operand, ix);
                 if (acc != roots[j].dtype) x = b_.CreateFPExt(x, reg_type(acc));
                 Value* ptr = partial_ptr(kernel, j, q);
                 store_at(acc, ptr, accumulate(roots[j].prim, acc, load_at(acc, ptr), x));
               }
             });
      });
      return;
    }
    if (kernel.scheme == LoopScheme::kRowMajor) {
      // Identity-fill the outputs this range owns, then accumulate in input order.
      std::vector<int64_t> dims = non_unit_dims(shape);
      Value *lo = i64(0), *hi = i64(shape_size(out_shape));
      Value *first_lo = begin, *first_hi = end;
      if (kernel.splittable) {
        int64_t os = in_out_strides[static_cast<size_t>(dims[0])];
        lo = b_.CreateMul(begin, i64(os));
        hi = b_.CreateMul(end, i64(os));
      } else {
        first_lo = i64(0);
        first_hi = i64(shape[static_cast<size_t>(dims[0])]);
      }
      loop(lo, hi, [&](Value* q) {
        for (const Root& r : roots) store(r.out, q, identity(r.prim, r.dtype));
      });
      nest(shape, dims, first_lo, first_hi, [&](const std::vector<Value*>& multi) {
        Index ix = from_multi(multi);
        Value* o = out_offset(multi);
        for (const Root& r : roots)
          store(r.out, o, accumulate(r.prim, r.dtype, load(r.out, o), eval(r.operand, ix)));
      });
      return;
    }

    // Register accumulators (allocas that SROA promotes), in accumulator_dtype: the loop
    // streams memory, so an f32 sum's wider adds cost nothing.
    auto acc_dtype = [](const Root& r) { return accumulator_dtype(r.prim, r.dtype); };
    {
      llvm::IRBuilder<> at_entry(entry_, entry_->begin());
      for (Root& r : roots) r.acc = at_entry.CreateAlloca(reg_type(acc_dtype(r)));
    }
    auto start = [&] {
      for (const Root& r : roots) b_.CreateStore(identity(r.prim, acc_dtype(r)), r.acc);
    };
    auto add = [&](const Index& ix) {
      for (const Root& r : roots) {
        Value* x = eval(r.operand, ix);
        if (acc_dtype(r) != r.dtype) x = b_.CreateFPExt(x, reg_type(acc_dtype(r)));
        b_.CreateStore(accumulate(r.prim, acc_dtype(r), b_.CreateLoad(reg_type(acc_dtype(r)), r.acc), x),
                       r.acc);
      }
    };
    auto finish = [&](Value* offset) {
      for (const Root& r : roots) {
        Value* sum = b_.CreateLoad(reg_type(acc_dtype(r)), r.acc);
        if (acc_dtype(r) != r.dtype) sum = b_.CreateFPTrunc(sum, reg_type(r.dtype));
        store(r.out, offset, sum);
      }
    };

    if (kernel.scheme == LoopScheme::kFlat && kernel.parts > 0) {
      // Step q reduces part p = q % parts of output o = q / parts (a slice of its `inner`
      // elements) into partials[p][o], unrounded.
      const int64_t outputs = shape_size(out_shape);
      const int64_t inner = shape_size(shape) / outputs;
      loop(begin, end, [&](Value* q) {
        start();
        Value* o = b_.CreateUDiv(q, i64(kernel.parts));
        Value* p = b_.CreateURem(q, i64(kernel.parts));
        Value* base = b_.CreateMul(o, i64(inner), "", true, true);
        Value* next = b_.CreateAdd(p, i64(1), "", true, true);
        loop(part_bound(p, inner, kernel.parts), part_bound(next, inner, kernel.parts),
             [&](Value* r) { add(from_flat(b_.CreateAdd(base, r, "", true, true))); }, "r");
        Value* at = b_.CreateAdd(b_.CreateMul(p, i64(outputs), "", true, true), o, "", true, true);
        for (size_t j = 0; j < roots.size(); ++j)
          store_at(acc_dtype(roots[j]), partial_ptr(kernel, j, at),
                   b_.CreateLoad(reg_type(acc_dtype(roots[j])), roots[j].acc));
      });
      return;
    }
    if (kernel.scheme == LoopScheme::kFlat) {
      const int64_t out_size = shape_size(out_shape);
      const int64_t inner = out_size > 0 ? shape_size(shape) / out_size : 0;
      loop(begin, end, [&](Value* o) {
        start();
        Value* base = b_.CreateMul(o, i64(inner), "", true, true);
        loop(i64(0), i64(inner), [&](Value* r) {
          add(from_flat(b_.CreateAdd(base, r, "", true, true)));
        }, "r");
        finish(o);
      });
      return;
    }
    // kSuffix: kept dimensions outside, reduced ones inside.
    std::vector<int64_t> kept, red;
    for (int64_t d : non_unit_dims(shape)) (reduced(d) ? red : kept).push_back(d);
    nest(shape, kept, begin, end, [&](const std::vector<Value*>& outer) {
      start();
      std::vector<Value*> multi = outer;
      Value* offset = out_offset(outer);
      if (red.empty()) {
        add(from_multi(multi));
      } else {
        nest(shape, red, i64(0), i64(shape[static_cast<size_t>(red[0])]),
             [&](const std::vector<Value*>& inner) {
               for (int64_t d : red) multi[static_cast<size_t>(d)] = inner[static_cast<size_t>(d)];
               add(from_multi(multi));
             });
      }
      finish(offset);
    });
  }

  // Where part p of a split reduction over `extent` elements starts: p * extent / parts.
  Value* part_bound(Value* p, int64_t extent, int64_t parts) {
    return b_.CreateUDiv(b_.CreateMul(p, i64(extent), "", true, true), i64(parts));
  }

  // A split reduction's second function: each output the combination of its partial results,
  // in part order.
  void lower_combine(const Kernel& kernel) {
    for (size_t j = 0; j < kernel.roots.size(); ++j) {
      const VarId r = kernel.roots[j];
      const Prim prim = fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(r)])].prim;
      const DType d = fn_.type(r).dtype, acc = kernel.partials[j].second.dtype;
      const int64_t outputs = fn_.type(r).size();
      loop(i64(0), i64(outputs), [&](Value* o) {
        Value* x = load_at(acc, partial_ptr(kernel, j, o));
        for (int64_t p = 1; p < kernel.parts; ++p) {
          Value* at = b_.CreateAdd(o, i64(p * outputs), "", true, true);
          x = accumulate(prim, acc, x, load_at(acc, partial_ptr(kernel, j, at)));
        }
        if (acc != d) x = b_.CreateFPTrunc(x, reg_type(d));
        store(r, o, x);
      }, "o");
    }
  }

  void lower_matmul(const Kernel& kernel, Value* begin, Value* end) {
    VarId out = kernel.roots[0];
    const Eqn& e = fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(out)])];
    VarId a = e.in[0], bm = e.in[1];
    const DType d = fn_.type(out).dtype;
    if (d == DType::bool_) cannot_lower(e.prim, d);
    // Rows i run over all batches of a [..., m, k]; row i multiplies batch i / m of b.
    const Shape& as = fn_.type(a).shape;
    const int64_t m = as[as.size() - 2], k = as.back(), n = fn_.type(bm).shape.back();
    const bool batched = as.size() > 2 && m > 0;
    const bool f = is_float(d);
    // i-k-j: the j loop streams over rows of b and out, and vectorizes. k runs in blocks of
    // kb rows of b (about kMatmulBlockBytes), each reused by every row of this range while it is
    // in cache; every out[i, j] still sums its k terms in order, as the reference.
    const int64_t kb = std::clamp<int64_t>(kMatmulBlockBytes / std::max<int64_t>(1, n * dtype_size(d)),
                                           1, std::max<int64_t>(1, k));
    // Rows [lo, hi) of one batch (or of the unbatched product): zeroed, then k block by block.
    auto rows = [&](Value* lo, Value* hi) {
      loop(lo, hi, [&](Value* i) {
        Value* row = b_.CreateMul(i, i64(n), "", true, true);
        loop(i64(0), i64(n), [&](Value* j) {
          store(out, b_.CreateAdd(row, j, "", true, true), const_of(d, 0));
        }, "j");
      });
      loop(i64(0), i64((k + kb - 1) / kb), [&](Value* block) {
        Value* k0 = b_.CreateMul(block, i64(kb), "", true, true);
        Value* k1 = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, b_.CreateAdd(k0, i64(kb)), i64(k));
        loop(lo, hi, [&](Value* i) {
          Value* row = b_.CreateMul(i, i64(n), "", true, true);
          Value* arow = b_.CreateMul(i, i64(k), "", true, true);
          Value* bbase = batched ? b_.CreateMul(b_.CreateUDiv(i, i64(m)), i64(k * n), "", true, true) : i64(0);
          loop(k0, k1, [&](Value* kk) {
            Value* x = eval(a, from_flat(b_.CreateAdd(arow, kk, "", true, true)));
            Value* brow = b_.CreateAdd(bbase, b_.CreateMul(kk, i64(n), "", true, true), "", true, true);
            loop(i64(0), i64(n), [&](Value* j) {
              Value* o = b_.CreateAdd(row, j, "", true, true);
              Value* y = eval(bm, from_flat(b_.CreateAdd(brow, j, "", true, true)));
              Value* acc = load(out, o);
              Value* sum = f ? float_op(b_.CreateFAdd(acc, float_op(b_.CreateFMul(x, y))))
                             : b_.CreateAdd(acc, b_.CreateMul(x, y));
              store(out, o, sum);
            }, "j");
          }, "k");
        });
      }, "kb");
    };
    if (!batched) return rows(begin, end);
    // Batched: the range runs in tiles of one batch's rows, each through all its k blocks, so a
    // tile of out stays in cache across them (one pass over all rows per block would stream the
    // whole result once per block).
    Value* t0 = b_.CreateUDiv(begin, i64(m));
    Value* t1 = b_.CreateUDiv(b_.CreateAdd(end, i64(m - 1)), i64(m));
    loop(t0, t1, [&](Value* t) {
      Value* first = b_.CreateMul(t, i64(m), "", true, true);
      rows(b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, begin, first),
           b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, end, b_.CreateAdd(first, i64(m))));
    }, "tile");
  }

  void lower_concatenate(const Kernel& kernel, Value* begin, Value* end) {
    VarId out = kernel.roots[0];
    const Eqn& e = fn_.eqns[static_cast<size_t>(plan_.producer[static_cast<size_t>(out)])];
    const Shape& out_shape = fn_.type(out).shape;
    const size_t axis = static_cast<size_t>(e.params.axis);
    int64_t offset = 0;
    for (VarId x : e.in) {
      const Shape& shape = fn_.type(x).shape;
      std::vector<int64_t> dims = non_unit_dims(shape);
      const int64_t extent = shape[axis];
      if (shape_size(shape) > 0) {
        Value *lo = begin, *hi = end;
        if (!kernel.splittable) {
          lo = i64(0);
          hi = i64(dims.empty() ? 1 : shape[static_cast<size_t>(dims[0])]);
        } else {
          TJ_CHECK(!dims.empty() && shape[static_cast<size_t>(dims[0])] ==
                                        out_shape[static_cast<size_t>(non_unit_dims(out_shape)[0])],
                   "concatenate operands split on one dimension");
        }
        nest(shape, dims, lo, hi, [&](const std::vector<Value*>& multi) {
          std::vector<Value*> dst = multi;
          if (offset != 0) dst[axis] = b_.CreateAdd(dst[axis], i64(offset), "", true, true);
          store(out, flat_of(from_multi(dst), out_shape), eval(x, from_multi(multi)));
        });
      }
      offset += extent;
    }
  }
};

}  // namespace

std::string kernel_symbol(std::string_view name, size_t index) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) || c == '_' ? c : '_';
  if (s.empty()) s = "fn";
  return s + "_k" + std::to_string(index);
}

std::string combine_symbol(std::string_view name, size_t index) {
  return kernel_symbol(name, index) + "_combine";
}

std::string driver_symbol(std::string_view region_prefix) { return detail::cat(region_prefix, "_drv"); }

std::string region_prefix(std::string_view prefix, size_t kernel, size_t region) {
  return detail::cat(prefix, "_k", kernel, "_r", region);
}

namespace {

// True when some kernel of the plan tree runs inside a loop.
bool has_loop(const ir::Function& fn, const FusionPlan& plan) {
  for (const Kernel& k : plan.kernels)
    if (k.kind == KernelKind::kRegion) {
      const ir::Eqn& e = fn.eqns[static_cast<size_t>(k.eqn)];
      if (e.prim == Prim::kWhile || e.prim == Prim::kScan) return true;
      for (size_t r = 0; r < k.regions.size(); ++r)
        if (has_loop(*e.params.regions[r], *k.regions[r])) return true;
    }
  return false;
}

// Many operations over small arrays (a 100,000-op chain over 16 floats, or 1,000 reductions of
// 64 floats) run in microseconds,
// while LLVM's O2 pipeline costs about 10 us per operation more than O1, most of it in the
// vectorizers and the passes around them, which gain little on a few elements: such a module is
// optimized at O1. A loop's kernels run once per step, and big arrays repay vectorizing, so
// either keeps the asked level.
// A kernel costs about as much as kKernelEqns equations whatever its size (1.5-2 ms at O2 for
// a small reduction), so 1,000 small kernels count as a large module too.
constexpr int64_t kManyEqns = 1024;
constexpr int64_t kKernelEqns = 16;
constexpr int64_t kSmallWorkPerEqn = 256;  // Kernel::work units per equation, summed

bool many_small_operations(const ir::Function& fn, const FusionPlan& plan) {
  int64_t size = 0, work = 0;
  for (const Kernel& k : plan.kernels) {
    if (k.kind == KernelKind::kRegion) return false;
    size += static_cast<int64_t>(k.eqns.size()) + kKernelEqns;
    work += k.trip_count * k.work;
  }
  return !has_loop(fn, plan) && size >= kManyEqns && work <= size * kSmallWorkPerEqn;
}

}  // namespace

CompiledModule lower_and_compile(const ir::Function& fn, const FusionPlan& plan,
                                 const FusionOptions& fusion, const CompileOptions& options,
                                 double* lower_s) {
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<llvm::LLVMContext> context = OrcJit::make_context();
  auto module = std::make_unique<llvm::Module>(options.name, *context);
  CompileRequest request;
  request.opt_level = options.opt_level;
  request.want_texts = options.want_texts;
  // A loop runs its kernels once per step: there the ~4 ms of full code generation pay off
  // (level 0 spills every loop variable to the stack), elsewhere latency wins (orc_jit.h).
  if (has_loop(fn, plan) || options.full_codegen) request.codegen_opt_level = 2;
  if (many_small_operations(fn, plan)) request.opt_level = std::min(request.opt_level, 1);
  if (options.quick) {  // the first tier: ~5x faster to make (tiered.h)
    request.opt_level = std::min(request.opt_level, 1);
    request.codegen_opt_level = 0;
  }
  request.keep_object = options.keep_object;
  Lowering(fn, plan, fusion, options, *module, options.name, /*region=*/false).lower_all(request.symbols);
  if (lower_s)
    *lower_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return OrcJit::instance().compile(std::move(module), std::move(context), request);
}

}  // namespace tracejit::backend

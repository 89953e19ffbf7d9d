// Tests of the ORC wrapper on modules built by hand with IRBuilder: correctness, vector code,
// concurrency, error conversion, freeing, and the compile latency of a small kernel; and of
// load_object, which links the objects it makes again without ORC (the disk cache's path).
#include "backend/orc_jit.h"

#include <gtest/gtest.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Target/TargetMachine.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <regex>
#include <thread>
#include <vector>

#include "backend/compiled_module.h"
#include "backend/elf_link.h"
#include "tracejit/error.h"

namespace tracejit::backend {
namespace {

using AddArraysFn = void (*)(const float*, const float*, float*, int64_t);

struct Built {
  std::unique_ptr<llvm::LLVMContext> context;
  std::unique_ptr<llvm::Module> module;
};

// void <name>(float* a, float* b, float* out, int64_t n) { for i < n: out[i] = a[i] + b[i]; }
// With `call_external`, the loop body first calls the undefined `void <external>()`.
Built make_add_arrays(const std::string& name, const char* call_external = nullptr) {
  Built b{OrcJit::make_context(), nullptr};
  llvm::LLVMContext& ctx = *b.context;
  b.module = std::make_unique<llvm::Module>("add_arrays_module", ctx);
  llvm::IRBuilder<> ir(ctx);
  llvm::Type* f32 = ir.getFloatTy();
  llvm::Type* i64 = ir.getInt64Ty();
  llvm::Type* ptr = ir.getPtrTy();
  auto* fn_type = llvm::FunctionType::get(ir.getVoidTy(), {ptr, ptr, ptr, i64}, false);
  auto* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, name, *b.module);
  llvm::Value *a = fn->getArg(0), *bb = fn->getArg(1), *out = fn->getArg(2), *n = fn->getArg(3);

  auto* entry = llvm::BasicBlock::Create(ctx, "entry", fn);
  auto* loop = llvm::BasicBlock::Create(ctx, "loop", fn);
  auto* exit = llvm::BasicBlock::Create(ctx, "exit", fn);
  ir.SetInsertPoint(entry);
  ir.CreateCondBr(ir.CreateICmpSGT(n, ir.getInt64(0)), loop, exit);
  ir.SetInsertPoint(loop);
  llvm::PHINode* i = ir.CreatePHI(i64, 2, "i");
  i->addIncoming(ir.getInt64(0), entry);
  if (call_external) {
    auto callee = b.module->getOrInsertFunction(call_external, ir.getVoidTy());
    ir.CreateCall(callee);
  }
  llvm::Value* x = ir.CreateLoad(f32, ir.CreateGEP(f32, a, i));
  llvm::Value* y = ir.CreateLoad(f32, ir.CreateGEP(f32, bb, i));
  ir.CreateStore(ir.CreateFAdd(x, y), ir.CreateGEP(f32, out, i));
  llvm::Value* next = ir.CreateAdd(i, ir.getInt64(1), "next", /*HasNUW=*/true, /*HasNSW=*/true);
  i->addIncoming(next, loop);
  ir.CreateCondBr(ir.CreateICmpSLT(next, n), loop, exit);
  ir.SetInsertPoint(exit);
  ir.CreateRetVoid();
  return b;
}

CompiledModule compile_add_arrays(const std::string& name, CompileRequest req = {}) {
  Built b = make_add_arrays(name);
  req.symbols = {name};
  return OrcJit::instance().compile(std::move(b.module), std::move(b.context), req);
}

void expect_adds(const CompiledModule& cm, const std::string& name, int64_t n) {
  std::vector<float> a(n), b(n), out(n, -1.0f);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = 0.5f * static_cast<float>(i);
    b[i] = 1000.0f - static_cast<float>(i);
  }
  reinterpret_cast<AddArraysFn>(cm.symbol(name))(a.data(), b.data(), out.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]) << "at " << i;
}

TEST(OrcJit, AddArraysIsCorrectAndVectorized) {
  CompileRequest req;
  req.opt_level = 2;
  req.want_texts = true;
  CompiledModule cm = compile_add_arrays("add_arrays", req);
  expect_adds(cm, "add_arrays", 1000);
  expect_adds(cm, "add_arrays", 7);  // shorter than any vector: the scalar remainder alone
  EXPECT_NE(cm.llvm_ir().find("fadd float"), std::string::npos);
  EXPECT_EQ(cm.llvm_ir().find(" x float>"), std::string::npos);
  // Any vector width: it depends on the host (SSE, AVX2, AVX-512, NEON...).
  EXPECT_TRUE(std::regex_search(cm.optimized_llvm_ir(), std::regex("<[0-9]+ x float>")))
      << cm.optimized_llvm_ir();
  EXPECT_NE(cm.assembly().find("add_arrays"), std::string::npos);
}

TEST(OrcJit, O3AndTextsOffByDefault) {
  CompileRequest req;
  req.opt_level = 3;
  CompiledModule cm = compile_add_arrays("add_arrays_o3", req);
  expect_adds(cm, "add_arrays_o3", 1000);
  EXPECT_TRUE(cm.llvm_ir().empty());
  EXPECT_TRUE(cm.optimized_llvm_ir().empty());
  EXPECT_TRUE(cm.assembly().empty());
}

TEST(OrcJit, EveryCodegenLevelRuns) {
  for (int level = 0; level <= 3; ++level) {
    CompileRequest req;
    req.codegen_opt_level = level;
    CompiledModule cm = compile_add_arrays("codegen_level", req);
    expect_adds(cm, "codegen_level", 1000);
  }
  CompileRequest bad;
  bad.codegen_opt_level = 4;
  EXPECT_THROW(compile_add_arrays("bad_level", bad), InternalError);
}

TEST(OrcJit, PhaseTimesArePositive) {
  CompiledModule cm = compile_add_arrays("timed");
  EXPECT_GT(cm.llvm_opt_s(), 0.0);
  EXPECT_GT(cm.codegen_s(), 0.0);
  EXPECT_LT(cm.llvm_opt_s() + cm.codegen_s(), 10.0);
}

// Runs work(0) and work(1) on two threads at once; what each threw, or "" (or what it returned).
void expect_fine_on_two_threads(const std::function<std::string(int)>& work) {
  std::string failures[2];
  auto run = [&](int t) {
    try {
      failures[t] = work(t);
    } catch (const std::exception& e) {
      failures[t] = e.what();
    }
  };
  std::thread first(run, 0), second(run, 1);
  first.join();
  second.join();
  EXPECT_EQ(failures[0], "");
  EXPECT_EQ(failures[1], "");
}

TEST(OrcJit, CompilesFromTwoThreadsAtOnce) {
  expect_fine_on_two_threads([](int t) -> std::string {
    for (int k = 0; k < 10; ++k) {
      const std::string name = "threaded_" + std::to_string(t);
      CompiledModule cm = compile_add_arrays(name);
      std::vector<float> a(1000, 1.0f), b(1000, float(t)), out(1000);
      reinterpret_cast<AddArraysFn>(cm.symbol(name))(a.data(), b.data(), out.data(), 1000);
      if (std::any_of(out.begin(), out.end(), [&](float v) { return v != 1.0f + float(t); }))
        return "wrong result";
    }
    return "";
  });
}

TEST(OrcJit, SameSymbolNameInTwoLiveModules) {
  CompiledModule first = compile_add_arrays("kernel");
  CompiledModule second = compile_add_arrays("kernel");
  EXPECT_NE(first.symbol("kernel"), second.symbol("kernel"));
  expect_adds(first, "kernel", 100);
  expect_adds(second, "kernel", 100);
}

TEST(OrcJit, UndefinedExternalSymbolIsAnError) {
  Built b = make_add_arrays("calls_missing", "tj_no_such_function_anywhere");
  CompileRequest req;
  req.symbols = {"calls_missing"};
  try {
    OrcJit::instance().compile(std::move(b.module), std::move(b.context), req);
    FAIL() << "expected a tracejit::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("[jit] ", 0), 0u) << message;
    EXPECT_NE(message.find("tj_no_such_function_anywhere"), std::string::npos) << message;
  }
  // The JIT is still usable.
  expect_adds(compile_add_arrays("after_error"), "after_error", 100);
}

// void exp4(const float* in, float* out) { out[i] = exp(in[i]) for i < 4 }: vectorized
// llvm.exp, which becomes calls to the C library's expf.
Built make_exp4() {
  Built b{OrcJit::make_context(), nullptr};
  llvm::LLVMContext& ctx = *b.context;
  b.module = std::make_unique<llvm::Module>("exp_module", ctx);
  llvm::IRBuilder<> ir(ctx);
  llvm::Type* f32 = ir.getFloatTy();
  auto* fn_type = llvm::FunctionType::get(ir.getVoidTy(), {ir.getPtrTy(), ir.getPtrTy()}, false);
  auto* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, "exp4", *b.module);
  ir.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  for (int i = 0; i < 4; ++i) {
    llvm::Value* x = ir.CreateLoad(f32, ir.CreateConstGEP1_64(f32, fn->getArg(0), i));
    llvm::Value* y = ir.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x);
    ir.CreateStore(y, ir.CreateConstGEP1_64(f32, fn->getArg(1), i));
  }
  ir.CreateRetVoid();
  return b;
}

void expect_exp4(const CompiledModule& cm) {
  const float in[4] = {0.0f, 1.0f, -2.0f, 10.0f};
  float out[4] = {};
  reinterpret_cast<void (*)(const float*, float*)>(cm.symbol("exp4"))(in, out);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[i], std::exp(in[i]));
}

// The process's symbols (libm) resolve the calls.
TEST(OrcJit, MathIntrinsicsLinkAgainstTheProcess) {
  Built b = make_exp4();
  CompileRequest req;
  req.symbols = {"exp4"};
  expect_exp4(OrcJit::instance().compile(std::move(b.module), std::move(b.context), req));
}

TEST(OrcJit, InvalidIrIsAnInternalError) {
  Built b{OrcJit::make_context(), nullptr};
  b.module = std::make_unique<llvm::Module>("broken", *b.context);
  auto* fn_type = llvm::FunctionType::get(llvm::Type::getInt32Ty(*b.context), false);
  auto* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, "f", *b.module);
  llvm::BasicBlock::Create(*b.context, "entry", fn);  // no terminator
  EXPECT_THROW(OrcJit::instance().compile(std::move(b.module), std::move(b.context), {}),
               InternalError);
}

TEST(OrcJit, UnknownSymbolNameThrows) {
  CompiledModule cm = compile_add_arrays("known");
  EXPECT_THROW(cm.symbol("unknown"), Error);
}

TEST(OrcJit, MovedModuleKeepsItsCode) {
  CompiledModule cm = compile_add_arrays("moved");
  CompiledModule moved = std::move(cm);
  expect_adds(moved, "moved", 100);
  cm = compile_add_arrays("reassigned");  // assigning into a moved-from module is fine
  moved = std::move(cm);                  // frees "moved"'s code
  expect_adds(moved, "reassigned", 100);
}

TEST(OrcJit, FreesAndRecompilesManyModules) {
  for (int k = 0; k < 200; ++k) {
    CompiledModule cm = compile_add_arrays("again");
    if (k % 50 == 0) expect_adds(cm, "again", 33);
  }
}

TEST(OrcJit, CompileLatencyOfASmallKernel) {
  compile_add_arrays("warm_up");  // the first compile carries one-time setup
  constexpr int kRuns = 21;
  std::vector<double> total, opt, codegen;
  for (int k = 0; k < kRuns; ++k) {
    auto start = std::chrono::steady_clock::now();
    CompiledModule cm = compile_add_arrays("latency");
    total.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    opt.push_back(cm.llvm_opt_s());
    codegen.push_back(cm.codegen_s());
  }
  auto median_ms = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return 1e3 * v[v.size() / 2];
  };
  std::cout << "[ OrcJit   ] add_arrays at O2, median of " << kRuns << ": total "
            << median_ms(total) << " ms, IR opt " << median_ms(opt) << " ms, codegen+link "
            << median_ms(codegen) << " ms\n";
  RecordProperty("compile_ms", std::to_string(median_ms(total)));
}

// ---- load_object ----

// The object file and suffix of `name` compiled with keep_object (it adds arrays).
std::pair<std::string, std::string> add_arrays_object(const std::string& name) {
  CompileRequest req;
  req.keep_object = true;
  CompiledModule cm = compile_add_arrays(name, req);
  return {cm.take_object(), cm.suffix()};
}

TEST(ObjectLoader, LoadsWhatOrcCompiledAndRunsIt) {
  const auto [object, suffix] = add_arrays_object("loaded_add");
  ASSERT_FALSE(object.empty());
  CompiledModule loaded = load_object(object, suffix, {"loaded_add"});
  expect_adds(loaded, "loaded_add", 1000);
  expect_adds(loaded, "loaded_add", 7);
  EXPECT_EQ(loaded.code_bytes(), object.size());
  EXPECT_EQ(loaded.symbol_names(), std::vector<std::string>{"loaded_add"});
  EXPECT_THROW(loaded.symbol("other"), Error);
}

TEST(ObjectLoader, ExternalsComeFromTheProcess) {
  Built b = make_exp4();
  CompileRequest req;
  req.symbols = {"exp4"};
  req.keep_object = true;
  CompiledModule cm = OrcJit::instance().compile(std::move(b.module), std::move(b.context), req);
  expect_exp4(load_object(cm.take_object(), cm.suffix(), {"exp4"}));
}

TEST(ObjectLoader, AMissingExternalIsAnErrorNamingIt) {
  // Code generation alone (no linking), as compile() would keep it.
  Built b = make_add_arrays("calls_missing", "tj_no_such_function_anywhere");
  llvm::TargetMachine& tm = OrcJit::instance().target_machine();
  b.module->setDataLayout(tm.createDataLayout());
  b.module->setTargetTriple(tm.getTargetTriple().str());
  auto object = llvm::orc::SimpleCompiler(tm)(*b.module);
  ASSERT_TRUE(static_cast<bool>(object));
  try {
    load_object((*object)->getBuffer().str(), "", {"calls_missing"});
    FAIL() << "expected a tracejit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tj_no_such_function_anywhere"), std::string::npos) << e.what();
  }
  const auto [object_after, suffix_after] = add_arrays_object("after_missing");
  expect_adds(load_object(object_after, suffix_after, {"after_missing"}), "after_missing", 10);
}

// Our objects take the fast path, not RuntimeDyld's.
TEST(ObjectLoader, OurObjectsNeedNoRuntimeDyld) {
  const auto [object, suffix] = add_arrays_object("fast");
  std::optional<LinkedObject> linked = link_elf_x86_64(object);
  ASSERT_TRUE(linked.has_value());
  bool found = false;
  for (const auto& [name, address] : linked->globals) found |= name == "fast" + suffix;
  EXPECT_TRUE(found);
  Built b = make_exp4();  // calls libm through a stub
  CompileRequest req;
  req.symbols = {"exp4"};
  req.keep_object = true;
  CompiledModule cm = OrcJit::instance().compile(std::move(b.module), std::move(b.context), req);
  EXPECT_TRUE(link_elf_x86_64(cm.take_object()).has_value());
}

// An object with unwind tables (.eh_frame, which frames must be registered for) is left to
// RuntimeDyld, and runs the same.
TEST(ObjectLoader, ObjectsWithUnwindTablesGoToRuntimeDyld) {
  Built b = make_add_arrays("unwinds");
  b.module->getFunction("unwinds")->setUWTableKind(llvm::UWTableKind::Async);
  CompileRequest req;
  req.symbols = {"unwinds"};
  req.keep_object = true;
  CompiledModule cm = OrcJit::instance().compile(std::move(b.module), std::move(b.context), req);
  const std::string object = cm.take_object();
  EXPECT_FALSE(link_elf_x86_64(object).has_value());
  expect_adds(load_object(object, cm.suffix(), {"unwinds"}), "unwinds", 100);
}

TEST(ObjectLoader, AWrongEntryPointOrSuffixIsAnError) {
  const auto [object, suffix] = add_arrays_object("entry");
  EXPECT_THROW(load_object(object, suffix, {"not_there"}), Error);
  EXPECT_THROW(load_object(object, suffix + "x", {"entry"}), Error);
}

// Bytes that are not an object, and every prefix of a real one: an error each, never an abort.
TEST(ObjectLoader, GarbageAndTruncatedObjectsAreErrors) {
  EXPECT_THROW(load_object("", "", {"f"}), Error);
  EXPECT_THROW(load_object(std::string(256, 'x'), "", {"f"}), Error);
  const auto [object, suffix] = add_arrays_object("cut");
  for (size_t n = 0; n < object.size(); n += std::max<size_t>(1, object.size() / 64))
    EXPECT_THROW(load_object(object.substr(0, n), suffix, {"cut"}), Error) << n << " bytes";
}

// Every byte of an object changed in turn: the linker links it, declines it or throws
// tracejit::Error; it never reads or writes outside the object and its mapping (nothing runs).
TEST(ObjectLoader, TheLinkerSurvivesEveryChangedByte) {
  const auto [object, suffix] = add_arrays_object("flipped");
  for (size_t i = 0; i < object.size(); ++i) {
    std::string changed = object;
    changed[i] = static_cast<char>(changed[i] ^ (i % 2 ? 0x80 : 0xff));
    try {
      link_elf_x86_64(changed);
    } catch (const Error&) {
    }
  }
}

TEST(ObjectLoader, ManyLoadsAndFreesOnTwoThreads) {
  const auto [object, suffix] = add_arrays_object("many");
  expect_fine_on_two_threads([&](int) -> std::string {
    for (int k = 0; k < 200; ++k) {
      CompiledModule m = load_object(object, suffix, {"many"});
      if (k % 50 == 0) expect_adds(m, "many", 33);
    }
    return "";
  });
}

}  // namespace
}  // namespace tracejit::backend

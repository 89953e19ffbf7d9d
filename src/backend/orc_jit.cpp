#include "backend/orc_jit.h"

#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <utility>

#include "backend/llvm_opt.h"
#include "tracejit/error.h"

namespace tracejit::backend {
namespace {

// Errors ORC reports out of band (the linker's "Symbols not found" among them) while this thread
// materializes a module: lookup() itself only says that materialization failed.
thread_local std::string t_session_errors;

// The one place where llvm::Error becomes tracejit::Error; it consumes `err`.
[[noreturn]] void raise(const std::string& what, llvm::Error err) {
  std::string message = "[jit] " + what + ": " + llvm::toString(std::move(err));
  if (!t_session_errors.empty()) message += " (" + std::exchange(t_session_errors, {}) + ")";
  throw Error(message);
}

template <class T>
T unwrap(llvm::Expected<T> value, const std::string& what) {
  if (!value) raise(what, value.takeError());
  return std::forward<T>(*value);  // moves values, passes references through
}

void check(llvm::Error err, const std::string& what) {
  if (err) raise(what, std::move(err));
}

std::string print(const llvm::Module& m) {
  std::string text;
  llvm::raw_string_ostream os(text);
  m.print(os, nullptr);
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Frees one module's code, as CompiledModule's owner of it (see compile()).
void remove_code(llvm::orc::ResourceTracker* tracker) {
  // A destructor cannot throw; failing to free leaks the code, so say so and go on.
  if (llvm::Error err = tracker->remove())
    llvm::logAllUnhandledErrors(std::move(err), llvm::errs(), "[jit] cannot free a module: ");
  // The session's string pool keeps every symbol name it has seen, and each module's names are
  // new (see the suffix in compile()): drop the unused ones now and then, ~100 bytes a module.
  static std::atomic<unsigned> removed{0};
  if (++removed % 256 == 0)
    tracker->getJITDylib().getExecutionSession().getSymbolStringPool()->clearDeadEntries();
  tracker->Release();
}

}  // namespace

OrcJit& OrcJit::instance() {
  // Leaked on purpose: a CompiledModule destroyed during static destruction still needs the JIT.
  static OrcJit* jit = new OrcJit();
  return *jit;
}

OrcJit::OrcJit() {
  static std::once_flag targets_initialized;
  std::call_once(targets_initialized, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
  // detectHost() takes the CPU name and features from sys::getHostCPUName/getHostCPUFeatures.
  auto host = unwrap(llvm::orc::JITTargetMachineBuilder::detectHost(), "cannot detect the host");
  // What LLJIT sets for its JITLink linker anyway; setting it here makes emit_assembly() and the
  // per-thread target machines produce exactly the code that runs.
  host.setRelocationModel(llvm::Reloc::PIC_);
  host.setCodeModel(llvm::CodeModel::Small);
  host_ = std::make_unique<llvm::orc::JITTargetMachineBuilder>(host);
  jit_ = unwrap(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(host).create(),
                "cannot create the JIT");
  // Bare: LLJIT::createJITDylib would add the platform's __dso_handle module, which kernels (no
  // static initializers) never use. The link order gives the process's symbols (libm).
  dylib_ = &jit_->getExecutionSession().createBareJITDylib("tracejit");
  dylib_->addToLinkOrder(jit_->defaultLinkOrder());
  jit_->getExecutionSession().setErrorReporter([](llvm::Error err) {
    if (!t_session_errors.empty()) t_session_errors += "; ";
    t_session_errors += llvm::toString(std::move(err));
  });
}

OrcJit::~OrcJit() = default;

std::unique_ptr<llvm::LLVMContext> OrcJit::make_context() {
  return std::make_unique<llvm::LLVMContext>();
}

llvm::TargetMachine& OrcJit::target_machine() {
  // Creating a target machine and its subtarget costs ~0.4 ms, so each thread keeps one.
  thread_local std::unique_ptr<llvm::TargetMachine> tm;
  if (!tm)
    tm = unwrap(llvm::orc::JITTargetMachineBuilder(*host_).createTargetMachine(),
                "cannot create a target machine");
  return *tm;
}

const llvm::DataLayout& OrcJit::data_layout() const { return jit_->getDataLayout(); }

CompiledModule OrcJit::compile(std::unique_ptr<llvm::Module> module,
                               std::unique_ptr<llvm::LLVMContext> context,
                               const CompileRequest& req) {
  // Members are destroyed in reverse: the module before the context it lives in.
  struct {
    std::unique_ptr<llvm::LLVMContext> context;
    std::unique_ptr<llvm::Module> module;
  } owned{std::move(context), std::move(module)};
  llvm::Module& m = *owned.module;
  if (&m.getContext() != owned.context.get())
    throw InternalError("[jit] the module was not built in the context passed with it");

  if (req.opt_level < 0 || req.opt_level > 3 || req.codegen_opt_level < 0 ||
      req.codegen_opt_level > 3)
    throw InternalError("[jit] optimization levels must be 0-3, not " +
                        std::to_string(req.opt_level) + " and " +
                        std::to_string(req.codegen_opt_level));

  llvm::TargetMachine& tm = target_machine();
  tm.setOptLevel(static_cast<llvm::CodeGenOptLevel>(req.codegen_opt_level));  // same numbering
  m.setDataLayout(tm.createDataLayout());
  m.setTargetTriple(tm.getTargetTriple().str());
  std::string problems;
  llvm::raw_string_ostream problems_os(problems);
  if (llvm::verifyModule(m, &problems_os))
    throw InternalError("[jit] the lowering produced invalid LLVM IR: " + problems);

  CompiledModule out;
  if (req.want_texts) out.llvm_ir_ = print(m);
  auto start = std::chrono::steady_clock::now();
  optimize_module(m, tm, req.opt_level);
  out.llvm_opt_s_ = seconds_since(start);
  if (req.want_texts) {
    out.optimized_llvm_ir_ = print(m);
    out.assembly_ = emit_assembly(m, tm);
  }

  // Code generation runs here, on the calling thread with its own target machine, rather than in
  // LLJIT's compile layer, whose single target machine would need a lock.
  start = std::chrono::steady_clock::now();
  t_session_errors.clear();
  // Modules share one JITDylib, so each gets its own names: a suffix on every symbol it defines
  // for others, so that modules may reuse names (and the texts above keep the plain ones).
  static std::atomic<unsigned long> next_module{0};
  const std::string suffix = ".m" + std::to_string(next_module++);
  for (llvm::GlobalValue& g : m.global_values())
    if (!g.isDeclaration() && !g.hasLocalLinkage() && !g.getName().starts_with("llvm."))
      g.setName(g.getName() + suffix);  // (llvm.* globals such as llvm.used keep their meaning)
  auto object = unwrap(llvm::orc::SimpleCompiler(tm)(m), "code generation failed");
  out.suffix_ = suffix;
  out.code_bytes_ = object->getBufferSize();
  if (req.keep_object) out.object_ = object->getBuffer().str();
  llvm::orc::ResourceTrackerSP tracker = dylib_->createResourceTracker();
  tracker->Retain();  // released by remove_code
  out.code_ = std::shared_ptr<void>(tracker.get(), remove_code);
  check(jit_->addObjectFile(tracker, std::move(object)), "cannot add the module");
  for (const std::string& name : req.symbols) {
    auto address = unwrap(jit_->lookup(*dylib_, name + suffix), "cannot link '" + name + "'");
    out.symbols_.emplace_back(name, address.toPtr<void*>());
  }
  out.codegen_s_ = seconds_since(start);
  return out;
}

std::string OrcJit::host_description() {
  std::string features;
  llvm::StringMap<bool> map = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> sorted;
  for (const auto& f : map) sorted.push_back((f.second ? "+" : "-") + f.first().str());
  std::sort(sorted.begin(), sorted.end());
  for (const std::string& f : sorted) features += (features.empty() ? "" : ",") + f;
  return "llvm " LLVM_VERSION_STRING "; triple " + llvm::sys::getProcessTriple() + "; cpu " +
         llvm::sys::getHostCPUName().str() + "; features " + features;
}

}  // namespace tracejit::backend

#pragma once
// The process-wide LLVM ORC JIT. The lowering builds one llvm::Module per kernel in its own
// LLVMContext and hands both to OrcJit::compile(), which optimizes the module for the host CPU,
// generates code and returns the addresses of the requested entry points. LLVM's headers stay
// out of this file (forward declarations only): LLJIT.h and PassBuilder.h cost 5-15 s per file.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/compiled_module.h"

namespace llvm {
class DataLayout;
class LLVMContext;
class Module;
class TargetMachine;
namespace orc {
class JITDylib;
class LLJIT;
class JITTargetMachineBuilder;
}  // namespace orc
}  // namespace llvm

namespace tracejit::backend {

/// The machine-code optimization level (as llc -O0..-O3) unless a request asks for another.
/// Measured on LLVM 19, znver5, IR optimized at O2, a 12-flop elementwise f32 loop: level 0
/// generates code in ~1.1 ms against ~4.5-7 ms at levels 1-3 (which cost and run alike), so a
/// small kernel compiles in ~3.5 ms instead of ~7-11 ms. Its code keeps the IR's vector loops but
/// spills loop state to the stack: ~45% slower on L2-resident arrays, ~10% on 1000 elements or
/// on arrays that stream from memory. Latency wins for a tracing JIT; ask for 2 where a kernel
/// runs long enough to repay ~4 ms. A small root kernel loses little: it is lowered over its
/// constant range and unrolled whole, and straight-line code keeps its values in registers.
inline constexpr int kCodeGenOptLevel = 0;

/// What to do with one module.
struct CompileRequest {
  int opt_level = 2;                  ///< IR pipeline: 2 or 3; 1 light (llvm_opt.h); 0 none.
  int codegen_opt_level = kCodeGenOptLevel;  ///< 0-3, see kCodeGenOptLevel.
  std::vector<std::string> symbols;   ///< Entry points whose addresses compile() returns.
  bool want_texts = false;            ///< Keep the IR before and after optimization, and the asm.
  bool keep_object = false;           ///< Keep the object file (for the disk cache).
};

/// The JIT for the host CPU (its name and features, so AVX2/AVX-512 are used where present).
/// All LLVM failures come out as tracejit::Error with a message starting "[jit] ".
class OrcJit {
 public:
  /// The process's JIT, created on first use (thread-safe) and never destroyed, so compiled
  /// modules held in static caches can still be freed during exit.
  static OrcJit& instance();

  /// A fresh context for building one module; compile() takes it back with the module.
  static std::unique_ptr<llvm::LLVMContext> make_context();

  /// Verifies, optimizes and compiles `module` (built in `context`); several threads may call it
  /// at once. Sets the module's data layout and triple first, so the lowering need not. Throws
  /// tracejit::InternalError for invalid IR or levels outside 0-3, and tracejit::Error if code
  /// generation or linking fails (an undefined external symbol, say).
  CompiledModule compile(std::unique_ptr<llvm::Module> module,
                         std::unique_ptr<llvm::LLVMContext> context, const CompileRequest& req);

  /// What the generated code depends on besides the IR: LLVM's version, and the host CPU's name
  /// and features, as one line of text (part of disk cache keys).
  static std::string host_description();

  /// The host target machine of the calling thread (a TargetMachine is not thread-safe, so each
  /// thread gets its own): for the data layout, the triple and TargetTransformInfo.
  llvm::TargetMachine& target_machine();
  const llvm::DataLayout& data_layout() const;

  OrcJit(const OrcJit&) = delete;
  OrcJit& operator=(const OrcJit&) = delete;

 private:
  OrcJit();
  ~OrcJit();

  std::unique_ptr<llvm::orc::JITTargetMachineBuilder> host_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  // Every module's code. One dylib for all rather than one each: a JITDylib's own symbol
  // tables cost ~10 KiB, which was most of a small cached executable's cost.
  llvm::orc::JITDylib* dylib_ = nullptr;
};

}  // namespace tracejit::backend

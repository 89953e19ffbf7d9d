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

namespace llvm {
class DataLayout;
class LLVMContext;
class Module;
class TargetMachine;
namespace orc {
class JITDylib;
class LLJIT;
class ResourceTracker;
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
/// runs long enough to repay ~4 ms.
inline constexpr int kCodeGenOptLevel = 0;

/// What to do with one module.
struct CompileRequest {
  int opt_level = 2;                  ///< IR pipeline: 2 or 3; 1 light (llvm_opt.h); 0 none.
  int codegen_opt_level = kCodeGenOptLevel;  ///< 0-3, see kCodeGenOptLevel.
  std::vector<std::string> symbols;   ///< Entry points whose addresses compile() returns.
  bool want_texts = false;            ///< Keep the IR before and after optimization, and the asm.
  bool keep_object = false;           ///< Keep the object file (for the disk cache).
};

/// Native code for one module, owning its JIT resources: destroying it frees the code, so keep
/// it alive while any of its function pointers may run. Movable, not copyable.
class CompiledModule {
 public:
  /// The address of an entry point named in CompileRequest::symbols; throws tracejit::Error for
  /// any other name rather than hand out a null function pointer.
  void* symbol(std::string_view name) const;

  /// Texts, empty unless CompileRequest::want_texts was set.
  const std::string& llvm_ir() const { return llvm_ir_; }
  const std::string& optimized_llvm_ir() const { return optimized_llvm_ir_; }
  const std::string& assembly() const { return assembly_; }
  /// Seconds spent in the IR pass pipeline.
  double llvm_opt_s() const { return llvm_opt_s_; }
  /// Seconds spent making machine code: codegen, JIT link and symbol lookup.
  double codegen_s() const { return codegen_s_; }
  /// The entry points, in CompileRequest::symbols order.
  std::vector<std::string> symbol_names() const {
    std::vector<std::string> names;
    for (const auto& [name, address] : symbols_) names.push_back(name);
    return names;
  }
  /// The object file linked, when CompileRequest::keep_object was set (else empty), and the
  /// suffix its defined symbols carry (see compile()); load() takes both back.
  std::string take_object() { return std::move(object_); }
  const std::string& suffix() const { return suffix_; }
  /// The object file's size in bytes: about the code and data this module keeps mapped.
  size_t code_bytes() const { return code_bytes_; }

 private:
  friend class OrcJit;
  CompiledModule() = default;
  struct RemoveCode {
    RemoveCode() noexcept : own_dylib(false) {}
    bool own_dylib;  // load(): the module's own JITDylib, removed with it
    void operator()(llvm::orc::ResourceTracker* tracker) const;
  };

  // The module's code and symbols in the JIT's one JITDylib, freed on their own through this
  // tracker (which holds a reference it releases).
  std::unique_ptr<llvm::orc::ResourceTracker, RemoveCode> code_;
  std::vector<std::pair<std::string, void*>> symbols_;
  std::string llvm_ir_, optimized_llvm_ir_, assembly_;
  std::string object_, suffix_;
  size_t code_bytes_ = 0;
  double llvm_opt_s_ = 0, codegen_s_ = 0;
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

  /// Links an object file that compile() produced (CompiledModule::object, in this process or
  /// another on the same CPU) and looks up `symbols` (plain names; the object's carry `suffix`),
  /// with no LLVM optimization or code generation. Each loaded module gets a JITDylib of its
  /// own, as its symbol names may repeat those of modules compiled here. Throws tracejit::Error
  /// when the object does not link or lacks a symbol.
  CompiledModule load(const std::string& object, const std::string& suffix,
                      const std::vector<std::string>& symbols);

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

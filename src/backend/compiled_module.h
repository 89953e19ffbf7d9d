#pragma once
// Native code for one module and the entry points it defines, as the two ways of making it hand
// it over: OrcJit::compile (LLVM IR in, through ORC) and load_object (a cached object file in,
// linked by elf_link.cpp or RuntimeDyld, with no LLVM session). Whoever made it, its owner frees
// the code.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracejit/error.h"

namespace tracejit::backend {

class CompiledModule;

/// Links `object`, an object file that OrcJit::compile produced (CompiledModule::take_object, in
/// this process or another on the same CPU), into memory of its own and looks up `symbols`
/// (plain names; the object's carry `suffix`). No LLVM optimization, code generation or ORC
/// session: this is what a disk cache hit costs, in a fresh process too. Externals (libm) come
/// from the process. Throws tracejit::Error when the object does not parse or link, or lacks an
/// entry point. Thread-safe. (object_loader.cpp)
CompiledModule load_object(const std::string& object, const std::string& suffix,
                           const std::vector<std::string>& symbols);

/// Destroying it frees the code, so keep it alive while any of its function pointers may run.
/// Movable, not copyable.
class CompiledModule {
 public:
  CompiledModule(CompiledModule&&) noexcept = default;
  CompiledModule& operator=(CompiledModule&&) noexcept = default;
  CompiledModule(const CompiledModule&) = delete;
  CompiledModule& operator=(const CompiledModule&) = delete;

  /// The address of an entry point named in CompileRequest::symbols; throws tracejit::Error for
  /// any other name rather than hand out a null function pointer.
  void* symbol(std::string_view name) const {
    for (const auto& [symbol_name, address] : symbols_)
      if (symbol_name == name) return address;
    throw Error("[jit] no entry point '" + std::string(name) +
                "' in this module: list it in CompileRequest::symbols");
  }

  /// Texts, empty unless CompileRequest::want_texts was set.
  const std::string& llvm_ir() const { return llvm_ir_; }
  const std::string& optimized_llvm_ir() const { return optimized_llvm_ir_; }
  const std::string& assembly() const { return assembly_; }
  /// Seconds spent in the IR pass pipeline.
  double llvm_opt_s() const { return llvm_opt_s_; }
  /// Seconds spent making machine code: codegen, linking and symbol lookup.
  double codegen_s() const { return codegen_s_; }
  /// The entry points, in CompileRequest::symbols order.
  std::vector<std::string> symbol_names() const {
    std::vector<std::string> names;
    for (const auto& [name, address] : symbols_) names.push_back(name);
    return names;
  }
  /// The object file linked, when CompileRequest::keep_object was set (else empty), and the
  /// suffix its defined symbols carry (see OrcJit::compile); load_object takes both back.
  std::string take_object() { return std::move(object_); }
  const std::string& suffix() const { return suffix_; }
  /// The object file's size in bytes: about the code and data this module keeps mapped.
  size_t code_bytes() const { return code_bytes_; }

 private:
  friend class OrcJit;
  friend CompiledModule load_object(const std::string&, const std::string&, const std::vector<std::string>&);
  CompiledModule() = default;

  // What keeps the code mapped, of whichever kind its maker chose (an ORC resource tracker, a
  // linked object's mapping); its deleter frees it.
  std::shared_ptr<void> code_;
  std::vector<std::pair<std::string, void*>> symbols_;
  std::string llvm_ir_, optimized_llvm_ir_, assembly_;
  std::string object_, suffix_;
  size_t code_bytes_ = 0;
  double llvm_opt_s_ = 0, codegen_s_ = 0;
};

}  // namespace tracejit::backend

#pragma once
// The backend's entry point: an optimized IR function in, a native executable out.
//   optimized ir::Function -> fusion plan (kernels) -> LLVM IR -> LLVM passes -> machine code
// The runtime side (Executable::run) allocates buffers and runs the kernels in order, splitting
// large loops across threads.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "tracejit/array.h"

namespace tracejit::backend {

struct CompileOptions {
  std::string name = "fn";   // symbol prefix and the name shown in dumps
  bool want_texts = false;   // keep fused IR, LLVM IR (before/after), assembly
  int opt_level = 2;         // LLVM IR optimization level
  bool fast_math = false;    // IEEE semantics unless explicitly asked
  bool quick = false;        // the quick tier: LLVM's light pipeline, fastest code generation
  bool full_codegen = false; // machine code at -O2 as loops get (orc_jit.h): the optimized tier
  bool keep_object = false;  // keep the object file (Executable::object_code), for the disk cache
};

/// What rebuilds an executable without LLVM: the module's object file, the suffix its symbols
/// carry, the entry points, the symbol prefix (CompileOptions::name) and the fusion setting the
/// plan was made with. The plan itself is made again from the optimized IR.
struct ObjectCode {
  std::string object;
  std::string suffix;
  std::vector<std::string> symbols;
  std::string prefix;
  bool materialize_layout = false;
};

/// Seconds spent in each backend phase of one compilation.
struct BackendTimes {
  double fusion_s = 0, lower_s = 0, llvm_opt_s = 0, codegen_s = 0;
};

class Executable {
 public:
  virtual ~Executable() = default;
  /// Runs the compiled program on concrete inputs whose types match the function's inputs;
  /// returns the outputs as concrete arrays. Thread-safe: one executable may run on several
  /// threads at once.
  virtual std::vector<Array> run(std::span<const Array> inputs) const = 0;
  /// Runs on concrete inputs that the caller has already matched against the compiled types
  /// (jit's signature match, Compiled's check), so they are not checked again: input i is
  /// `*inputs[i]`; the results are moved into outputs[0 .. num_outputs()), which are empty
  /// Arrays. Thread-safe.
  virtual void run_unchecked(const Array* const* inputs, Array* outputs) const = 0;
  virtual size_t num_outputs() const = 0;
  /// The fused program, printed (the optimized IR with its kernels shown).
  virtual const std::string& fused_ir() const = 0;
  /// The fused program as a Graphviz digraph (fused_dot); empty unless want_texts.
  virtual const std::string& fused_dot() const = 0;
  virtual const std::string& llvm_ir() const = 0;            // empty unless want_texts
  virtual const std::string& optimized_llvm_ir() const = 0;  // empty unless want_texts
  virtual const std::string& assembly() const = 0;           // empty unless want_texts
  virtual const BackendTimes& times() const = 0;
  /// The object code, when CompileOptions::keep_object was set; else null.
  virtual const ObjectCode* object_code() const { return nullptr; }
  /// The size of its machine code in bytes (what keeping it costs, for the code caches).
  virtual size_t code_bytes() const = 0;
};

/// Compiles `fn` (already optimized by passes::optimize; no captures). Throws tj::Error for a
/// primitive or dtype the backend cannot lower, never producing wrong code.
std::shared_ptr<const Executable> compile(const ir::Function& fn, const CompileOptions& options);

/// The executable of `fn` from object code that compile() made for an equal function (equal
/// code_key) on this CPU: the plan is made again, the object linked, nothing optimized or
/// generated. Throws tj::Error when the object does not fit the plan (a missing entry point).
std::shared_ptr<const Executable> load(const ir::Function& fn, const ObjectCode& code);

}  // namespace tracejit::backend

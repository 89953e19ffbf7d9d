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
  /// `*inputs[i]`; the results are moved into outputs[0 .. num_outputs()). Thread-safe.
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
};

/// Compiles `fn` (already optimized by passes::optimize; no captures). Throws tj::Error for a
/// primitive or dtype the backend cannot lower, never producing wrong code.
std::shared_ptr<const Executable> compile(const ir::Function& fn, const CompileOptions& options);

}  // namespace tracejit::backend

#pragma once
// LLVM's own optimization pipeline and assembly printer, as used by the ORC JIT. Kept apart from
// orc_jit.h so that only this file pays for PassBuilder.h.
#include <string>

namespace llvm {
class Module;
class TargetMachine;
}  // namespace llvm

namespace tracejit::backend {

/// Runs LLVM's default per-module pipeline at `opt_level` (0 skips it; 2-3 as in clang -O2, -O3;
/// 1 a light function pipeline, for large modules of cheap code)
/// with `tm`'s TargetTransformInfo, so that the vectorizers use the host's vector width. No
/// fast-math flags are added: floating point keeps IEEE semantics, which also means float
/// reductions are not reassociated (and so not vectorized) unless the IR carries the flags.
/// `tm` is not thread-safe: use one per thread.
void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, int opt_level);

/// The assembly `tm` generates for `m`, made from a clone so that `m` is untouched. Codegen runs
/// a second time for this, so ask for it only when the text is wanted.
std::string emit_assembly(const llvm::Module& m, llvm::TargetMachine& tm);

}  // namespace tracejit::backend

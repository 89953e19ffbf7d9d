#pragma once
// Lowering of a fusion plan to LLVM IR: one module with one entry point per kernel (those of
// region steps' sub-plans included),
//   void <name>_k<i>(void** buffers, int64_t begin, int64_t end)
// which runs steps [begin, end) of the kernel's outermost range (see Kernel in fusion.h) and
// addresses its buffers as buffers[slot]. Each entry point loads its pointers and calls an
// internal body whose pointer arguments are noalias (inputs read-only, outputs distinct), so
// LLVM may vectorize without runtime overlap checks. LLVM's headers stay in the .cpp.
#include <string>
#include <string_view>

#include "backend/compile.h"
#include "backend/fusion.h"
#include "backend/orc_jit.h"
#include "tracejit/error.h"

namespace tracejit::backend {

/// The entry point of kernel `index` in a module lowered with CompileOptions::name `name`.
std::string kernel_symbol(std::string_view name, size_t index);
/// A split reduction's (Kernel::parts) second entry point, of the same signature: run
/// over [0, 1) after every step of the first, it combines the parts into the outputs.
std::string combine_symbol(std::string_view name, size_t index);
/// The name under which the kernels of region `region` of (region) kernel `kernel` of a plan
/// lowered under `prefix` are lowered: kernel_symbol(region_prefix(...), i) is their entry.
std::string region_prefix(std::string_view prefix, size_t kernel, size_t region);

/// The entry point of a driven scan or while loop (Kernel::driven) whose body was lowered under
/// `region_prefix`:
///   void drv(void** slots, void* const* init, void* const* set0, void* const* set1,
///            void* const* xs, void* const* ys, int64_t length, int64_t begin, int64_t end)
/// `slots` is the body's slot array with its consts already set; step t reads the carries from
/// `init` (t = 0) or set (t-1) % 2 and writes them to set t % 2; xs and ys are the stacked
/// arrays' base pointers, read and written a row per step (from the last row when reversed).
/// A chunked scan's kernels run over [begin, end) of their range (each thread its own chunk,
/// with its own copy of `slots`); other scans ignore begin and end.
std::string driver_symbol(std::string_view region_prefix);
using ScanDriver = void (*)(void** slots, void* const* init, void* const* set0, void* const* set1,
                            void* const* xs, void* const* ys, int64_t length, int64_t begin,
                            int64_t end);

/// A driven while loop's entry point, named after its body's region prefix:
///   int64_t drv(void** cond_slots, void** body_slots, void* const* init, void* const* set0,
///               void* const* set1, void* const* trajectory)
/// with both regions' consts already in their slot arrays; carries as for a scan. Returns the
/// number of steps run, or -1 when the loop needed more than its max_iterations.
using WhileDriver = int64_t (*)(void** cond_slots, void** body_slots, void* const* init,
                                void* const* set0, void* const* set1, void* const* trajectory);

/// Thrown by lower_and_compile when a kernel's inline code passes kMaxInlineEvaluations while
/// FusionOptions::materialize_layout is off; compile() then plans again with it on.
class KernelTooLarge : public Error {
 public:
  using Error::Error;
};

/// Lowers every kernel of `plan` into one module and compiles it with OrcJit. Throws tj::Error
/// ("[jit] cannot lower <prim> for <dtype> yet ...") for a primitive/dtype it cannot lower.
/// `lower_s` receives the seconds spent building the LLVM IR.
CompiledModule lower_and_compile(const ir::Function& fn, const FusionPlan& plan,
                                 const FusionOptions& fusion, const CompileOptions& options,
                                 double* lower_s);

}  // namespace tracejit::backend

#pragma once
// A linker for the x86-64 ELF relocatable objects that OrcJit::compile makes (PIC, small code
// model, no unwind tables): the disk cache's fast path, with no LLVM code at all. A fresh process
// pays only for what it runs, and RuntimeDyld's object parsing and linking, cold, cost ~0.5 ms
// of a ~2.3 ms first call. It maps the object once, code then constants and GOT (made read-only)
// then writable data, applies the relocations LLVM's x86-64 backend emits for such code and
// resolves externals from the process; anything else it declines, and load_object hands that
// object to RuntimeDyld instead.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tracejit::backend {

/// An object linked into memory of its own, freed with the last copy of `memory`.
struct LinkedObject {
  std::shared_ptr<void> memory;
  std::vector<std::pair<std::string, void*>> globals;  ///< defined global symbols
};

/// Links `object`; nullopt when it has what this linker leaves to RuntimeDyld (another machine,
/// unwind tables, TLS, common symbols, a relocation type outside the list in elf_link.cpp).
/// Throws tracejit::Error when it is malformed (sizes or indices out of bounds), when an
/// external is missing from the process (naming each), or when a relocation does not reach.
std::optional<LinkedObject> link_elf_x86_64(std::string_view object);

}  // namespace tracejit::backend

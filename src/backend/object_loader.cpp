// load_object (compiled_module.h): a cached object file linked into one mapping of its own, by
// elf_link.h's linker for the x86-64 objects our code generation makes, else by LLVM's
// RuntimeDyld. A disk cache hit used ORC, whose LLJIT costs ~2.7 ms to create in a fresh process
// and ~1 ms more per object (a JITDylib, a session lookup); neither linker needs a session.
//
// RuntimeDyld's memory is one mapping per object too, reserved up front (RuntimeDyld tells its
// size), so code, constants and the GOT lie within the ±2 GiB that the small code model's PC32
// relocations reach; section memory managers that map each kind of section apart give no such
// guarantee.
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <llvm/ExecutionEngine/JITSymbol.h>
#include <llvm/ExecutionEngine/RTDyldMemoryManager.h>
#include <llvm/ExecutionEngine/RuntimeDyld.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/MemoryBuffer.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "backend/compiled_module.h"
#include "backend/elf_link.h"
#include "tracejit/error.h"

namespace tracejit::backend {
namespace {

// Externals by their plain names from the process (libm's scalar functions, memset), as ORC's
// process symbol generator found them; one error lists every name that is missing.
class ProcessSymbols final : public llvm::JITSymbolResolver {
 public:
  void lookup(const LookupSet& names, OnResolvedFunction done) override {
    LookupResult found;
    std::string missing;
    for (llvm::StringRef name : names) {
      if (void* address = dlsym(RTLD_DEFAULT, name.str().c_str()))
        found[name] = llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(address),
                                               llvm::JITSymbolFlags::Exported);
      else
        missing += (missing.empty() ? "" : ", ") + name.str();
    }
    if (missing.empty()) return done(std::move(found));
    done(llvm::make_error<llvm::StringError>("symbols not found in the process: " + missing,
                                             llvm::inconvertibleErrorCode()));
  }
  // Responsibility is for weak definitions that other objects may already provide: none here.
  llvm::Expected<LookupSet> getResponsibilitySet(const LookupSet&) override { return LookupSet(); }
};

// The object's memory: code, read-only data and writable data (GOT included), each in its own
// pages of one mapping, made executable and read-only once relocated.
class OneMapping final : public llvm::RuntimeDyld::MemoryManager {
 public:
  OneMapping() = default;
  OneMapping(const OneMapping&) = delete;
  OneMapping& operator=(const OneMapping&) = delete;
  ~OneMapping() override {
    deregisterEHFrames();
    if (base_) munmap(base_, size_);
  }

  bool needsToReserveAllocationSpace() override { return true; }
  void reserveAllocationSpace(uintptr_t code, llvm::Align code_align, uintptr_t ro,
                              llvm::Align ro_align, uintptr_t rw, llvm::Align rw_align) override {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    // Sections start at the region's page or later, so alignments up to a page hold; each size
    // is already an upper bound that counts every section at the largest alignment.
    auto pages = [&](uintptr_t bytes, llvm::Align align) {
      return (bytes + align.value() + page - 1) / page * page;
    };
    const size_t code_size = pages(code, code_align), ro_size = pages(ro, ro_align);
    size_ = code_size + ro_size + pages(rw, rw_align);
    void* base = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
      base_ = nullptr;
      size_ = 0;
      return;  // every allocation then fails: loadObject reports it
    }
    base_ = static_cast<uint8_t*>(base);
    code_ = {base_, base_ + code_size};
    ro_ = {code_.end, code_.end + ro_size};
    rw_ = {ro_.end, base_ + size_};
  }

  uint8_t* allocateCodeSection(uintptr_t size, unsigned align, unsigned, llvm::StringRef) override {
    return code_.take(size, align);
  }
  uint8_t* allocateDataSection(uintptr_t size, unsigned align, unsigned, llvm::StringRef,
                               bool read_only) override {
    return (read_only ? ro_ : rw_).take(size, align);
  }

  void registerEHFrames(uint8_t* address, uint64_t, size_t size) override {
    llvm::RTDyldMemoryManager::registerEHFramesInProcess(address, size);
    eh_frames_.emplace_back(address, size);
  }
  void deregisterEHFrames() override {
    for (const auto& [address, size] : eh_frames_)
      llvm::RTDyldMemoryManager::deregisterEHFramesInProcess(address, size);
    eh_frames_.clear();
  }

  bool finalizeMemory(std::string* why) override {
    if (!base_) return true;
    if (mprotect(code_.begin, code_.end - code_.begin, PROT_READ | PROT_EXEC) != 0 ||
        mprotect(ro_.begin, ro_.end - ro_.begin, PROT_READ) != 0) {
      if (why) *why = "cannot protect the loaded code's pages";
      return true;
    }
    return false;  // x86's instruction cache needs no flush
  }

 private:
  struct Region {
    uint8_t *begin = nullptr, *end = nullptr, *next = nullptr;
    Region() = default;
    Region(uint8_t* b, uint8_t* e) : begin(b), end(e), next(b) {}
    uint8_t* take(uintptr_t size, unsigned align) {
      const uintptr_t a = align ? align : 1;
      uint8_t* at = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(next) + a - 1) / a * a);
      if (!begin || at + size > end) return nullptr;  // beyond the reservation: RuntimeDyld fails
      next = at + size;
      return at;
    }
  };
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  Region code_, ro_, rw_;
  std::vector<std::pair<uint8_t*, size_t>> eh_frames_;
};

// What a loaded module keeps: the mapping, and the linker that registered its frames.
struct LoadedObject {
  OneMapping memory;
  ProcessSymbols externals;
  llvm::RuntimeDyld linker{memory, externals};
};

[[noreturn]] void fail(const std::string& why) { throw Error("[jit] cannot load a cached module: " + why); }

// The general path, for objects link_elf_x86_64 declines; `wanted` (full names) among globals.
LinkedObject link_with_runtime_dyld(const std::string& object, const std::vector<std::string>& wanted) {
  auto parsed = llvm::object::ObjectFile::createObjectFile(
      llvm::MemoryBufferRef(object, "tracejit-cache-entry"));
  if (!parsed) fail(llvm::toString(parsed.takeError()));
  if (!(*parsed)->isELF()) fail("not an ELF object");  // RuntimeDyld would abort on others
  auto loaded = std::make_shared<LoadedObject>();
  if (!loaded->linker.loadObject(**parsed) || loaded->linker.hasError())
    fail(loaded->linker.getErrorString().str());
  loaded->linker.finalizeWithMemoryManagerLocking();  // relocate, register frames, protect
  if (loaded->linker.hasError()) fail(loaded->linker.getErrorString().str());
  LinkedObject out;
  for (const std::string& name : wanted)
    if (const llvm::JITEvaluatedSymbol found = loaded->linker.getSymbol(name); found.getAddress())
      out.globals.emplace_back(name, llvm::jitTargetAddressToPointer<void*>(found.getAddress()));
  out.memory = std::move(loaded);
  return out;
}

}  // namespace

CompiledModule load_object(const std::string& object, const std::string& suffix,
                           const std::vector<std::string>& symbols) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> wanted;
  for (const std::string& name : symbols) wanted.push_back(name + suffix);
  std::optional<LinkedObject> linked = link_elf_x86_64(object);
  if (!linked) linked = link_with_runtime_dyld(object, wanted);
  CompiledModule out;
  for (size_t i = 0; i < symbols.size(); ++i) {
    auto found = std::find_if(linked->globals.begin(), linked->globals.end(),
                              [&](const auto& global) { return global.first == wanted[i]; });
    if (found == linked->globals.end()) fail("it lacks the entry point '" + symbols[i] + "'");
    out.symbols_.emplace_back(symbols[i], found->second);
  }
  out.code_ = std::move(linked->memory);
  out.suffix_ = suffix;
  out.code_bytes_ = object.size();
  out.codegen_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace tracejit::backend

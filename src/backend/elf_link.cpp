// link_elf_x86_64 (elf_link.h). Relocations handled, with S the symbol's address, A the addend,
// P the place patched (System V x86-64 psABI, section 4.4):
//   R_X86_64_64       S + A, 64 bits            R_X86_64_PC64  S + A - P, 64 bits
//   R_X86_64_PC32     S + A - P, signed 32      R_X86_64_PLT32 the same; an external goes
//                                                                through a stub (jmp *slot)
//   R_X86_64_GOTPCREL{,X}, R_X86_64_REX_GOTPCRELX: slot + A - P, signed 32, where the slot in
//                     this object's GOT holds S
//   R_X86_64_32, R_X86_64_32S: S + A, zero- or sign-extended 32 bits
// Everything inside one mapping is within reach of a signed 32-bit displacement; an external
// out of reach is an error (the object is compiled again), never a truncated address.
#include "backend/elf_link.h"

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "tracejit/error.h"

namespace tracejit::backend {
namespace {

constexpr size_t kStubBytes = 8;  // ff 25 <rel32>: jmp *slot(%rip), padded to 8
constexpr uint32_t kUnwindSection = 0x70000001;  // SHT_X86_64_UNWIND: LLVM's .eh_frame type

[[noreturn]] void malformed(const std::string& why) {
  throw Error("[jit] cannot load a cached module: the object is malformed (" + why + ")");
}

// The object's bytes, read with bounds checks (and memcpy: nothing in them need be aligned).
class Bytes {
 public:
  explicit Bytes(std::string_view data) : data_(data) {}
  template <class T>
  T read(uint64_t offset, const char* what) const {
    if (offset > data_.size() || data_.size() - offset < sizeof(T)) malformed(what);
    T value;
    std::memcpy(&value, data_.data() + offset, sizeof(T));
    return value;
  }
  void check_range(uint64_t offset, uint64_t size, const char* what) const {
    if (offset > data_.size() || data_.size() - offset < size) malformed(what);
  }
  const char* at(uint64_t offset) const { return data_.data() + offset; }

 private:
  std::string_view data_;
};

uint64_t align_up(uint64_t value, uint64_t align) {
  return align <= 1 ? value : (value + align - 1) / align * align;
}

bool is_gotpcrel(uint32_t type) {
  return type == R_X86_64_GOTPCREL || type == R_X86_64_GOTPCRELX || type == R_X86_64_REX_GOTPCRELX;
}

// Where a loaded section's bytes go: its region and offset in it.
enum Region { kCode, kReadOnly, kWritable, kRegions };

struct Placement {
  bool loaded = false;
  Region region = kCode;
  uint64_t offset = 0;
};

}  // namespace

std::optional<LinkedObject> link_elf_x86_64(std::string_view object) {
  const Bytes bytes(object);
  const auto header = bytes.read<Elf64_Ehdr>(0, "no ELF header");
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) malformed("no ELF magic");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB ||
      header.e_type != ET_REL || header.e_machine != EM_X86_64)
    return std::nullopt;
  if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shnum == 0 ||
      header.e_shnum >= SHN_LORESERVE)
    return std::nullopt;  // extended section numbering: not from a kernel module
  std::vector<Elf64_Shdr> sections(header.e_shnum);
  for (size_t i = 0; i < sections.size(); ++i)
    sections[i] = bytes.read<Elf64_Shdr>(header.e_shoff + i * sizeof(Elf64_Shdr), "section header");
  auto section_bytes = [&](const Elf64_Shdr& s) {
    if (s.sh_type != SHT_NOBITS) bytes.check_range(s.sh_offset, s.sh_size, "section contents");
  };
  // The name of `offset` in string table `table`, NUL-terminated inside it.
  auto string_at = [&](size_t table, uint64_t offset) -> std::string_view {
    if (table >= sections.size() || sections[table].sh_type != SHT_STRTAB) malformed("string table");
    const Elf64_Shdr& s = sections[table];
    section_bytes(s);
    if (offset >= s.sh_size) malformed("string offset");
    const char* begin = bytes.at(s.sh_offset + offset);
    const void* nul = std::memchr(begin, 0, s.sh_size - offset);
    if (!nul) malformed("unterminated string");
    return {begin, static_cast<size_t>(static_cast<const char*>(nul) - begin)};
  };

  // Place the loaded sections; find the one symbol table.
  std::vector<Placement> placed(sections.size());
  uint64_t region_size[kRegions] = {0, 0, 0};
  size_t symtab = 0;
  for (size_t i = 1; i < sections.size(); ++i) {
    const Elf64_Shdr& s = sections[i];
    if (s.sh_type == SHT_SYMTAB) {
      if (symtab != 0) return std::nullopt;
      symtab = i;
    }
    if (s.sh_type == SHT_REL) return std::nullopt;  // x86-64 objects use RELA
    if (!(s.sh_flags & SHF_ALLOC)) continue;
    const std::string_view name = string_at(header.e_shstrndx, s.sh_name);
    if (s.sh_type == kUnwindSection || name == ".eh_frame" || (s.sh_flags & SHF_TLS) ||
        (s.sh_type != SHT_PROGBITS && s.sh_type != SHT_NOBITS))
      return std::nullopt;  // frames to register, TLS, init arrays: RuntimeDyld's business
    section_bytes(s);
    const Region region = (s.sh_flags & SHF_EXECINSTR) ? kCode
                          : (s.sh_flags & SHF_WRITE) || s.sh_type == SHT_NOBITS ? kWritable
                                                                                 : kReadOnly;
    if (s.sh_addralign > 4096) return std::nullopt;  // regions start on a page
    placed[i] = {true, region, align_up(region_size[region], s.sh_addralign)};
    region_size[region] = placed[i].offset + s.sh_size;
  }
  if (symtab == 0) return std::nullopt;
  const Elf64_Shdr& symbols_header = sections[symtab];
  if (symbols_header.sh_entsize != sizeof(Elf64_Sym)) malformed("symbol size");
  section_bytes(symbols_header);
  const size_t symbol_count = symbols_header.sh_size / sizeof(Elf64_Sym);
  std::vector<Elf64_Sym> symbols(symbol_count);
  for (size_t i = 0; i < symbol_count; ++i)
    symbols[i] = bytes.read<Elf64_Sym>(symbols_header.sh_offset + i * sizeof(Elf64_Sym), "symbol");

  // The relocation tables that patch loaded sections; a GOT slot per symbol they load through
  // one, a stub per external they call.
  struct Table {
    size_t target;
    const Elf64_Shdr* header;
  };
  std::vector<Table> tables;
  absl::flat_hash_map<uint32_t, uint64_t> got_slot, stub;  // symbol -> offset in its region
  for (size_t i = 1; i < sections.size(); ++i) {
    const Elf64_Shdr& s = sections[i];
    if (s.sh_type != SHT_RELA) continue;
    if (s.sh_info >= sections.size() || !placed[s.sh_info].loaded) continue;  // not loaded
    if (s.sh_link != symtab || s.sh_entsize != sizeof(Elf64_Rela)) malformed("relocation table");
    section_bytes(s);
    tables.push_back({s.sh_info, &s});
    for (uint64_t k = 0; k < s.sh_size / sizeof(Elf64_Rela); ++k) {
      const auto r = bytes.read<Elf64_Rela>(s.sh_offset + k * sizeof(Elf64_Rela), "relocation");
      const uint32_t sym = ELF64_R_SYM(r.r_info), type = ELF64_R_TYPE(r.r_info);
      if (sym >= symbol_count) malformed("relocation symbol");
      if (is_gotpcrel(type) || (type == R_X86_64_PLT32 && symbols[sym].st_shndx == SHN_UNDEF))
        got_slot.try_emplace(sym, 0);
      if (type == R_X86_64_PLT32 && symbols[sym].st_shndx == SHN_UNDEF) stub.try_emplace(sym, 0);
    }
  }
  region_size[kCode] = align_up(region_size[kCode], kStubBytes);
  for (auto& [sym, offset] : stub) offset = std::exchange(region_size[kCode], region_size[kCode] + kStubBytes);
  region_size[kReadOnly] = align_up(region_size[kReadOnly], 8);
  for (auto& [sym, offset] : got_slot) offset = std::exchange(region_size[kReadOnly], region_size[kReadOnly] + 8);

  // One mapping, each region on pages of its own.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t region_start[kRegions], total = 0;
  for (int r = 0; r < kRegions; ++r) {
    region_start[r] = total;
    total += align_up(region_size[r], page);
  }
  LinkedObject out;
  if (total == 0) return out;  // a program with no kernels: nothing to map
  void* mapped = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw ResourceError("[jit] cannot map " + std::to_string(total) + " bytes for a cached module");
  out.memory = std::shared_ptr<void>(mapped, [total](void* p) { munmap(p, total); });
  auto* base = static_cast<uint8_t*>(mapped);
  auto address_in = [&](Region r, uint64_t offset) { return base + region_start[r] + offset; };
  auto section_address = [&](size_t i) { return address_in(placed[i].region, placed[i].offset); };
  for (size_t i = 1; i < sections.size(); ++i)
    if (placed[i].loaded && sections[i].sh_type == SHT_PROGBITS)
      std::memcpy(section_address(i), bytes.at(sections[i].sh_offset), sections[i].sh_size);

  // Symbol addresses; externals from the process, every missing one named.
  std::vector<uint64_t> address(symbol_count, 0);
  std::vector<bool> resolved(symbol_count, false);  // defined where it can be reached
  resolved[0] = true;  // the null symbol: address 0
  std::string missing;
  for (size_t i = 1; i < symbol_count; ++i) {
    const Elf64_Sym& sym = symbols[i];
    if (sym.st_shndx == SHN_UNDEF) {
      const std::string name(string_at(symbols_header.sh_link, sym.st_name));
      if (name.empty()) continue;
      if (void* p = dlsym(RTLD_DEFAULT, name.c_str())) {
        address[i] = reinterpret_cast<uint64_t>(p);
        resolved[i] = true;
      } else
        missing += (missing.empty() ? "" : ", ") + name;
    } else if (sym.st_shndx == SHN_ABS) {
      address[i] = sym.st_value;
      resolved[i] = true;
    } else if (sym.st_shndx == SHN_COMMON || sym.st_shndx >= SHN_LORESERVE) {
      return std::nullopt;
    } else if (sym.st_shndx < sections.size() && placed[sym.st_shndx].loaded) {
      if (sym.st_value > sections[sym.st_shndx].sh_size) malformed("symbol value");
      address[i] = reinterpret_cast<uint64_t>(section_address(sym.st_shndx)) + sym.st_value;
      resolved[i] = true;
      const unsigned bind = ELF64_ST_BIND(sym.st_info);
      if ((bind == STB_GLOBAL || bind == STB_WEAK) && sym.st_name != 0)
        out.globals.emplace_back(std::string(string_at(symbols_header.sh_link, sym.st_name)),
                                 reinterpret_cast<void*>(address[i]));
    }
  }
  if (!missing.empty())
    throw Error("[jit] cannot load a cached module: symbols not found in the process: " + missing);
  for (const auto& [sym, offset] : got_slot)
    std::memcpy(address_in(kReadOnly, offset), &address[sym], 8);
  for (const auto& [sym, offset] : stub) {
    uint8_t* at = address_in(kCode, offset);
    const int64_t rel = reinterpret_cast<int64_t>(address_in(kReadOnly, got_slot.at(sym))) -
                        reinterpret_cast<int64_t>(at + 6);
    const int32_t rel32 = static_cast<int32_t>(rel);  // within the mapping: always fits
    const uint8_t jmp[kStubBytes] = {0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc};
    std::memcpy(at, jmp, kStubBytes);
    std::memcpy(at + 2, &rel32, 4);
  }

  // Patch.
  for (const Table& t : tables) {
    const uint64_t size = sections[t.target].sh_size;
    uint8_t* target = section_address(t.target);
    for (uint64_t k = 0; k < t.header->sh_size / sizeof(Elf64_Rela); ++k) {
      const auto r = bytes.read<Elf64_Rela>(t.header->sh_offset + k * sizeof(Elf64_Rela), "relocation");
      const uint32_t sym = ELF64_R_SYM(r.r_info), type = ELF64_R_TYPE(r.r_info);
      const unsigned width = type == R_X86_64_64 || type == R_X86_64_PC64 ? 8 : 4;
      if (type == R_X86_64_NONE) continue;
      if (r.r_offset > size || size - r.r_offset < width) malformed("relocation offset");
      if (!resolved[sym]) return std::nullopt;  // defined in a section not loaded
      uint8_t* place = target + r.r_offset;
      const int64_t p = reinterpret_cast<int64_t>(place);
      int64_t s = static_cast<int64_t>(address[sym]);
      int64_t value = 0;
      switch (type) {
        case R_X86_64_64: value = s + r.r_addend; break;
        case R_X86_64_PC64: value = s + r.r_addend - p; break;
        case R_X86_64_PLT32:
          if (stub.contains(sym)) s = reinterpret_cast<int64_t>(address_in(kCode, stub.at(sym)));
          [[fallthrough]];
        case R_X86_64_PC32: value = s + r.r_addend - p; break;
        case R_X86_64_GOTPCREL:
        case R_X86_64_GOTPCRELX:
        case R_X86_64_REX_GOTPCRELX:
          value = reinterpret_cast<int64_t>(address_in(kReadOnly, got_slot.at(sym))) + r.r_addend - p;
          break;
        case R_X86_64_32:
        case R_X86_64_32S: value = s + r.r_addend; break;
        default: return std::nullopt;  // the mapping is freed with `out`
      }
      if (width == 8) {
        std::memcpy(place, &value, 8);
        continue;
      }
      const bool fits = type == R_X86_64_32 ? value >= 0 && value <= std::numeric_limits<uint32_t>::max()
                                            : value >= std::numeric_limits<int32_t>::min() &&
                                                  value <= std::numeric_limits<int32_t>::max();
      if (!fits)
        throw Error("[jit] cannot load a cached module: a relocation of type " + std::to_string(type) +
                    " does not reach its target");
      const uint32_t value32 = static_cast<uint32_t>(value);
      std::memcpy(place, &value32, 4);
    }
  }

  // Code executable, constants and GOT read-only, the rest writable.
  const int protection[kRegions] = {PROT_READ | PROT_EXEC, PROT_READ, PROT_READ | PROT_WRITE};
  for (int r = 0; r < kRegions; ++r)
    if (region_size[r] && mprotect(base + region_start[r], align_up(region_size[r], page), protection[r]) != 0)
      throw ResourceError("[jit] cannot protect a cached module's pages");
  return out;
}

}  // namespace tracejit::backend

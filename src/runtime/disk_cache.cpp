#include "runtime/disk_cache.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/orc_jit.h"
#include "base/fingerprint.h"
#include "runtime/file_io.h"

#ifndef TRACEJIT_VERSION_STRING
#error "src/CMakeLists.txt defines TRACEJIT_VERSION_STRING for this file"
#endif

namespace tracejit::detail {
namespace {

constexpr char kMagic[8] = {'T', 'J', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 40;
constexpr size_t kChecksumOffset = 32;
constexpr uint64_t kChecksumSeed = 0x74726163656a6974ull;  // "tracejit"
// A temporary file older than this was left by a writer that died; trimming removes it.
constexpr int64_t kStaleTemporarySeconds = 600;

// ---- The entry format ----

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

// Reads fields in order from a byte range; any read past its end sets `bad` and yields zeros.
struct Reader {
  std::string_view in;
  bool bad = false;
  template <class T>
  T next() {
    T v = 0;
    if (in.size() < sizeof v) return bad = true, T{0};
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
  uint64_t u64() { return next<uint64_t>(); }
  uint32_t u32() { return next<uint32_t>(); }
  std::string str() {
    const uint64_t n = u64();
    if (bad || n > in.size()) return bad = true, std::string();
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

uint64_t checksum_of(std::string_view entry) {
  std::string copy(entry);
  std::memset(copy.data() + kChecksumOffset, 0, 8);
  return base::fingerprint64(copy, kChecksumSeed);
}

// ---- Files ----

void warn(const std::string& message) { std::cerr << "[jit] warning: " << message << "\n"; }

// One warning per directory that cannot be used, not one per compilation.
void warn_directory(const std::string& dir, const std::string& why) {
  static std::mutex mu;
  static absl::flat_hash_set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (!warned.insert(dir).second) return;
  warn(absl::StrCat("the compile cache directory ", dir, " ", why,
                    ": it is not used, and code is compiled as usual. Point TRACEJIT_CACHE_DIR "
                    "(or JitOptions::cache_dir) at a directory of your own that only you may write"));
}

// Owned by this user and writable by no one else: what a cache directory and its entries must be.
bool private_to_us(const struct stat& st) {
  return st.st_uid == ::geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

// The directory, opened for *at() calls, or -1 (with the directory's one warning).
int open_directory(const std::string& dir, bool create) {
  if (create) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (!ec) ::chmod(dir.c_str(), 0700);
    }
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT || create)
      warn_directory(dir, absl::StrCat("cannot be opened (", std::strerror(errno), ")"));
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !private_to_us(st)) {
    ::close(fd);
    warn_directory(dir, st.st_uid != ::geteuid() ? "belongs to another user"
                                                 : "may be written by other users (group or world writable)");
    return -1;
  }
  return fd;
}

bool read_all(int fd, std::string& out, size_t size) {
  out.resize(size);
  for (size_t done = 0; done < size;) {
    ssize_t n = ::read(fd, out.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out.resize(done), false;
    done += static_cast<size_t>(n);
  }
  return true;
}

double max_bytes() {
  double mb = kDefaultCacheMaxMb;
  if (const char* v = std::getenv("TRACEJIT_CACHE_MAX_MB"); v && *v) {
    double parsed = 0;
    if (absl::SimpleAtod(v, &parsed) && parsed >= 0)
      mb = parsed;
    else
      warn(absl::StrCat("TRACEJIT_CACHE_MAX_MB=", v, " is not a size in MB; using ", kDefaultCacheMaxMb));
  }
  return mb * 1024 * 1024;
}

// Removes the least recently used entries (oldest modification time; ties by name) until the
// entries fit the bound, and temporaries that dead writers left. Races with other processes
// are harmless: a file another one removed first is skipped.
void trim(int dir_fd) {
  struct File {
    struct timespec mtime;
    std::string name;
    int64_t bytes;
  };
  std::vector<File> entries;
  int64_t total = 0;
  const int fd = ::dup(dir_fd);
  if (fd < 0) return;
  DIR* d = ::fdopendir(fd);
  if (!d) return (void)::close(fd);
  const time_t now = ::time(nullptr);
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    const bool entry = name.size() > 4 && name.substr(name.size() - 4) == ".tjc";
    const bool temporary = name.starts_with("tmp-");
    if (!entry && !temporary) continue;
    struct stat st;
    if (::fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (temporary) {
      if (now - st.st_mtime > kStaleTemporarySeconds) ::unlinkat(dir_fd, e->d_name, 0);
      continue;
    }
    entries.push_back({st.st_mtim, std::string(name), st.st_size});
    total += st.st_size;
  }
  ::closedir(d);
  const double bound = max_bytes();
  if (static_cast<double>(total) <= bound) return;
  std::sort(entries.begin(), entries.end(), [](const File& a, const File& b) {
    if (a.mtime.tv_sec != b.mtime.tv_sec) return a.mtime.tv_sec < b.mtime.tv_sec;
    if (a.mtime.tv_nsec != b.mtime.tv_nsec) return a.mtime.tv_nsec < b.mtime.tv_nsec;
    return a.name < b.name;
  });
  for (const File& f : entries) {
    if (static_cast<double>(total) <= bound) break;
    if (::unlinkat(dir_fd, f.name.c_str(), 0) == 0 || errno == ENOENT) total -= f.bytes;
  }
}

// The GNU build id of the library holding this function (changes with any change to the
// code), or, without one, the library file's size and modification time.
std::string build_id() {
  Dl_info info;
  if (::dladdr(reinterpret_cast<void*>(&build_id), &info) == 0) return "unknown";
  struct Search {
    const void* base;
    std::string id;
  } search{info.dli_fbase, {}};
  ::dl_iterate_phdr(
      [](struct dl_phdr_info* lib, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        if (reinterpret_cast<const void*>(lib->dlpi_addr) != s->base) return 0;  // not ours
        for (int i = 0; i < lib->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = lib->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          const char* p = reinterpret_cast<const char*>(lib->dlpi_addr + ph.p_vaddr);
          const char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* name = p + sizeof(ElfW(Nhdr));
            const char* desc = name + ((note->n_namesz + 3) & ~3u);
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
              for (unsigned k = 0; k < note->n_descsz; ++k)
                s->id += absl::StrFormat("%02x", static_cast<unsigned char>(desc[k]));
              return 1;
            }
            p = desc + ((note->n_descsz + 3) & ~3u);
          }
        }
        return 1;
      },
      &search);
  if (!search.id.empty()) return search.id;
  struct stat st;
  if (info.dli_fname && ::stat(info.dli_fname, &st) == 0)
    return absl::StrCat("size ", st.st_size, " mtime ", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
  return "unknown";
}

}  // namespace

std::string disk_cache_dir(const JitOptions& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  const char* env = std::getenv("TRACEJIT_CACHE_DIR");
  return env ? env : "";
}

const std::string& disk_key_prefix() {
  static const std::string prefix = absl::StrCat("tracejit " TRACEJIT_VERSION_STRING " build ", build_id(),
                                                 "; ", backend::OrcJit::host_description(), "\n");
  return prefix;
}

std::string disk_key(std::string_view code_key) {
  std::string key = disk_key_prefix();
  key.append(code_key);
  return key;
}

std::string entry_file_name(std::string_view key) {
  return absl::StrFormat("%016x%016x.tjc", base::fingerprint64(key, 1), base::fingerprint64(key, 2));
}

std::string encode_entry(std::string_view key, const backend::ObjectCode& code) {
  std::string payload;
  put_u32(payload, code.materialize_layout);
  put_str(payload, code.suffix);
  put_str(payload, code.prefix);
  put_u64(payload, code.symbols.size());
  for (const std::string& s : code.symbols) put_str(payload, s);
  put_str(payload, code.object);
  std::string out(kMagic, sizeof kMagic);
  put_u32(out, kFormatVersion);
  put_u32(out, kHeaderSize);
  put_u64(out, key.size());
  put_u64(out, payload.size());
  put_u64(out, 0);  // the checksum, filled in below
  out.append(key);
  out.append(payload);
  const uint64_t sum = checksum_of(out);
  std::memcpy(out.data() + kChecksumOffset, &sum, 8);
  return out;
}

std::optional<backend::ObjectCode> decode_entry(std::string_view bytes, std::string_view key, std::string* why) {
  auto fail = [&](std::string reason) {
    *why = std::move(reason);
    return std::nullopt;
  };
  if (bytes.size() < kHeaderSize) return fail(absl::StrCat("it is truncated (", bytes.size(), " bytes)"));
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return fail("it is not a tracejit cache entry");
  Reader header{bytes.substr(sizeof kMagic, kHeaderSize - sizeof kMagic)};
  const uint32_t version = header.u32(), header_size = header.u32();
  const uint64_t key_size = header.u64(), payload_size = header.u64(), sum = header.u64();
  if (version != kFormatVersion || header_size != kHeaderSize)
    return fail(absl::StrCat("its format version is ", version, ", not ", kFormatVersion));
  const uint64_t rest = bytes.size() - kHeaderSize;
  if (key_size > rest || payload_size != rest - key_size)
    return fail(absl::StrCat("its size (", bytes.size(), " bytes) is not what its header says (truncated or overlong)"));
  if (checksum_of(bytes) != sum) return fail("its checksum does not match (the file is corrupt)");
  if (bytes.substr(kHeaderSize, key_size) != key)
    return fail("it was made for another program, CPU, LLVM or tracejit build (its key differs)");
  Reader p{bytes.substr(kHeaderSize + key_size)};
  backend::ObjectCode code;
  code.materialize_layout = p.u32() != 0;
  code.suffix = p.str();
  code.prefix = p.str();
  const uint64_t n = p.u64();
  for (uint64_t i = 0; i < n && !p.bad; ++i) code.symbols.push_back(p.str());
  code.object = p.str();
  if (p.bad || !p.in.empty() || code.object.empty()) return fail("its payload is malformed");
  return code;
}

std::optional<backend::ObjectCode> load_entry(const std::string& dir, std::string_view key) {
  Fd dir_fd(open_directory(dir, /*create=*/false));
  if (dir_fd.fd < 0) return std::nullopt;
  const std::string file = entry_file_name(key);
  const std::string path = absl::StrCat(dir, "/", file);
  Fd fd(::openat(dir_fd.fd, file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.fd < 0) {
    if (errno != ENOENT)
      warn(absl::StrCat("compile cache entry ", path, " cannot be opened (", std::strerror(errno),
                        "; a symlink is never followed): compiling again"));
    return std::nullopt;
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode) || !private_to_us(st)) {
    warn(absl::StrCat("compile cache entry ", path,
                      " is not a regular file of this user that only it may write: compiling again"));
    return std::nullopt;
  }
  std::string bytes;
  std::string why = "it cannot be read";
  std::optional<backend::ObjectCode> code;
  if (static_cast<double>(st.st_size) <= std::max(max_bytes(), 1.0 * (64 << 20)) &&
      read_all(fd.fd, bytes, static_cast<size_t>(st.st_size)))
    code = decode_entry(bytes, key, &why);
  if (!code) {
    warn(absl::StrCat("compile cache entry ", path, " is not loaded: ", why, ". Compiling again"));
    return std::nullopt;
  }
  ::futimens(fd.fd, nullptr);  // recently used: trimmed last
  return code;
}

void store_entry(const std::string& dir, std::string_view key, const backend::ObjectCode& code) {
  Fd dir_fd(open_directory(dir, /*create=*/true));
  if (dir_fd.fd < 0) return;
  static std::atomic<uint64_t> counter{0};
  const std::string file = entry_file_name(key);
  const std::string temporary = absl::StrCat("tmp-", ::getpid(), "-", counter++, "-", file);
  const std::string bytes = encode_entry(key, code);
  bool ok = false;
  {
    Fd out(::openat(dir_fd.fd, temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    ok = out.fd >= 0 && write_all(out.fd, bytes);
  }
  // rename() replaces an existing entry atomically: a reader sees the old file or the new one.
  if (ok) ok = ::renameat(dir_fd.fd, temporary.c_str(), dir_fd.fd, file.c_str()) == 0;
  if (!ok) {
    warn(absl::StrCat("cannot write compile cache entry ", dir, "/", file, " (", std::strerror(errno), ")"));
    ::unlinkat(dir_fd.fd, temporary.c_str(), 0);
    return;
  }
  trim(dir_fd.fd);
}

}  // namespace tracejit::detail

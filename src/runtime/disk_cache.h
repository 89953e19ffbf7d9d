#pragma once
// The compile cache on disk (TRACEJIT_CACHE_DIR or JitOptions::cache_dir): one file per compiled
// program, DIR/<32 hex digits>.tjc, named by a hash of its key and holding
//   header   "TJCACHE1", format version (u32), header size (u32), key size (u64),
//            payload size (u64), checksum (u64: fingerprint64 of the whole file with this
//            field zero), 40 bytes in all, little-endian
//   key      disk_key(): tracejit's version and build, LLVM's version, the CPU's name and
//            features, then code_key() (the optimized IR and the options that change code)
//   payload  backend::ObjectCode: the object file, its symbol suffix, entry points, prefix and
//            fusion setting
// An entry is loaded only when its size, magic, version and checksum hold and its key equals the
// one asked for byte for byte; anything else is compiled again with one warning on stderr.
// Writers write a temporary file and rename it into place, so readers and other writers (in
// other processes too) never see half an entry. After each write the directory is trimmed to
// TRACEJIT_CACHE_MAX_MB (default kDefaultCacheMaxMb; fractions allowed), least recently used
// entries first (a hit refreshes an entry's modification time). As with dumps (dumps.h), files
// are opened relative to the directory without following symlinks, and a directory that another
// user owns or may write to is not used at all (one warning): its entries could be code planted
// by someone else.
#include <optional>
#include <string>
#include <string_view>

#include "backend/compile.h"
#include "tracejit/jit.h"

namespace tracejit::detail {

inline constexpr double kDefaultCacheMaxMb = 256;

/// JitOptions::cache_dir, else TRACEJIT_CACHE_DIR, else "" (no disk cache).
std::string disk_cache_dir(const JitOptions& options);

/// The full key of an entry: the build and host description, then `code_key`.
std::string disk_key(std::string_view code_key);
/// The first part of disk_key(): "tracejit <version> build <id>; " + OrcJit::host_description().
const std::string& disk_key_prefix();

/// The entry's file name in the directory: 32 hex digits and ".tjc".
std::string entry_file_name(std::string_view key);

/// An entry's bytes, and the reverse: the object code when `bytes` is a sound entry for `key`,
/// else nullopt with the reason in `why`.
std::string encode_entry(std::string_view key, const backend::ObjectCode& code);
std::optional<backend::ObjectCode> decode_entry(std::string_view bytes, std::string_view key, std::string* why);

/// The entry for `key` in `dir`, or nullopt: when there is none (silently), or when the directory
/// may not be used or the entry is unsound (with a warning on stderr).
std::optional<backend::ObjectCode> load_entry(const std::string& dir, std::string_view key);
/// Writes the entry for `key` (creating `dir`, mode 0700, when missing), then trims the
/// directory to its bound. Failures are warnings, never errors: the code runs anyway.
void store_entry(const std::string& dir, std::string_view key, const backend::ObjectCode& code);

}  // namespace tracejit::detail

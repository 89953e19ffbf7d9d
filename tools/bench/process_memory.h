#pragma once
// This process's memory, as the soak program and the soak test measure it (Linux, glibc).
#include <malloc.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace tracejit_bench {

/// Resident bytes (/proc/self/statm counts pages); 0 where /proc is missing.
inline double resident_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

/// Bytes the allocator has handed out and not taken back (glibc, all arenas): unlike RSS, it
/// falls when memory is freed even if the allocator keeps the pages.
inline double heap_in_use_bytes() {
  struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
}

/// Memory mappings: JIT code pages are mmapped, and the kernel caps their number per process
/// (vm.max_map_count), so a cache that needs a mapping or more per entry can run out of them.
inline int64_t map_count() {
  std::ifstream maps("/proc/self/maps");
  int64_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

}  // namespace tracejit_bench

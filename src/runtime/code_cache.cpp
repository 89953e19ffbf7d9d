#include "runtime/code_cache.h"

#include <list>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace tracejit::detail {
namespace {

struct SharedCode {
  struct Entry {
    std::string key;
    std::shared_ptr<const backend::Executable> exe;
    size_t bytes;
  };
  std::mutex mu;
  std::list<Entry> lru;  // most recently used first
  absl::flat_hash_map<std::string_view, std::list<Entry>::iterator> index;  // views into lru's keys
  size_t bytes = 0;

  void drop_last() {
    index.erase(lru.back().key);
    bytes -= lru.back().bytes;
    lru.pop_back();
  }
};

SharedCode& shared() {
  static SharedCode* cache = new SharedCode();  // never destroyed: jit objects in statics outlive it
  return *cache;
}

}  // namespace

std::shared_ptr<const backend::Executable> find_shared_code(const std::string& key) {
  SharedCode& c = shared();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.index.find(key);
  if (it == c.index.end()) return nullptr;
  c.lru.splice(c.lru.begin(), c.lru, it->second);
  return it->second->exe;
}

void share_code(std::string key, std::shared_ptr<const backend::Executable> exe, size_t code_bytes) {
  const size_t bytes = key.size() + code_bytes;
  if (bytes > kMaxSharedBytes) return;
  SharedCode& c = shared();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.index.contains(key)) return;  // another thread compiled it meanwhile: keep the first
  c.lru.push_front({std::move(key), std::move(exe), bytes});
  c.index.emplace(c.lru.front().key, c.lru.begin());
  c.bytes += bytes;
  while (c.lru.size() > kMaxSharedExecutables || c.bytes > kMaxSharedBytes) c.drop_last();
}

void clear_shared_code() {
  SharedCode& c = shared();
  std::lock_guard<std::mutex> lock(c.mu);
  while (!c.lru.empty()) c.drop_last();
}

}  // namespace tracejit::detail

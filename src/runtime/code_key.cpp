#include "runtime/code_key.h"

#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "backend/compile.h"
#include "base/errors.h"
#include "tracejit/random.h"

namespace tracejit::detail {
namespace {

// Bumped when the layout below changes, so that old disk entries stop matching.
constexpr int64_t kKeyLayoutVersion = 1;

// Appends fixed-width little-endian fields; strings and lists carry their lengths, so no two
// different functions write the same bytes.
class KeyWriter {
 public:
  explicit KeyWriter(std::string& out) : out_(out) {}
  void i64(int64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void bytes(const void* p, size_t n) {
    i64(static_cast<int64_t>(n));
    out_.append(static_cast<const char*>(p), n);
  }
  void str(std::string_view s) { bytes(s.data(), s.size()); }
  void ints(std::span<const int64_t> v) {
    i64(static_cast<int64_t>(v.size()));
    for (int64_t x : v) i64(x);
  }
  void type(const ir::Type& t) {
    i64(static_cast<int64_t>(t.dtype));
    ints(t.shape);
    i64(t.weak);
  }

  void function(const ir::Function& fn) {
    absl::flat_hash_map<ir::VarId, int64_t> number;  // VarId -> order of appearance
    auto define = [&](ir::VarId v) {
      TJ_CHECK(number.emplace(v, static_cast<int64_t>(number.size())).second, "variable ", v, " defined twice");
      type(fn.type(v));
    };
    auto use = [&](ir::VarId v) {
      auto it = number.find(v);
      TJ_CHECK(it != number.end(), "variable ", v, " used before its definition");
      i64(it->second);
    };
    i64(static_cast<int64_t>(fn.const_vars.size()));
    for (size_t i = 0; i < fn.const_vars.size(); ++i) {
      define(fn.const_vars[i]);
      const base::Buffer& b = *fn.const_values[i];
      const int64_t n = fn.type(fn.const_vars[i]).size() * dtype_size(fn.type(fn.const_vars[i]).dtype);
      bytes(b.data(), static_cast<size_t>(n));
    }
    i64(static_cast<int64_t>(fn.captures.size()));
    for (ir::VarId v : fn.captures) define(v);
    i64(static_cast<int64_t>(fn.inputs.size()));
    for (ir::VarId v : fn.inputs) define(v);
    i64(static_cast<int64_t>(fn.eqns.size()));
    for (const ir::Eqn& e : fn.eqns) {
      i64(static_cast<int64_t>(e.prim));
      i64(static_cast<int64_t>(e.in.size()));
      for (ir::VarId v : e.in) use(v);
      params(e.params);
      i64(static_cast<int64_t>(e.out.size()));
      for (ir::VarId v : e.out) define(v);
    }
    i64(static_cast<int64_t>(fn.outputs.size()));
    for (ir::VarId v : fn.outputs) use(v);
  }

  void params(const ir::Params& p) {
    ints(p.shape);
    ints(p.axes);
    ints(p.limits);
    i64(p.axis);
    i64(static_cast<int64_t>(p.dtype));
    str(p.text);
    i64(p.weak_type);
    i64(static_cast<int64_t>(p.regions.size()));
    for (const auto& region : p.regions) function(*region);
    ints(p.groups);
    i64(p.length);
    i64(p.reverse);
    i64(p.trajectory);
  }

 private:
  std::string& out_;
};

}  // namespace

std::string code_key(const ir::Function& fn, const JitOptions& options) {
  std::string key;
  KeyWriter w(key);
  w.i64(kKeyLayoutVersion);
  w.i64(options.fast_math);
  w.i64(backend::CompileOptions{}.opt_level);
  w.i64(static_cast<int64_t>(dtype_promotion()));
  w.i64(random::threefry_partitionable());
  w.function(fn);
  return key;
}

}  // namespace tracejit::detail

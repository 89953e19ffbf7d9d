// The compile cache on disk (runtime/disk_cache.h): entries written and loaded (in this process
// and in another), and every way an entry can be wrong: each byte corrupted, truncated, swapped
// between keys, a key field changed, a symlink planted, a directory others may write, two
// writer processes at once, and the size bound evicting the least recently used first.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/disk_cache.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
namespace fs = std::filesystem;
using tj::Array;
using ::testing::HasSubstr;

extern char** environ;

namespace {

// A program with a loop, a reduction and a constant: enough kernels to make a real object.
auto program(float c, const std::string& dir) {
  return tj::jit([c](const Array& v) { return tj::sum(tj::tanh(v) * c) + v * 2.f; },
                 {.name = "disk", .cache_dir = dir, .share_code = false, .tiered = false});
}
// What program(c) gives for x = [0, 1], by hand: sum(tanh(x)) * c + 2x.
std::vector<float> expected(float c) {
  const float s = (std::tanh(0.f) + std::tanh(1.f)) * c;
  return {s, s + 2.f};
}
const Array& input() {
  static const Array x = tj::array({0.f, 1.f});
  return x;
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << i;
}

// Runs program(c) in a fresh jit object; returns its stats after checking its values.
tj::JitStats run(float c, const std::string& dir) {
  auto f = program(c, dir);
  expect_near(f(input()).to_vector<float>(), expected(c));
  return f.stats();
}

std::vector<fs::path> entries(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".tjc") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void write(const fs::path& p, const std::string& bytes) {
  fs::remove(p);
  std::ofstream(p, std::ios::binary) << bytes;
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class DiskCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("tracejit-disk-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    unsetenv("TRACEJIT_CACHE_MAX_MB");
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, ec);
    fs::remove_all(dir_, ec);
    unsetenv("TRACEJIT_CACHE_MAX_MB");
  }
  // The one entry program(c) writes, with its stats.
  fs::path write_entry(float c) {
    tj::JitStats s = run(c, dir_);
    EXPECT_EQ(s.compiles, 1);
    EXPECT_EQ(s.disk_hits, 0);
    std::vector<fs::path> e = entries(dir_);
    EXPECT_FALSE(e.empty());
    return e.empty() ? fs::path() : e.back();
  }
  // A fresh jit of program(c) must reject the entry: compile again, with one warning that
  // mentions `why`, and compute the right values.
  void expect_rejected(float c, const std::string& why) {
    ::testing::internal::CaptureStderr();
    tj::JitStats s = run(c, dir_);
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(s.disk_hits, 0) << why;
    EXPECT_EQ(s.compiles, 1) << why;
    EXPECT_EQ(count(err, "[jit] warning"), 1) << err;
    EXPECT_THAT(err, HasSubstr(why));
  }
  std::string dir_;
};

TEST_F(DiskCache, ASecondJitObjectLoadsTheEntryWithoutLlvm) {
  write_entry(2.f);
  ASSERT_EQ(entries(dir_).size(), 1u);
  EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);  // 0700
  tj::JitStats s = run(2.f, dir_);
  EXPECT_EQ(s.disk_hits, 1);
  EXPECT_EQ(s.compiles, 0);
  EXPECT_EQ(s.llvm_opt_s, 0);
  EXPECT_EQ(s.lower_s, 0);
  // Another constant is another entry.
  EXPECT_EQ(run(3.f, dir_).compiles, 1);
  EXPECT_EQ(entries(dir_).size(), 2u);
}

TEST_F(DiskCache, TheEnvironmentVariableNamesTheDirectory) {
  setenv("TRACEJIT_CACHE_DIR", dir_.c_str(), 1);
  auto f = tj::jit([](const Array& v) { return v * 5.f; }, {.share_code = false, .tiered = false});
  EXPECT_EQ(f(input()).to_vector<float>(), (std::vector<float>{0, 5}));
  unsetenv("TRACEJIT_CACHE_DIR");
  EXPECT_EQ(entries(dir_).size(), 1u);
}

// Runs this test binary again as `filter` with `env` added; returns its exit status.
pid_t spawn_self(const std::string& filter, const std::string& env) {
  std::string arg1 = "--gtest_filter=" + filter;
  char arg0[] = "/proc/self/exe";
  char* argv[] = {arg0, arg1.data(), nullptr};
  std::vector<std::string> vars;
  for (char** e = environ; *e; ++e) vars.emplace_back(*e);
  vars.push_back(env);
  std::vector<char*> envp;
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()), 0);
  return pid;
}
int wait_for(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Run by DiskCache.AnotherProcessLoadsTheEntry in a process of its own.
TEST(DiskCacheChild, LoadsWhatTheParentWrote) {
  const char* dir = std::getenv("TRACEJIT_TEST_DISK_CHILD");
  if (!dir) GTEST_SKIP() << "run by DiskCache.AnotherProcessLoadsTheEntry";
  tj::JitStats s = run(2.f, dir);
  EXPECT_EQ(s.disk_hits, 1);
  EXPECT_EQ(s.compiles, 0);
  EXPECT_EQ(s.llvm_opt_s, 0);
}

// A scan whose per-step outputs are constants: its compiled loop copies them from the object's
// own data, so that another process can run the stored code (it once read the address of the
// tracing process's buffer).
void run_constant_scan(const std::string& dir, int want_disk_hits) {
  const Array k = tj::array({3.f, 4.f});
  auto f = tj::jit(
      [k](const Array& xs) {
        return tj::scan([&](const Array& c, const Array& x) { return std::pair{c + x, std::tuple{k, tj::full({}, 0.5f, tj::DType::f32)}}; },
                        tj::full({}, 0.f, tj::DType::f32), xs);
      },
      {.name = "constant_scan", .cache_dir = dir, .share_code = false, .tiered = false});
  auto [carry, ys] = f(tj::array({1.f, 2.f, 3.f}));
  EXPECT_EQ(carry.item<float>(), 6.f);
  EXPECT_EQ(std::get<0>(ys).to_vector<float>(), (std::vector<float>{3, 4, 3, 4, 3, 4}));
  EXPECT_EQ(std::get<1>(ys).to_vector<float>(), (std::vector<float>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(f.stats().disk_hits, want_disk_hits);
}

// Run by DiskCache.AnotherProcessRunsAScanWithConstantOutputs in a process of its own.
TEST(DiskCacheChild, RunsTheConstantScan) {
  const char* dir = std::getenv("TRACEJIT_TEST_DISK_SCAN");
  if (!dir) GTEST_SKIP() << "run by DiskCache.AnotherProcessRunsAScanWithConstantOutputs";
  run_constant_scan(dir, 1);
}

// Run twice at once by DiskCache.TwoWriterProcessesAtOnce.
TEST(DiskCacheChild, Writer) {
  const char* dir = std::getenv("TRACEJIT_TEST_DISK_WRITER");
  if (!dir) GTEST_SKIP() << "run by DiskCache.TwoWriterProcessesAtOnce";
  for (int c = 0; c < 12; ++c) run(static_cast<float>(c), dir);
}

TEST_F(DiskCache, AnotherProcessLoadsTheEntry) {
  write_entry(2.f);
  EXPECT_EQ(wait_for(spawn_self("DiskCacheChild.LoadsWhatTheParentWrote", "TRACEJIT_TEST_DISK_CHILD=" + dir_)), 0);
}

TEST_F(DiskCache, AnotherProcessRunsAScanWithConstantOutputs) {
  run_constant_scan(dir_, 0);
  EXPECT_EQ(wait_for(spawn_self("DiskCacheChild.RunsTheConstantScan", "TRACEJIT_TEST_DISK_SCAN=" + dir_)), 0);
}

TEST_F(DiskCache, TwoWriterProcessesAtOnce) {
  fs::create_directory(dir_);
  fs::permissions(dir_, fs::perms::owner_all);
  pid_t a = spawn_self("DiskCacheChild.Writer", "TRACEJIT_TEST_DISK_WRITER=" + dir_);
  pid_t b = spawn_self("DiskCacheChild.Writer", "TRACEJIT_TEST_DISK_WRITER=" + dir_);
  EXPECT_EQ(wait_for(a), 0);
  EXPECT_EQ(wait_for(b), 0);
  EXPECT_EQ(entries(dir_).size(), 12u);
  for (const auto& e : fs::directory_iterator(dir_))  // no temporaries left behind
    EXPECT_EQ(e.path().extension(), ".tjc") << e.path();
  ::testing::internal::CaptureStderr();
  for (int c = 0; c < 12; ++c) EXPECT_EQ(run(static_cast<float>(c), dir_).disk_hits, 1) << c;
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST_F(DiskCache, EveryCorruptedByteRegionIsRejected) {
  const fs::path file = write_entry(2.f);
  const std::string good = read(file);
  ASSERT_GT(good.size(), 100u);
  // Header: magic, version, key size, payload size; the checksum; the key; the payload.
  const std::pair<size_t, const char*> regions[] = {
      {0, "not a tracejit cache entry"}, {9, "format version"},
      {17, "not what its header says"},  {25, "not what its header says"},
      {33, "checksum"},                  {40, "checksum"},
      {60, "checksum"},                  {good.size() / 2, "checksum"},
      {good.size() - 1, "checksum"}};
  for (const auto& [at, why] : regions) {
    SCOPED_TRACE(at);
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    write(file, bad);
    expect_rejected(2.f, why);
    EXPECT_EQ(run(2.f, dir_).disk_hits, 1);  // compiled and written again: sound now
  }
}

TEST_F(DiskCache, EveryTruncationIsRejected) {
  const fs::path file = write_entry(2.f);
  const std::string good = read(file);
  for (size_t size : {size_t{0}, size_t{7}, size_t{39}, size_t{40}, good.size() / 2, good.size() - 1}) {
    SCOPED_TRACE(size);
    write(file, good.substr(0, size));
    expect_rejected(2.f, "truncated");
  }
  write(file, good + "x");
  expect_rejected(2.f, "overlong");
}

TEST_F(DiskCache, EntriesSwappedBetweenKeysAreRejected) {
  write_entry(2.f);
  const fs::path two = entries(dir_)[0];
  run(3.f, dir_);
  std::vector<fs::path> both = entries(dir_);
  ASSERT_EQ(both.size(), 2u);
  const fs::path three = both[0] == two ? both[1] : both[0];
  const std::string entry2 = read(two), entry3 = read(three);
  write(two, entry3);
  write(three, entry2);
  expect_rejected(2.f, "its key differs");
  expect_rejected(3.f, "its key differs");
}

TEST_F(DiskCache, AChangedKeyFieldIsRejectedEvenWithAGoodChecksum) {
  const fs::path file = write_entry(2.f);
  const std::string good = read(file);
  // The key as the entry holds it: the header's key size gives its extent.
  uint64_t key_size = 0;
  std::memcpy(&key_size, good.data() + 16, 8);
  const std::string key = good.substr(40, key_size);
  std::string why;
  std::optional<tj::backend::ObjectCode> code = tj::detail::decode_entry(good, key, &why);
  ASSERT_TRUE(code) << why;
  for (const char* field : {"llvm ", "cpu ", "features ", "tracejit "}) {
    SCOPED_TRACE(field);
    std::string other = key;
    const size_t at = other.find(field);
    ASSERT_NE(at, std::string::npos);
    other.insert(at + std::strlen(field), "x");  // another CPU, LLVM or tracejit build
    write(file, tj::detail::encode_entry(other, *code));
    expect_rejected(2.f, "its key differs");
  }
}

TEST_F(DiskCache, FlippingAnyByteOfAnEntryIsCaught) {
  const tj::backend::ObjectCode code{.object = "object bytes", .suffix = ".m1", .symbols = {"f_k0"},
                                     .prefix = "f", .materialize_layout = true};
  const std::string key = "a key";
  const std::string good = tj::detail::encode_entry(key, code);
  std::string why;
  std::optional<tj::backend::ObjectCode> back = tj::detail::decode_entry(good, key, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->object, "object bytes");
  EXPECT_EQ(back->symbols, std::vector<std::string>{"f_k0"});
  EXPECT_TRUE(back->materialize_layout);
  for (size_t at = 0; at < good.size(); ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      EXPECT_FALSE(tj::detail::decode_entry(bad, key, &why)) << "byte " << at << " bit " << bit;
    }
  }
  EXPECT_FALSE(tj::detail::decode_entry(good, "another key", &why));
}

TEST_F(DiskCache, APlantedSymlinkIsNeverFollowed) {
  const fs::path file = write_entry(2.f);
  const fs::path elsewhere = fs::path(dir_ + "-target");
  fs::remove(elsewhere);
  fs::rename(file, elsewhere);
  const std::string target = read(elsewhere);
  fs::create_symlink(elsewhere, file);
  expect_rejected(2.f, "a symlink is never followed");
  EXPECT_EQ(read(elsewhere), target);  // the target was not written through the link
  EXPECT_FALSE(fs::is_symlink(fs::symlink_status(file)));  // the entry replaced the link
  fs::remove(elsewhere);
}

TEST_F(DiskCache, ADirectoryOthersMayWriteIsNotUsed) {
  fs::create_directory(dir_);
  fs::permissions(dir_, fs::perms::all);  // 0777
  ::testing::internal::CaptureStderr();
  tj::JitStats a = run(2.f, dir_), b = run(2.f, dir_);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(a.compiles + b.compiles, 2);
  EXPECT_EQ(a.disk_hits + b.disk_hits, 0);
  EXPECT_TRUE(entries(dir_).empty());
  EXPECT_EQ(count(err, "[jit] warning"), 1) << err;  // once per directory
  EXPECT_THAT(err, HasSubstr("may be written by other users"));
}

TEST_F(DiskCache, TheSizeBoundEvictsTheLeastRecentlyUsedFirst) {
  fs::create_directory(dir_);
  fs::permissions(dir_, fs::perms::owner_all);
  const tj::backend::ObjectCode code{.object = std::string(10000, 'o'), .suffix = ".m1",
                                     .symbols = {"f_k0"}, .prefix = "f"};
  const double entry_mb = static_cast<double>(tj::detail::encode_entry("key 1", code).size()) / (1 << 20);
  setenv("TRACEJIT_CACHE_MAX_MB", std::to_string(entry_mb * 2.5).c_str(), 1);  // room for two
  auto path = [&](const std::string& key) { return fs::path(dir_) / tj::detail::entry_file_name(key); };
  auto age = [&](const std::string& key, int64_t seconds_ago) {
    fs::last_write_time(path(key), fs::file_time_type::clock::now() - std::chrono::seconds(seconds_ago));
  };
  tj::detail::store_entry(dir_, "key 1", code);
  age("key 1", 300);
  tj::detail::store_entry(dir_, "key 2", code);
  age("key 2", 200);
  tj::detail::store_entry(dir_, "key 3", code);  // three do not fit: the oldest goes
  EXPECT_FALSE(fs::exists(path("key 1")));
  EXPECT_TRUE(fs::exists(path("key 2")));
  EXPECT_TRUE(fs::exists(path("key 3")));
  age("key 3", 100);
  EXPECT_TRUE(tj::detail::load_entry(dir_, "key 2"));  // a hit makes key 2 the newest
  tj::detail::store_entry(dir_, "key 4", code);
  EXPECT_TRUE(fs::exists(path("key 2")));
  EXPECT_FALSE(fs::exists(path("key 3")));
  EXPECT_TRUE(fs::exists(path("key 4")));
}

}  // namespace

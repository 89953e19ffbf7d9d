#pragma once
// The randomness behind a generated program, as a stream of bytes: a seeded generator for the
// command-line tool, the fuzzer's input for tracejit-fuzz. Every decision is drawn through the
// helpers below, so one generator serves both.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace difftest {

class Rng {
 public:
  virtual ~Rng() = default;
  virtual uint8_t byte() = 0;

  /// Uniform in [lo, hi] (inclusive), from as few bytes as the range needs.
  int64_t uniform(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    uint64_t bits = 0;
    for (uint64_t r = range; r != 0; r >>= 8) bits = (bits << 8) | byte();
    return lo + static_cast<int64_t>(range == UINT64_MAX ? bits : bits % (range + 1));
  }
  /// Uniform in [lo, hi).
  double real(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(uniform(0, (1 << 24) - 1)) / (1 << 24);
  }
  bool chance(double p) { return uniform(0, 9999) < static_cast<int64_t>(p * 10000); }
  template <class T>
  const T& pick(const std::vector<T>& xs) {
    return xs[static_cast<size_t>(uniform(0, static_cast<int64_t>(xs.size()) - 1))];
  }
  /// An index drawn with the given relative weights.
  size_t weighted(std::span<const int> weights) {
    int total = 0;
    for (int w : weights) total += w;
    int64_t r = uniform(0, total - 1);
    for (size_t i = 0; i < weights.size(); ++i) {
      if (r < weights[i]) return i;
      r -= weights[i];
    }
    return weights.size() - 1;
  }
};

/// A reproducible stream from a 64-bit seed.
class SeededRng : public Rng {
 public:
  explicit SeededRng(uint64_t seed) : gen_(seed) {}
  uint8_t byte() override {
    if (left_ == 0) {
      buffer_ = gen_();
      left_ = 8;
    }
    --left_;
    return static_cast<uint8_t>(buffer_ >> (8 * left_));
  }

 private:
  std::mt19937_64 gen_;
  uint64_t buffer_ = 0;
  int left_ = 0;
};

/// The fuzzer's bytes; zeros once they run out, so every input describes some program.
class ByteRng : public Rng {
 public:
  explicit ByteRng(std::span<const uint8_t> data) : data_(data) {}
  uint8_t byte() override { return pos_ < data_.size() ? data_[pos_++] : 0; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace difftest

#pragma once
// Runs a program description as an ordinary C++ function over tj::Array pytrees: eagerly, or
// handed to tj::jit, tj::grad, tj::vjp and tj::make_ir like any user function.
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "program.h"

namespace difftest {

/// Argument 0 (the differentiated float leaves) and argument 1 (the others); the result.
using DiffArgs = std::tuple<std::vector<Array>, std::map<std::string, Array>>;
using OtherArgs = std::vector<Array>;
using Outputs = std::pair<std::vector<Array>, std::map<std::string, Array>>;

/// A generated value did not get the dtype, shape or weak type the program's rules predict.
class TypeMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The program as a callable. With `floats` set, every float value (inputs, constants, casts)
/// is computed in that dtype instead: the f64 instance that finite differences need.
/// Without it, each value's type is checked against the rules and TypeMismatch thrown.
struct ProgramFn {
  std::shared_ptr<const Program> program;
  std::optional<DType> floats;

  Outputs operator()(const DiffArgs& x, const OtherArgs& y) const;
  /// Every node's value (inputs included), for arguments shaped as make_args gives.
  std::vector<Array> node_values(const DiffArgs& x, const OtherArgs& y) const;
};

/// The program's input values as its two arguments, floats converted to `floats` if set.
std::pair<DiffArgs, OtherArgs> make_args(const Program& p, std::optional<DType> floats = {});

/// The leaves of an argument pair or a result, in tree_flatten order.
std::vector<Array> leaves(const DiffArgs& x, const OtherArgs& y);
std::vector<Array> leaves(const Outputs& out);

/// A copy of `x` with every float leaf converted to `dtype` (a weak 0-d leaf stays weak).
Array to_float_dtype(const Array& x, DType dtype);

}  // namespace difftest

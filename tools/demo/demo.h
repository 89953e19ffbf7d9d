#pragma once
// tracejit-demo: the seed tutorial ("Stateful Computations" from JAX 101) in C++.
#include <string>
#include <vector>

namespace demo {

/// Exit status for a usage error (unknown subcommand, bad flag value, unwritable path).
inline constexpr int kUsageError = 2;

int run_counter();
int run_regression();

/// Writes the regression figure: data as points, the fitted line in red, a legend.
/// Returns false when the file cannot be written.
bool write_regression_svg(const std::string& path, const std::vector<float>& xs,
                          const std::vector<float>& ys, float weight, float bias);

}  // namespace demo

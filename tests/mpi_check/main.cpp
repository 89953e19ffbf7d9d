// tracejit-mpi-check CHECK: one check of tj::distributed per run, meant for `mpirun -np 2`
// (tests/CMakeLists.txt) and, for `group`, for a plain run. Each rank checks its own results
// against closed forms or against values gathered from the other ranks with MPI directly (not
// through tracejit); prints "ok" on rank 0 and exits 0 when every rank passed.
#include <mpi.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "seed_model.h"
#include "tracejit/tracejit.h"

namespace tj = tracejit;
using seed::loss;
using seed::Params;
using tj::Array;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::cerr << "rank " << tj::distributed::init().rank() << ": FAILED " << what << "\n";
}

template <class T>
void expect_values(const Array& a, const std::vector<T>& want, const std::string& what) {
  std::vector<T> got = a.to_vector<T>();
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < got.size(); ++i) ok = got[i] == want[i];
  expect(ok, what);
}

// Every rank's value of `bits`, gathered with MPI directly.
std::vector<uint32_t> gather(uint32_t bits) {
  std::vector<uint32_t> all(static_cast<size_t>(tj::distributed::init().size()));
  MPI_Allgather(&bits, 1, MPI_UINT32_T, all.data(), 1, MPI_UINT32_T, MPI_COMM_WORLD);
  return all;
}

// Without mpirun: a group of one where every collective is the identity.
void check_group() {
  auto g = tj::distributed::init();
  std::cout << "rank " << g.rank() << " size " << g.size() << "\n";
  Array x = tj::array({1.f, 2.f, 3.f}, {3});
  expect_values<float>(tj::distributed::all_sum(x), {1, 2, 3}, "eager all_sum in a group of one");
  auto f = tj::jit([](const Array& v) { return tj::distributed::all_sum(v * 2) + 1; });
  expect_values<float>(f(x), {3, 5, 7}, "jitted all_sum in a group of one");
  Params p = tj::distributed::average_gradients(Params{Array(2.f), tj::array({4.f}, {1})});
  expect(p.weight.item<float>() == 2 && p.bias.to_vector<float>() == std::vector<float>{4},
         "average_gradients in a group of one");
}

// all_sum of rank-dependent values: x_r[i] = (r + 1) * i + r, so the sum over S ranks is
// i * S (S + 1) / 2 + S (S - 1) / 2.
void check_all_sum() {
  auto g = tj::distributed::init();
  const int r = g.rank(), s = g.size();
  std::vector<float> mine, want;
  std::vector<int32_t> mine_i, want_i;
  std::vector<double> mine_d, want_d;
  for (int i = 0; i < 6; ++i) {
    mine.push_back(static_cast<float>((r + 1) * i + r));
    want.push_back(static_cast<float>(i * s * (s + 1) / 2 + s * (s - 1) / 2));
    mine_i.push_back((r + 1) * i + r);
    want_i.push_back(i * s * (s + 1) / 2 + s * (s - 1) / 2);
    mine_d.push_back(0.5 * ((r + 1) * i + r));
    want_d.push_back(0.5 * (i * s * (s + 1) / 2 + s * (s - 1) / 2));
  }
  Array x = tj::array(mine, {2, 3});
  expect_values<float>(tj::distributed::all_sum(x), want, "eager f32 all_sum");
  expect_values<int32_t>(tj::distributed::all_sum(tj::array(mine_i, {6})), want_i,
                         "eager i32 all_sum");
  expect_values<double>(tj::distributed::all_sum(tj::array(mine_d, {3, 2})), want_d,
                        "eager f64 all_sum");
  // Jitted, between kernels: 2 * sum(x) + 1, then a reduction of the summed values.
  auto f = tj::jit([](const Array& v) {
    Array total = tj::distributed::all_sum(v * 2.f);
    return std::pair{total + 1.f, tj::sum(total)};
  });
  auto [y, z] = f(x);
  std::vector<float> want_y;
  float want_z = 0;
  for (float w : want) want_y.push_back(2 * w + 1), want_z += 2 * w;
  expect_values<float>(y, want_y, "jitted all_sum between kernels");
  expect(z.item<float>() == want_z, "a kernel reading the jitted all_sum's result");
  // vmap over the rows: all_sum is elementwise across ranks, so each lane sums on its own and
  // the batched result is the unbatched one, eagerly and jitted.
  auto per_row = tj::vmap([](const Array& row) { return tj::distributed::all_sum(row); });
  expect_values<float>(per_row(x), want, "vmap(all_sum) over rows");
  expect_values<float>(tj::jit(per_row)(x), want, "jit(vmap(all_sum)) over rows");
  // average_gradients: leaves r and [r, 2r, 3r] average to (S-1)/2 times (1, [1, 2, 3]).
  const float m = (s - 1) / 2.f;
  auto avg = tj::jit([](const Params& p) { return tj::distributed::average_gradients(p); });
  for (const Params& p :
       {tj::distributed::average_gradients(
            Params{Array(float(r)), tj::array({1.f * r, 2.f * r, 3.f * r}, {3})}),
        avg(Params{Array(float(r)), tj::array({1.f * r, 2.f * r, 3.f * r}, {3})})}) {
    expect(p.weight.item<float>() == m, "average_gradients of a scalar leaf");
    expect_values<float>(p.bias, {m, 2 * m, 3 * m}, "average_gradients of a vector leaf");
  }
}

// The seed's regression, its 128 points split over the ranks: parameters bitwise equal on
// every rank, and equal (1e-6) to the fit of one process over all the points.
void check_train() {
  auto g = tj::distributed::init();
  const int r = g.rank(), s = g.size();
  Array keys = tj::random::split(tj::random::key(42));
  Array xs = tj::random::normal(keys[0], {128, 1});
  Array ys = xs * 2 + (-1) + tj::random::normal(keys[1], {128, 1}) * 0.5f;
  const int64_t lo = 128 * r / s, hi = 128 * (r + 1) / s;
  Array x = tj::slice(xs, {lo, 0}, {hi, 1}), y = tj::slice(ys, {lo, 0}, {hi, 1});
  auto step = [](bool parallel) {
    return tj::jit([parallel](const Params& p, const Array& xb, const Array& yb) {
      Params grad = tj::grad(loss)(p, xb, yb);
      if (parallel) grad = tj::distributed::average_gradients(grad);
      return tj::tree_map([](const Array& v, const Array& d) { return v - d * 0.005f; }, p, grad);
    });
  };
  auto parallel = step(true), single = step(false);
  Params p{Array(0.5f), Array(0.f)}, q = p;
  for (int i = 0; i < 1000; ++i) {
    p = parallel(p, x, y);
    q = single(q, xs, ys);
  }
  const float w = p.weight.item<float>(), b = p.bias.item<float>();
  for (uint32_t bits : gather(std::bit_cast<uint32_t>(w)))
    expect(bits == std::bit_cast<uint32_t>(w), "weight bitwise equal on every rank");
  for (uint32_t bits : gather(std::bit_cast<uint32_t>(b)))
    expect(bits == std::bit_cast<uint32_t>(b), "bias bitwise equal on every rank");
  const float qw = q.weight.item<float>(), qb = q.bias.item<float>();
  expect(std::fabs(w - qw) <= 1e-6f && std::fabs(b - qb) <= 1e-6f,
         "data-parallel fit equals the single-process fit");
  if (r == 0)
    std::printf("data-parallel weight=%.7f bias=%.7f, single process weight=%.7f bias=%.7f\n", w, b,
                qw, qb);
}

// Ranks passing different shapes: a ShapeError naming both on every rank, before any
// reduction; a correct call afterwards still works.
void check_mismatch() {
  auto g = tj::distributed::init();
  std::string message;
  try {
    tj::distributed::all_sum(tj::ones({g.rank() + 2}));
  } catch (const tj::ShapeError& e) {
    message = e.what();
  }
  expect(message.find("f32[2]") != std::string::npos && message.find("f32[3]") != std::string::npos,
         "a ShapeError naming both shapes, got '" + message + "'");
  message.clear();
  try {  // and dtypes, jitted
    tj::jit([](const Array& v) { return tj::distributed::all_sum(v); })(
        g.rank() == 0 ? tj::ones({4}) : tj::ones({4}, tj::DType::f64));
  } catch (const tj::ShapeError& e) {
    message = e.what();
  }
  expect(message.find("f32[4]") != std::string::npos && message.find("f64[4]") != std::string::npos,
         "a jitted ShapeError naming both dtypes, got '" + message + "'");
  expect_values<float>(tj::distributed::all_sum(tj::ones({2})),
                       std::vector<float>(2, static_cast<float>(g.size())),
                       "all_sum after a mismatch");
}

// The last rank throws instead of joining the collective: the job must end (MPI_Abort), not
// hang; the test passes on the abort message.
void check_throw() {
  auto g = tj::distributed::init();
  if (g.rank() == g.size() - 1) throw std::runtime_error("the last rank gives up");
  tj::distributed::all_sum(tj::ones({2}));
  std::cerr << "rank " << g.rank() << ": the all_sum returned without the last rank\n";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string check = argc > 1 ? argv[1] : "";
  if (check == "group")
    check_group();
  else if (check == "all-sum")
    check_all_sum();
  else if (check == "train")
    check_train();
  else if (check == "mismatch")
    check_mismatch();
  else if (check == "throw")
    check_throw();
  else {
    std::cerr << "usage: tracejit-mpi-check group|all-sum|train|mismatch|throw\n";
    return 2;
  }
  auto g = tj::distributed::init();
  // Every rank's verdict, so that rank 0 speaks for the job.
  int total = failures;
  if (g.size() > 1) MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g.rank() == 0) std::cout << (total == 0 ? "ok" : "FAILED") << "\n";
  return total == 0 ? 0 : 1;
}

// tj::distributed over MPI: joining the job, the abort-on-uncaught-exception guard, and the one
// reduction (collectives.h). Built without MPI (TRACEJIT_HAVE_MPI unset), every group has size 1.
#include "distributed/collectives.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <vector>

#include "base/errors.h"
#include "tracejit/distributed.h"

#ifdef TRACEJIT_HAVE_MPI
#include <mpi.h>
#endif

namespace tracejit {
namespace {

// What the ranks exchange before a reduction: dtype, rank, size and the first dimensions. Two
// shapes that agree on all of these but differ in a dimension past kShapeDims would pass; every
// pair of differing shapes of at most kShapeDims dimensions is caught.
constexpr size_t kShapeDims = 8;
constexpr size_t kSignatureLength = 3 + kShapeDims;
using Signature = std::array<int64_t, kSignatureLength>;

Signature signature_of(const base::Type& t) {
  Signature s{};
  s[0] = static_cast<int64_t>(t.dtype);
  s[1] = t.rank();
  s[2] = t.size();
  for (size_t i = 0; i < kShapeDims && i < t.shape.size(); ++i) s[3 + i] = t.shape[i];
  return s;
}

// The type a signature describes, for messages (dimensions past kShapeDims print as "...").
std::string signature_str(const Signature& s) {
  Shape shape;
  for (int64_t i = 0; i < std::min<int64_t>(s[1], kShapeDims); ++i) shape.push_back(s[3 + i]);
  std::string text = type_str(static_cast<DType>(s[0]), shape);
  if (s[1] > static_cast<int64_t>(kShapeDims)) text.insert(text.size() - 1, ",...");
  return text;
}

struct State {
  std::once_flag once;
  int rank = 0, size = 1;
  bool mpi = false;  // MPI_Init was called: collectives go through MPI
  std::mutex mu;     // MPI is initialized for serialized use: one collective at a time
};

State& state() {
  static State* s = new State();  // never destroyed: collectives may run from static destructors
  return *s;
}

#ifdef TRACEJIT_HAVE_MPI
// mpirun (Open MPI's, or a PMI launcher) sets one of these in every process it starts.
bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(var)) return true;
  return false;
}

// An exception that escapes main() on one rank would leave the others waiting in their next
// collective forever: say which rank failed and why, then end the whole job.
[[noreturn]] void abort_job() {
  std::string what = "unknown exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
  } else {
    what = "std::terminate called without an active exception";
  }
  // One write, so that mpirun's own abort notice cannot land inside the message.
  const std::string message = detail::cat(
      "tracejit: rank ", state().rank, " of ", state().size, " failed: ", what,
      "\ntracejit: calling MPI_Abort so that the other ranks do not wait for it\n");
  for (size_t done = 0; done < message.size();) {
    const ssize_t n = ::write(STDERR_FILENO, message.data() + done, message.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT32_T;
    case DType::u32:
      return MPI_UINT32_T;
    case DType::bool_:
      break;
  }
  detail::fail_internal(__FILE__, __LINE__, "all_sum of bool passed the shape rule");
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  detail::raise<Error>("all_sum", what, " failed: ", std::string(text, static_cast<size_t>(len)));
}
#endif

void join(State& s) {
#ifdef TRACEJIT_HAVE_MPI
  if (!launched_by_mpirun()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    std::atexit(finalize_at_exit);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &s.size);
  s.mpi = true;
  std::set_terminate(abort_job);
#else
  (void)s;
#endif
}

}  // namespace

namespace distributed {

Group init() {
  State& s = state();
  std::call_once(s.once, [&] { join(s); });
  Group g;
  g.rank_ = s.rank;
  g.size_ = s.size;
  return g;
}

}  // namespace distributed

namespace detail {

void all_sum_buffer(const void* in, void* out, const base::Type& type) {
  distributed::init();
  State& s = state();
  const size_t bytes = static_cast<size_t>(type.size() * dtype_size(type.dtype));
  if (!s.mpi || s.size == 1) {
    if (out != in && bytes) std::memmove(out, in, bytes);
    return;
  }
#ifdef TRACEJIT_HAVE_MPI
  std::lock_guard<std::mutex> lock(s.mu);
  const Signature mine = signature_of(type);
  if (type.size() > std::numeric_limits<int>::max())
    raise<ShapeError>("all_sum", "cannot sum ", type_str(type), " in one MPI call: at most ",
                      std::numeric_limits<int>::max(), " elements; split the array");
  std::vector<Signature> all(static_cast<size_t>(s.size));
  check_mpi(MPI_Allgather(mine.data(), kSignatureLength, MPI_INT64_T, all.data(), kSignatureLength,
                          MPI_INT64_T, MPI_COMM_WORLD),
            "exchanging the operand's type (MPI_Allgather)");
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r] != all[0])
      raise<ShapeError>("all_sum", "the ranks pass different operands: rank 0 has ",
                        signature_str(all[0]), ", rank ", r, " has ", signature_str(all[r]),
                        " (this is rank ", s.rank,
                        "); every rank must sum the same shape and dtype, in the same order");
  check_mpi(MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, static_cast<int>(type.size()),
                          mpi_type(type.dtype), MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
#endif
}

}  // namespace detail
}  // namespace tracejit

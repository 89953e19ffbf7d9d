#pragma once
// Every misuse of tracejit throws tj::Error or one of its subclasses. Messages begin with the
// operation in brackets, then name the shapes and dtypes involved and what to do instead:
//   [reshape] cannot reshape f32[3,4] to [5]: sizes 12 and 5 differ
#include <stdexcept>
#include <string>

namespace tracejit {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Shapes that do not fit the operation (broadcasting, reshape sizes, matmul dimensions...).
class ShapeError : public Error { public: using Error::Error; };
/// Dtypes that do not fit the operation (mixing f32 and f64, grad of an integer output...).
class TypeError : public Error { public: using Error::Error; };
/// An index or axis out of range.
class IndexError : public Error { public: using Error::Error; };
/// Pytree structures that do not match.
class TreeError : public Error { public: using Error::Error; };
/// A concrete value was asked of a tracer (item(), to_vector(), an `if` on a traced value).
class ConcretizationError : public Error { public: using Error::Error; };
/// A tracer was used after the trace that made it had ended.
class TracerLeakError : public Error { public: using Error::Error; };
/// A broken internal invariant of tracejit itself: a bug to report, never a user error.
class InternalError : public Error { public: using Error::Error; };
/// Memory (or another resource) that an operation needs and the system cannot give.
class ResourceError : public Error { public: using Error::Error; };

}  // namespace tracejit

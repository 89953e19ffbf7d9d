#pragma once
// Program transformations: make_ir (here), grad/vjp/value_and_grad (ad.h) and jit (jit.h).
#include "tracejit/detail/trace_fn.h"

namespace tracejit {

/// `tj::make_ir(f)(args...)` traces f on arguments shaped like args and returns its IR, printable
/// with << or .str() in a jaxpr-like text.
template <class F>
auto make_ir(F f) {
  return [f = std::move(f)](const auto&... args) mutable {
    detail::FlatArgs flat = detail::flatten_args(args...);
    return IR(detail::trace_fn<decltype(args)...>(
                  f, detail::default_function_name(typeid(F).name()), flat)
                  .traced.fn);
  };
}

}  // namespace tracejit

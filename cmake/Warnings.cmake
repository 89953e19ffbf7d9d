# Warnings for our own targets. -Werror=switch makes a primitive that lacks a rule in any
# switch over the primitive table a compile error.
add_library(tracejit_warnings INTERFACE)
target_compile_options(tracejit_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Werror=switch -Wno-unused-parameter -Wno-missing-field-initializers>)

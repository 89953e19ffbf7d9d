# LLVM is pinned: several majors live side by side on Debian and an unversioned search picks the
# newest. LLVM matches major.minor, so "19" alone is rejected; "19.1" finds 19.1.x.
find_package(LLVM 19.1 REQUIRED CONFIG HINTS /usr/lib/llvm-19/lib/cmake/llvm)
message(STATUS "tracejit: LLVM ${LLVM_PACKAGE_VERSION} from ${LLVM_DIR}")
find_package(absl REQUIRED CONFIG)
if(TRACEJIT_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(TRACEJIT_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED CONFIG)
endif()

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
# Open MPI (Debian: libopenmpi-dev, openmpi-bin) for tj::distributed. Without it tracejit still
# builds, and every process is a group of size 1.
option(TRACEJIT_MPI "Use MPI for tj::distributed when it is found" ON)
if(TRACEJIT_MPI)
  set(MPI_CXX_SKIP_MPICXX ON)  # the C API only: no C++ bindings, which MPI-3 removed
  find_package(MPI COMPONENTS CXX)
endif()
if(MPI_CXX_FOUND)
  message(STATUS "tracejit: MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "tracejit: no MPI: tj::distributed runs every process as a group of one")
endif()

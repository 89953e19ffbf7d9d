include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS tracejit EXPORT tracejitTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/tracejit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tracejitTargets NAMESPACE tracejit::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tracejit)
configure_package_config_file(cmake/tracejitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/tracejitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tracejit)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/tracejitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tracejitConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/tracejitConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tracejit)

# The programs: installed with a run path relative to their own location, so that
# DIR/bin/tracejit-demo finds DIR/lib/libtracejit.so with no LD_LIBRARY_PATH, wherever DIR is.
# Build-tree binaries keep CMake's absolute build run path.
file(RELATIVE_PATH _tracejit_bin_to_lib "/${CMAKE_INSTALL_BINDIR}" "/${CMAKE_INSTALL_LIBDIR}")
foreach(program tracejit-demo tracejit-difftest)
  if(TARGET ${program})
    set_target_properties(${program} PROPERTIES INSTALL_RPATH "$ORIGIN/${_tracejit_bin_to_lib}")
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

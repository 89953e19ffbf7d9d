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

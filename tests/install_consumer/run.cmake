# Installs the build tree into a fresh prefix, then configures, builds and runs the consumer, and
# runs the installed programs with no LD_LIBRARY_PATH (they find the library by their run path).
set(prefix "${WORK}/prefix")
file(REMOVE_RECURSE "${WORK}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD}" --prefix "${prefix}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE}" -B "${WORK}/build" -G Ninja
                        -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer against the installed package failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed")
endif()

# Runs an installed program (or the consumer) with the loader's search path unset and checks that
# it succeeds and prints `expect`.
function(run_clean name expect)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY "${WORK}")
  if(rc OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${name}: ok")
endfunction()

run_clean(consumer "consumer ok" "${WORK}/build/consumer")
if(EXISTS "${prefix}/bin/tracejit-demo")
  run_clean("installed tracejit-demo counter" "1\n1\n1\n" "${prefix}/bin/tracejit-demo" counter)
  run_clean("installed tracejit-demo regression" "weight=" "${prefix}/bin/tracejit-demo"
            regression --steps=20 --plot=${WORK}/regression.svg)
endif()
if(EXISTS "${prefix}/bin/tracejit-difftest")
  run_clean("installed tracejit-difftest" "5 programs, 0 mismatches"
            "${prefix}/bin/tracejit-difftest" --programs 5 --seed 3)
endif()

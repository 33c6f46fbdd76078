# Run by CTest: installs krmx into a scratch prefix, then builds and runs three consumers.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_demo_output)
  if(NOT last_output MATCHES "counter=5 claim=alice")
    message(FATAL_ERROR "consumer printed an unexpected result:\n${last_output}")
  endif()
endfunction()

# 1. cmake --install, then find_package(krmx 0.1 REQUIRED) from a separate project.
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${KRMX_BINARY_DIR} --prefix ${prefix})
if(NOT EXISTS ${prefix}/include/krmx/krmx.hpp)
  message(FATAL_ERROR "install did not put krmx/krmx.hpp under ${prefix}/include")
endif()
set(consumer ${KRMX_SOURCE_DIR}/tests/packaging/find_package_consumer)
run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/find_package -DCMAKE_CXX_COMPILER=${CXX}
    -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/find_package)
run(${WORK_DIR}/find_package/consumer)
expect_demo_output()
# krmx::metrics from the installed package, where the build had it (prometheus-cpp found again by krmx's config).
if(METRICS)
  run(${CMAKE_COMMAND} -S ${KRMX_SOURCE_DIR}/tests/packaging/metrics_consumer -B ${WORK_DIR}/metrics
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/metrics)
  run(${WORK_DIR}/metrics/consumer)
  if(NOT last_output MATCHES "metrics=ok")
    message(FATAL_ERROR "the metrics consumer printed:\n${last_output}")
  endif()
endif()

# 2. add_subdirectory(krmx): no tests or examples of krmx get built into the parent.
run(${CMAKE_COMMAND} -S ${KRMX_SOURCE_DIR}/tests/packaging/subdirectory_consumer -B ${WORK_DIR}/subdirectory
    -DCMAKE_CXX_COMPILER=${CXX} -DKRMX_SOURCE_DIR=${KRMX_SOURCE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/subdirectory)
if(EXISTS ${WORK_DIR}/subdirectory/krmx/tests)
  message(FATAL_ERROR "add_subdirectory(krmx) built krmx's own tests")
endif()
run(${WORK_DIR}/subdirectory/consumer)
expect_demo_output()

# 3. A bare compile: the headers and nlohmann/json on the include path, nothing else.
run(${CXX} -std=c++20 -Wall -Wextra -Wpedantic -Werror -I${KRMX_SOURCE_DIR}/include
    ${consumer}/main.cpp -o ${WORK_DIR}/bare_consumer)
run(${WORK_DIR}/bare_consumer)
expect_demo_output()

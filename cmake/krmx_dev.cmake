# Build settings for krmx's own targets (tests, examples, benchmarks); never applied to consumers.

# Zero warnings on our own code.
function(krmx_warnings target)
  set_property(GLOBAL APPEND PROPERTY KRMX_OWN_TARGETS ${target})
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
  # g++ 12 at -O2/-O3 reports -Wrestrict inside libstdc++ for `"literal" + std::string` (GCC bug 105651,
  # fixed in 13). It fires wherever a string is built that way, so the whole compiler version is excused.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()

# The Catch2 main, built once per build tree and shared by every test executable.
# Catch2 3 where a system has it, else Catch2 2 (Debian 12 ships 2.13).
function(krmx_catch2_setup)
  if(TARGET krmx_catch_main)
    return()
  endif()
  # Our own main (tests/support/catch_main.cpp: Catch2's session, or a test's child process) over Catch2's
  # library without its main.
  add_library(krmx_catch_main STATIC ${PROJECT_SOURCE_DIR}/tests/support/catch_main.cpp)
  find_package(Catch2 3 QUIET)
  if(Catch2_FOUND)
    target_link_libraries(krmx_catch_main PUBLIC Catch2::Catch2)
    target_compile_definitions(krmx_catch_main PUBLIC KRMX_CATCH2_V3=1)
  else()
    find_package(Catch2 2.13 REQUIRED)
    target_link_libraries(krmx_catch_main PUBLIC Catch2::Catch2)
  endif()
  target_compile_features(krmx_catch_main PUBLIC cxx_std_20)
  # The test runner is not under test: no optimizer, debug info or sanitizers (it took a minute of the
  # sanitized build; the sanitizers' runtime comes with the tests that link it).
  target_compile_options(krmx_catch_main PRIVATE -O0 -g0 -fno-sanitize=all)
  target_include_directories(krmx_catch_main PUBLIC ${PROJECT_SOURCE_DIR}/tests/support)
endfunction()

# krmx_add_test(name SOURCES a.cpp b.cpp [LIBS x y] [LABELS l] [SQLITE] [POSTGRES])
# One executable per layer, registered with CTest as a whole (fast to list, fast to run).
# SQLITE: with krmx::sqlite, link it and define KRMX_TEST_SQLITE=1; without it, leave out the sources
# named sqlite_*.cpp, so that the rest of the suite still runs. POSTGRES: the same with krmx::postgres,
# KRMX_TEST_POSTGRES=1 and sources named postgres_*.cpp (those tests start their own server).
function(krmx_add_test name)
  cmake_parse_arguments(ARG "SQLITE;POSTGRES" "" "SOURCES;LIBS;LABELS" ${ARGN})
  if(ARG_SQLITE AND NOT TARGET krmx::sqlite)
    list(FILTER ARG_SOURCES EXCLUDE REGEX "/sqlite_[^/]*\\.cpp$")
  endif()
  if(ARG_POSTGRES AND NOT TARGET krmx::postgres)
    list(FILTER ARG_SOURCES EXCLUDE REGEX "/postgres_[^/]*\\.cpp$")
  endif()
  krmx_catch2_setup()
  add_executable(${name} ${ARG_SOURCES})
  # A unity build compiles the whole folder as one translation unit, not in batches of 8: each batch parsed
  # the headers and instantiated the same templates again.
  set_target_properties(${name} PROPERTIES UNITY_BUILD_BATCH_SIZE 0)
  target_link_libraries(${name} PRIVATE krmx::krmx krmx_catch_main ${ARG_LIBS})
  if(ARG_SQLITE AND TARGET krmx::sqlite)
    target_link_libraries(${name} PRIVATE krmx::sqlite)
    target_compile_definitions(${name} PRIVATE KRMX_TEST_SQLITE=1)
  endif()
  if(ARG_POSTGRES AND TARGET krmx::postgres)
    target_link_libraries(${name} PRIVATE krmx::postgres)
    target_compile_definitions(${name} PRIVATE KRMX_TEST_POSTGRES=1)
  endif()
  krmx_warnings(${name})
  add_test(NAME ${name} COMMAND ${name} --order rand --warn NoAssertions)
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 600)
endfunction()

# krmx_add_test_child(test child SOURCE file.cpp [DEFINE NAME] [LIBS x y])
# A program a test starts as a separate process (kill -9, locks between processes): part of the test program
# (tests/support/test_child.hpp: the file registers itself as `child`), compiled in the test's translation
# unit, and handed to the test as the macro NAME, a krmx::testing::TestChild to start ChildProcess with
# (tests that are no C++ start `<test program> --krmx-child <child> ...` themselves).
function(krmx_add_test_child test child)
  cmake_parse_arguments(ARG "" "SOURCE;DEFINE" "LIBS" ${ARGN})
  target_sources(${test} PRIVATE ${ARG_SOURCE})
  target_link_libraries(${test} PRIVATE ${ARG_LIBS})
  if(ARG_DEFINE)
    target_compile_definitions(${test} PRIVATE "${ARG_DEFINE}=krmx::testing::TestChild{\"${child}\"}")
  endif()
endfunction()

# The WebSocket connections (Beast's WebSocket and HTTP code) compiled once per build tree, not once per
# program: our tests and examples are a dozen programs on the network, and each compiled them anew (about
# 30 s each in the sanitized build). They use KRMX_NET_SEPARATE_COMPILATION and link one library that
# includes krmx/net/separate_compilation.hpp, as a user's program of several files can (with TLS where it is
# built: the programs without it link OpenSSL too, which only the tests' no_openssl_check cares about, and
# that compiles its own). The benchmarks stay header-only: they are measured as users build by default.
option(KRMX_NET_COMPILE_ONCE "Our tests and examples share one compiled copy of the WebSocket connections" ON)
function(krmx_share_net_code)
  if(NOT KRMX_NET_COMPILE_ONCE OR NOT TARGET krmx::websocket)
    return()
  endif()
  get_property(targets GLOBAL PROPERTY KRMX_OWN_TARGETS)
  foreach(target ${targets})
    get_target_property(type ${target} TYPE)
    get_target_property(dir ${target} SOURCE_DIR)
    get_target_property(libs ${target} LINK_LIBRARIES)
    if(NOT type STREQUAL "EXECUTABLE" OR dir MATCHES "/tests/benchmarks$" OR NOT libs)
      continue()
    endif()
    if(NOT "krmx::websocket" IN_LIST libs AND NOT "krmx::tls" IN_LIST libs AND NOT "krmx::metrics" IN_LIST libs)
      continue()
    endif()
    if(NOT TARGET krmx_net_code)
      add_library(krmx_net_code STATIC ${PROJECT_SOURCE_DIR}/tests/support/krmx_net_code.cpp)
      target_compile_definitions(krmx_net_code PUBLIC KRMX_NET_SEPARATE_COMPILATION)
      if(TARGET krmx::tls)
        target_link_libraries(krmx_net_code PUBLIC krmx::tls)
        target_compile_definitions(krmx_net_code PRIVATE KRMX_NET_CODE_TLS)
      else()
        target_link_libraries(krmx_net_code PUBLIC krmx::websocket)
      endif()
      krmx_warnings(krmx_net_code)
    endif()
    target_link_libraries(${target} PRIVATE krmx_net_code)
  endforeach()
endfunction()

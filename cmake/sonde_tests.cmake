# Tests, benchmarks, examples and fuzz replays; only when sonde is the
# top-level project (or SONDE_BUILD_TESTS is set).

set(SONDE_TEST_TIMEOUT 120 CACHE STRING "Default per-test timeout in seconds")

# Each tests/unit/test_<x>.c is one executable and one CTest entry. Files
# named *_concurrency.c also carry the "concurrency" label (run under TSan).
file(GLOB SONDE_UNIT_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${SONDE_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  # The allocation-counting test replaces malloc; sanitizers own malloc.
  if(name STREQUAL "test_metrics_alloc" AND SONDE_SANITIZE)
    continue()
  endif()
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE sonde_static)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src ${SONDE_GEN_DIR})
  target_compile_options(${name} PRIVATE ${SONDE_WARNINGS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set(labels unit)
  if(name MATCHES "_concurrency$")
    list(APPEND labels concurrency)
  endif()
  # test_*_disabled also run in the -DSONDE_DISABLE=ON build (make test-disabled).
  if(name MATCHES "_disabled$")
    list(APPEND labels disabled)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${SONDE_TEST_TIMEOUT} LABELS "${labels}"
    ENVIRONMENT "SONDE_SOURCE_DIR=${PROJECT_SOURCE_DIR};SONDE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;SONDE_TEST_DIR=${CMAKE_BINARY_DIR}/tests")
endforeach()

# Integration tests: C programs and shell scripts that talk to real servers
# (promtool, Python parsers, Prometheus, Redis, PostgreSQL, ...).
file(GLOB SONDE_INT_C CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/integration/test_*.c)
foreach(src ${SONDE_INT_C})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE sonde_static)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src ${SONDE_GEN_DIR})
  target_compile_options(${name} PRIVATE ${SONDE_WARNINGS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS integration
    ENVIRONMENT "SONDE_SOURCE_DIR=${PROJECT_SOURCE_DIR};SONDE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;SONDE_TEST_DIR=${CMAKE_BINARY_DIR}/tests")
endforeach()
file(GLOB SONDE_INT_SH CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/integration/test_*.sh)
foreach(src ${SONDE_INT_SH})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${src})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS integration
    ENVIRONMENT "SONDE_SOURCE_DIR=${PROJECT_SOURCE_DIR};SONDE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;SONDE_TEST_DIR=${CMAKE_BINARY_DIR}/tests")
endforeach()
# test_install builds the library twice from scratch (installed package and
# add_subdirectory): on a loaded machine that alone can pass 300 s.
set_tests_properties(test_install PROPERTIES TIMEOUT 900)

# The public headers must compile as C99 and as C++.
enable_language(CXX)
add_executable(test_headers_cxx ${PROJECT_SOURCE_DIR}/tests/unit/headers_cxx.cpp)
target_link_libraries(test_headers_cxx PRIVATE sonde_static)
set_target_properties(test_headers_cxx PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME test_headers_cxx COMMAND test_headers_cxx)
set_tests_properties(test_headers_cxx PROPERTIES LABELS unit TIMEOUT 30)
add_library(sonde_headers_c99 OBJECT ${PROJECT_SOURCE_DIR}/tests/unit/headers_c99.c)
target_include_directories(sonde_headers_c99 PRIVATE ${PROJECT_SOURCE_DIR}/include)
set_target_properties(sonde_headers_c99 PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
target_compile_options(sonde_headers_c99 PRIVATE -Wall -Wextra -pedantic -Werror)

# Benchmarks: every bench/*.c links into one program, sonde-bench.
file(GLOB SONDE_BENCH_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bench/*.c)
if(SONDE_BENCH_SOURCES)
  add_executable(sonde-bench ${SONDE_BENCH_SOURCES})
  target_link_libraries(sonde-bench PRIVATE sonde_static)
  target_include_directories(sonde-bench PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/bench ${SONDE_GEN_DIR})
  target_compile_options(sonde-bench PRIVATE ${SONDE_WARNINGS})
  # sonde-bench-inc: N counter increments, measured under callgrind by
  # bench/callgrind_counter.sh.
  add_executable(sonde-bench-inc ${PROJECT_SOURCE_DIR}/bench/inc_loop/inc_loop.c)
  target_link_libraries(sonde-bench-inc PRIVATE sonde_static)
  target_compile_options(sonde-bench-inc PRIVATE ${SONDE_WARNINGS})
  # sonde-bench-http: the server bench/http_bench.sh drives with wrk.
  add_executable(sonde-bench-http ${PROJECT_SOURCE_DIR}/bench/http_server/http_server.c)
  target_link_libraries(sonde-bench-http PRIVATE sonde_static)
  target_compile_options(sonde-bench-http PRIVATE ${SONDE_WARNINGS})
endif()

# Examples: examples/demo is sonde-demo; every other examples/<x>/ is
# sonde-example-<x>.
file(GLOB SONDE_EXAMPLE_DIRS LIST_DIRECTORIES true ${PROJECT_SOURCE_DIR}/examples/*)
foreach(dir ${SONDE_EXAMPLE_DIRS})
  if(IS_DIRECTORY ${dir})
    get_filename_component(ex ${dir} NAME)
    file(GLOB ex_src CONFIGURE_DEPENDS ${dir}/*.c)
    if(ex_src)
      if(ex STREQUAL "demo")
        set(exe sonde-demo)
      else()
        set(exe sonde-example-${ex})
      endif()
      add_executable(${exe} ${ex_src})
      target_link_libraries(${exe} PRIVATE sonde_static)
      target_compile_options(${exe} PRIVATE ${SONDE_WARNINGS})
    endif()
  endif()
endforeach()

# Fuzz targets: fuzz/fuzz_<x>.c defines LLVMFuzzerTestOneInput. Every build
# replays fuzz/corpus/<x>/* through it under CTest; with SONDE_FUZZ=ON and
# clang, a real libFuzzer binary is built as well.
file(GLOB SONDE_FUZZERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${SONDE_FUZZERS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" short ${name})
  add_executable(replay_${short} ${src} ${PROJECT_SOURCE_DIR}/fuzz/replay.c)
  target_link_libraries(replay_${short} PRIVATE sonde_static)
  target_include_directories(replay_${short} PRIVATE ${PROJECT_SOURCE_DIR}/src ${SONDE_GEN_DIR})
  set_target_properties(replay_${short} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME fuzz_replay_${short} COMMAND replay_${short} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${short})
  set_tests_properties(fuzz_replay_${short} PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  if(SONDE_FUZZ)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE sonde_static)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${SONDE_GEN_DIR})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()

# Helper programs that integration scripts drive: tests/helpers/<x>.c is
# built as build/tests/<x>.
file(GLOB SONDE_TEST_HELPERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/helpers/*.c)
foreach(src ${SONDE_TEST_HELPERS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE sonde_static)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src ${SONDE_GEN_DIR})
  target_compile_options(${name} PRIVATE ${SONDE_WARNINGS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
endforeach()

# Components only call down: includes and the symbols each object file uses
# from other components, against the table in scripts/check_layers.py
# (docs/architecture.md).
add_test(NAME test_layers
  COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check_layers.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_BINARY_DIR}/CMakeFiles/sonde_static.dir/src)
set_tests_properties(test_layers PROPERTIES LABELS unit TIMEOUT 120)

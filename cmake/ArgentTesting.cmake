# argent_add_test(NAME name SOURCES a.cc ... [LIBS ...] [CUDA] [MPI_RANKS n] [PROPERTIES ...])
#   Builds one GoogleTest binary. Without MPI_RANKS its tests are discovered one by one; with it
#   the binary runs under `mpirun -np n` as a single ctest entry. CUDA tests are built only with
#   the CUDA backend, and skip themselves (GTEST_SKIP with a message) on a machine without a GPU.
find_package(GTest REQUIRED)
include(GoogleTest)

function(argent_add_test)
  cmake_parse_arguments(T "CUDA" "NAME;MPI_RANKS" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  if(T_CUDA AND NOT ARGENT_WITH_CUDA)
    return()
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} argent_test_util GTest::gtest GTest::gtest_main)
  if(T_MPI_RANKS)
    add_test(NAME ${T_NAME}
             COMMAND ${MPIEXEC_EXECUTABLE} ${ARGENT_MPIEXEC_FLAGS} -np ${T_MPI_RANKS}
                     $<TARGET_FILE:${T_NAME}>)
    # Open MPI refuses to start as root (CI containers) unless told it may.
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT 300 PROCESSORS ${T_MPI_RANKS}
                         ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
                         ${T_PROPERTIES})
  else()
    # PROPERTIES: extra test properties (e.g. FIXTURES_REQUIRED, ENVIRONMENT) for every case.
    gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600 ${T_PROPERTIES})
  endif()
endfunction()

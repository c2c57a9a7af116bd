# Third-party dependencies, all from Debian packages (see launch/install-deps.sh).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 QUIET CONFIG)
if(NOT CLI11_FOUND)
  find_path(ARGENT_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${ARGENT_CLI11_INCLUDE})
endif()

# LibTorch: Debian's libtorch-dev ships TorchConfig.cmake; on the GPU machine the PyTorch wheel's
# LibTorch is found through CMAKE_PREFIX_PATH. Only the ATen tensor library is used.
find_package(Torch REQUIRED)
add_library(argent_torch INTERFACE)
target_link_libraries(argent_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(argent_torch INTERFACE ${TORCH_INCLUDE_DIRS})
# TORCH_CXX_FLAGS carries the C++ ABI switch LibTorch was built with; every C++ target must agree
# with it, since std::string crosses the layers.
separate_arguments(_argent_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_compile_options($<$<COMPILE_LANGUAGE:CXX>:${_argent_torch_flags}>)

# The distributed service: MPI collectives, the ZeroMQ gateway (cppzmq) and Protobuf messages.
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(cppzmq REQUIRED)
# The coordinator's metrics registry and text format (Debian: prometheus-cpp-dev; its civetweb
# Exposer is not used, coordinator/metrics_http.h says why).
find_package(prometheus-cpp CONFIG REQUIRED)
# Open MPI refuses to start as root unless told; oversubscribe lets a 3-rank job run on 2 cores.
set(ARGENT_MPIEXEC_FLAGS --oversubscribe --bind-to none CACHE STRING "Flags for mpiexec in tests")
if(NOT MPIEXEC_EXECUTABLE)
  set(MPIEXEC_EXECUTABLE mpirun)
endif()

#!/usr/bin/env bash
# The GPU tests in one call on a machine with a GPU: builds the CUDA backend and runs
# gpu_search_test (the CUDA search against the CPU scan). Extra arguments go to the test binary.
#   launch/gpu-test.sh [--gtest_filter=...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ARGENT_BUILD_DIR:-build-gpu}
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DARGENT_CUDA=ON \
  -DARGENT_BUILD_TESTS=ON -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
cmake --build "$build" -j "${ARGENT_JOBS:-$(nproc)}" --target gpu_search_test argent
"$build/tests/gpu_search_test" "$@"

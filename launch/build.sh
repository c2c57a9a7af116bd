#!/usr/bin/env bash
# Configures and builds Argent into build/ (or $ARGENT_BUILD_DIR). Extra arguments go to cmake's
# configure step, e.g. `launch/build.sh -DARGENT_CUDA=OFF`. Uses ccache when present and two jobs
# by default ($ARGENT_JOBS) so that it fits small CI machines.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${ARGENT_BUILD_DIR:-build}
jobs=${ARGENT_JOBS:-2}
generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
# nvcc lives outside PATH in the CUDA toolkit's default location.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=${ARGENT_BUILD_TYPE:-Release} "$@"
cmake --build "$build_dir" -j "$jobs"

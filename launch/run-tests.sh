#!/usr/bin/env bash
# The README's test command: installs dependencies, builds with tests and runs them through ctest.
# Set ARGENT_SKIP_DEPS=1 to skip the apt-get step on a machine that already has them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${ARGENT_SKIP_DEPS:-} ]]; then
  launch/install-deps.sh
fi
ARGENT_BUILD_DIR=${ARGENT_BUILD_DIR:-build} launch/build.sh -DARGENT_BUILD_TESTS=ON "$@"
build_dir=${ARGENT_BUILD_DIR:-build}

# docs/configuration.md is generated from the config schema; a stale copy is a failure.
if ! diff -u docs/configuration.md <("$build_dir/launch/argent" config-doc); then
  echo "docs/configuration.md is stale: regenerate it with 'argent config-doc > docs/configuration.md'" >&2
  exit 1
fi

# Open MPI refuses to run as root without these; CI containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
(cd "$build_dir" && ctest --output-on-failure -j "${ARGENT_JOBS:-2}" --timeout 900)

# The fuzz targets (fuzz/, clang + libFuzzer + ASan/UBSan, a build of their own) run a short,
# fixed time each on the committed corpora, which hold every past finding's reproducer.
# ARGENT_SKIP_FUZZ=1 skips them.
if [[ -z ${ARGENT_SKIP_FUZZ:-} ]]; then
  ARGENT_FUZZ_SECONDS=${ARGENT_FUZZ_SECONDS:-12} fuzz/run-fuzzers.sh
fi

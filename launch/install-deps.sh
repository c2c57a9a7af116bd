#!/usr/bin/env bash
# Installs every Debian package Argent's build, tests, benchmarks and demo need.
# Usage: launch/install-deps.sh            (run as root, or with sudo available)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # engine dependencies
  libtorch-dev
  libopenmpi-dev openmpi-bin
  libzmq3-dev cppzmq-dev
  libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  libopenblas0-pthread
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # python client, FAISS comparison benchmarks
  python3 python3-numpy python3-zmq python3-protobuf python3-faiss
  # the scale harness's plot (bench/scale_bench.py)
  python3-matplotlib
  # reranker training and the tests that export models (python/train_reranker.py)
  python3-torch
)

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"

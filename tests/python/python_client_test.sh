#!/usr/bin/env bash
# Installs the Python package from ./python into a fresh venv (with Debian's numpy, zmq and
# protobuf visible: --system-site-packages; PEP 668 keeps pip out of the system interpreter) and
# runs tests/python/check_client.py with it against a live 3-rank cluster.
#
#   tests/python/python_client_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(realpath "$1")
build=$(realpath "$2")
work=$(mktemp -d "${TMPDIR:-/tmp}/argent-python-XXXXXX")
cluster=
cleanup() {
  # mpirun's own exit status after SIGTERM is not this test's result.
  if [[ -n $cluster ]]; then kill -TERM "$cluster" 2>/dev/null && wait "$cluster" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$src"
argent=$build/launch/argent

# --without-pip: the venv uses Debian's pip (python3-pip) through the system site packages.
/usr/bin/python3 -m venv --system-site-packages --without-pip "$work/venv"
# --no-build-isolation: build with Debian's setuptools; --no-index: nothing from PyPI.
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index "$src/python"
# The installed package, not the source tree, is what the check imports (cwd is $work).
"$work/venv/bin/python" -c 'import argent, os; assert "venv" in argent.__file__, argent.__file__'

items=5000 dim=24
$argent build-index --out "$work/index" --synthetic $items --dim $dim --seed 3 --partitions 8 >/dev/null
/usr/bin/python3 -c "
import numpy as np
np.save('$work/queries.npy', np.random.default_rng(9).standard_normal((40, $dim)).astype(np.float32))"
endpoint=ipc://$work/gateway.sock
ARGENT_BUILD_DIR=$build launch/start-cluster.sh --ranks 3 --index "$work/index" \
  --endpoint "$endpoint" > "$work/cluster.log" 2>&1 &
cluster=$!
$argent admin status --endpoint "$endpoint" --wait-s 120 > /dev/null ||
  { cat "$work/cluster.log"; exit 1; }

cd "$work"
"$work/venv/bin/python" "$src/tests/python/check_client.py" \
  "$argent" "$endpoint" "$work/queries.npy" $items $dim 3 || { cat "$work/cluster.log"; exit 1; }

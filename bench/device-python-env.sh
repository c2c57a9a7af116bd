# Source on the GPU machine, after .devdeps/setup.sh (which puts libzmq.so.5 on LD_LIBRARY_PATH):
#
#   source .devdeps/setup.sh && source bench/device-python-env.sh
#
# That machine has no network, so nothing can be pip-installed there. When its python3 cannot
# import google.protobuf, this unpacks Debian's python3-protobuf (fetched beforehand, where there
# is network, by bench/fetch-python-debs.sh into .devdeps/python/) into /opt/deps/python and puts
# its pure-Python implementation on PYTHONPATH: it runs on any Python 3, whereas the package's
# compiled _message extension is built for Debian's 3.11 (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION
# =python says not to try it). pyzmq needs nothing here: without it the client binds libzmq
# through ctypes (python/argent/_zmq.py); without matplotlib bench/scale_bench.py skips its PNG.
# Sourced, so it sets variables in the caller's shell and never exits it.

_argent_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! python3 -c 'import google.protobuf' 2>/dev/null; then
  _argent_debs=("$_argent_root"/.devdeps/python/python3-protobuf_*.deb)
  if [[ -e ${_argent_debs[0]} ]]; then
    mkdir -p /opt/deps/python
    for _argent_deb in "${_argent_debs[@]}"; do dpkg -x "$_argent_deb" /opt/deps/python; done
    export PYTHONPATH=/opt/deps/python/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}
    export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
  else
    echo "device-python-env.sh: python3 has no google.protobuf and there is no" \
         ".devdeps/python/python3-protobuf_*.deb; run bench/fetch-python-debs.sh where there is" \
         "network, then bring .devdeps along" >&2
  fi
fi
# What the client will run on, for the log.
PYTHONPATH=$_argent_root/python${PYTHONPATH:+:$PYTHONPATH} python3 - <<'PY' || true
import importlib.util
from google.protobuf.internal import api_implementation
import google.protobuf
from argent import _zmq
have = lambda m: "yes" if importlib.util.find_spec(m) else "no (scale_bench.py --replot later)"
print(f"device-python-env: protobuf {google.protobuf.__version__} ({api_implementation.Type()}, "
      f"{google.protobuf.__file__}); zmq {_zmq.BACKEND}; matplotlib {have('matplotlib')}")
PY
unset _argent_root _argent_debs _argent_deb

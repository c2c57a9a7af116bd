#!/usr/bin/env bash
# Here, on a Debian 12 machine with network: downloads into .devdeps/python/ the Python .debs
# that bench/device-python-env.sh unpacks on the GPU machine, which has no network and may lack
# them. Only python3-protobuf: its pure-Python implementation (google/protobuf/*.py) runs on any
# Python 3; its compiled _message extension is for Debian's Python 3.11 and goes unused, and so
# do the packages it alone needs (libprotobuf32, libstdc++6, ...), which are not fetched.
#
#   bench/fetch-python-debs.sh     # then, there: source bench/device-python-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.devdeps/python
# The .debs travel to the device machine as untracked files; they must never be committed.
if ! git check-ignore -q "$dest"; then
  echo "fetch-python-debs.sh: $dest is not git-ignored (add /.devdeps/ to .git/info/exclude)" >&2
  exit 1
fi
mkdir -p "$dest"
rm -f "$dest"/python3-protobuf_*.deb
(cd "$dest" && apt-get download python3-protobuf)
ls -l "$dest"

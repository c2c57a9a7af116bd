#!/usr/bin/env bash
# Runs docs/operations.md's walkthrough (the block between <!-- walkthrough:begin/end -->) as it
# is written, in a temporary directory and on an ipc:// endpoint: a two-rank cluster from a
# hostfile with two entries for this machine must start, report itself in `argent admin status`
# (2 ranks, healthy, every item placed) and answer exactly as a single-process search does. Also
# checks the Slurm script: it parses (`bash -n`) and documents every variable it reads.
#
#   tests/launch/operations_walkthrough.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(realpath "$1")
build=$(realpath "$2")
work=$(mktemp -d "${TMPDIR:-/tmp}/argent-walkthrough-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$src"

# The block, verbatim, with the build directory this test was configured with.
sed -n '/<!-- walkthrough:begin -->/,/<!-- walkthrough:end -->/p' docs/operations.md |
  sed '1,2d;$d' | sed '$d' > "$work/walkthrough.sh"
[[ -s $work/walkthrough.sh ]] || { echo "no walkthrough block in docs/operations.md"; exit 1; }
sed -i "s|build/launch/argent|$build/launch/argent|g" "$work/walkthrough.sh"
grep -q 'launch/mpirun-cluster.sh --hostfile' "$work/walkthrough.sh"

# mpirun-cluster.sh runs $ARGENT_BUILD_DIR/launch/argent (default build/): this test's build.
export ARGENT_BUILD_DIR=$build
WORK=$work/w ENDPOINT=ipc://$work/gateway.sock \
  bash -euo pipefail "$work/walkthrough.sh" > "$work/out.txt" 2>&1 || {
  echo "walkthrough failed:"; cat "$work/out.txt"; cat "$work/w/cluster.log" 2>/dev/null; exit 1; }
cat "$work/out.txt"
grep -q "the cluster answers as a single process does" "$work/out.txt"
grep -Eq '^ranks +2$' "$work/out.txt" || { echo "admin status did not show 2 ranks"; exit 1; }
grep -Eq '^health +ok$' "$work/out.txt"
grep -Eq '^items +10000$' "$work/out.txt"
[[ $(wc -l < "$work/w/served.jsonl") -eq 100 ]]

# The Slurm script parses, and every variable it reads is documented in its header.
bash -n launch/slurm/argent.sbatch
for var in $(grep -oE '\$\{?[A-Z][A-Z0-9_]+' launch/slurm/argent.sbatch | tr -d '${' | sort -u); do
  case $var in SLURM_*|TMPDIR|PWD) continue ;; esac  # set by Slurm or the shell
  grep -Eq "^#   $var " launch/slurm/argent.sbatch ||
    { echo "launch/slurm/argent.sbatch: $var is not documented in the header"; exit 1; }
done
bash -n launch/mpirun-cluster.sh
echo "operations walkthrough: ok"

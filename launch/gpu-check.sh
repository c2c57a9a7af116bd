#!/usr/bin/env bash
# The serving job's end-to-end check on a GPU machine: builds with CUDA + NCCL, starts
# `mpirun -np RANKS argent serve --backend cuda` (NCCL collectives, one GPU per rank) over a
# synthetic index and checks that its answers through the gateway, with and without a filter,
# equal a single-process search; then a short load test. Logs go to $OUT (or build-gpu/check).
#   launch/gpu-check.sh [RANKS]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-1}
out=${OUT:-build-gpu/check}
mkdir -p "$out"

ARGENT_BUILD_DIR=build-gpu launch/build.sh -DARGENT_CUDA=ON -DARGENT_BUILD_TESTS=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
argent=build-gpu/launch/argent
work=build-gpu/check-data
filter='1:3 OR (2:5 AND NOT 3:1)'
$argent synth --out "$work/data" --n 200000 --dim 128 --queries 512
$argent build-index --out "$work/index" --embeddings "$work/data/items.npy" \
  --ids "$work/data/ids.npy" --features "$work/data/features.jsonl"

endpoint=ipc://$(realpath -m "$work")/gateway.sock
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" \
  $argent serve --index "$work/index" --endpoint "$endpoint" --backend cuda > "$out/serve.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null || true' EXIT

status=0
for f in "" "$filter"; do
  $argent query --endpoint "$endpoint" --queries "$work/data/queries.npy" --k 100 --filter "$f" > "$work/served.jsonl"
  $argent search --index "$work/index" --queries "$work/data/queries.npy" --k 100 --filter "$f" > "$work/local.jsonl"
  if cmp -s "$work/served.jsonl" "$work/local.jsonl"; then
    echo "PASS: $ranks-rank NCCL cluster == single-process search ($(wc -l < "$work/local.jsonl") queries, k 100, filter '${f}')"
  else
    echo "FAIL: answers differ (filter '${f}')"; status=1
  fi
done
$argent query --endpoint "$endpoint" --random 8192 --concurrency 32 --quiet \
  --summary-json "$out/load.json"
kill -TERM $cluster
wait $cluster || true
trap - EXIT
grep -E "NCCL communicator|serving|shutting down" "$out/serve.log" | head -8
exit $status

#!/usr/bin/env bash
# The serving job's end-to-end check on a GPU machine: builds with CUDA + NCCL; checks that
# `argent search --device cuda` (the CUDA scan) prints what the CPU scan prints, exact and IVF,
# with and without a filter; then, for each scan device (cpu, cuda), starts
# `mpirun -np RANKS argent serve --backend cuda --device D` (NCCL collectives, one GPU per rank)
# and checks that its answers through the gateway equal a single-process CPU search; then a
# short load test. Logs go to $OUT (or build-gpu/check).
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

status=0
for f in "" "$filter"; do
  for mode in "--nprobe 32" "--exact"; do
    $argent search --index "$work/index" --queries "$work/data/queries.npy" --k 100 $mode --filter "$f" > "$work/cpu.jsonl"
    $argent search --index "$work/index" --queries "$work/data/queries.npy" --k 100 $mode --filter "$f" --device cuda > "$work/gpu.jsonl"
    if cmp -s "$work/cpu.jsonl" "$work/gpu.jsonl"; then
      echo "PASS: argent search --device cuda == CPU scan ($mode, filter '${f}')"
    else
      echo "FAIL: CUDA scan differs from the CPU scan ($mode, filter '${f}')"; status=1
    fi
  done
done

endpoint=ipc://$(realpath -m "$work")/gateway.sock
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for device in cpu cuda; do
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" \
    $argent serve --index "$work/index" --endpoint "$endpoint" --backend cuda --device $device \
    > "$out/serve-$device.log" 2>&1 &
  cluster=$!
  trap 'kill -TERM $cluster 2>/dev/null || true' EXIT
  for f in "" "$filter"; do
    $argent query --endpoint "$endpoint" --queries "$work/data/queries.npy" --k 100 --filter "$f" > "$work/served.jsonl"
    $argent search --index "$work/index" --queries "$work/data/queries.npy" --k 100 --filter "$f" > "$work/local.jsonl"
    if cmp -s "$work/served.jsonl" "$work/local.jsonl"; then
      echo "PASS: $ranks-rank NCCL cluster, $device scan == single-process search ($(wc -l < "$work/local.jsonl") queries, k 100, filter '${f}')"
    else
      echo "FAIL: answers differ ($device scan, filter '${f}')"; status=1
    fi
  done
  $argent query --endpoint "$endpoint" --random 8192 --concurrency 32 --quiet \
    --summary-json "$out/load-$device.json"
  kill -TERM $cluster
  wait $cluster || true
  trap - EXIT
  grep -E "NCCL communicator|serving|shutting down" "$out/serve-$device.log" | head -4
done
exit $status

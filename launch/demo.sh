#!/usr/bin/env bash
# The README's demo command: installs dependencies, builds, generates a synthetic catalogue,
# builds an int8 IVF index, starts a 3-rank serving cluster with mpirun and answers real queries
# through the ZeroMQ gateway (C++ and Python clients), with and without filters, checks them
# against a single-process search, runs a short load test, upserts and deletes a few items while
# serving, and shuts the cluster down.
# Environment: ARGENT_SKIP_DEPS=1 skips apt-get; DEMO_ITEMS (200000) / DEMO_DIM (128) /
# DEMO_RANKS (3) size it; DEMO_DIR (build/demo) holds its data, index and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${ARGENT_SKIP_DEPS:-} ]]; then
  launch/install-deps.sh
fi
launch/build.sh
argent=build/launch/argent
work=${DEMO_DIR:-build/demo}
items=${DEMO_ITEMS:-200000}
dim=${DEMO_DIM:-128}
ranks=${DEMO_RANKS:-3}
endpoint=ipc://$(realpath -m "$work")/gateway.sock
filter='1:3 OR (2:5 AND NOT 3:1)'

echo "== synthetic catalogue: $items items x $dim dims -> $work/data"
$argent synth --out "$work/data" --n "$items" --dim "$dim" --queries 256
echo "== build-index"
$argent build-index --config configs/demo.yaml --out "$work/index" \
  --embeddings "$work/data/items.npy" --ids "$work/data/ids.npy" --features "$work/data/features.jsonl"

echo "== start a $ranks-rank cluster (mpirun) serving on $endpoint"
launch/start-cluster.sh --ranks "$ranks" --index "$work/index" --endpoint "$endpoint" \
  > "$work/cluster.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null || true' EXIT

echo "== query through the gateway: first 3 queries, top 5"
$argent query --endpoint "$endpoint" --queries "$work/data/queries.npy" --k 5 > "$work/served.jsonl"
head -3 "$work/served.jsonl"
echo "== with filter '$filter'"
$argent query --endpoint "$endpoint" --queries "$work/data/queries.npy" --k 5 \
  --filter "$filter" > "$work/served-filtered.jsonl"
head -3 "$work/served-filtered.jsonl"

echo "== the cluster's answers equal a single-process search of the same index"
$argent search --index "$work/index" --queries "$work/data/queries.npy" --k 5 > "$work/local.jsonl"
$argent search --index "$work/index" --queries "$work/data/queries.npy" --k 5 \
  --filter "$filter" > "$work/local-filtered.jsonl"
cmp "$work/served.jsonl" "$work/local.jsonl"
cmp "$work/served-filtered.jsonl" "$work/local-filtered.jsonl"
echo "identical: $(wc -l < "$work/served.jsonl") + $(wc -l < "$work/served-filtered.jsonl") queries"

echo "== Python client (python/argent_client.py)"
PYTHONPATH=python /usr/bin/python3 python/examples/query_demo.py --endpoint "$endpoint" --queries 2

echo "== load: 4096 random queries, 32 in flight"
$argent query --endpoint "$endpoint" --random 4096 --concurrency 32 --quiet

echo "== streaming updates: upsert 3 new items, delete one, find the others by their feature"
/usr/bin/python3 -c "
import json, random
random.seed(1)
for i in range(3):
    print(json.dumps({'id': 900000000 + i, 'embedding': [random.gauss(0, 1) for _ in range($dim)],
                      'features': {'7': [424242]}}))" > "$work/new-items.jsonl"
$argent upsert --endpoint "$endpoint" --items "$work/new-items.jsonl"
$argent delete --endpoint "$endpoint" --ids 900000001
$argent query --endpoint "$endpoint" --random 1 --exact --k 5 --filter '7:424242'
$argent admin stats --endpoint "$endpoint" | /usr/bin/python3 -c "
import json, sys
s = json.load(sys.stdin)
print({k: s[k] for k in ('upserts', 'deletes', 'tombstone_ratio', 'wal_sequence', 'wal_bytes')})"

echo "== shut down (SIGTERM to mpirun)"
kill -TERM $cluster
wait $cluster || true
trap - EXIT
grep -E "shutting down" "$work/cluster.log" || true
echo "demo done; server log: $work/cluster.log"

#!/usr/bin/env bash
# The README's demo command: installs dependencies, builds, generates a synthetic catalogue, builds
# an int8 IVF index over it and answers queries with and without an eligibility filter.
# Environment: ARGENT_SKIP_DEPS=1 skips apt-get; DEMO_ITEMS / DEMO_DIM size the catalogue.
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

echo "== synthetic catalogue: $items items x $dim dims -> $work"
$argent synth --out "$work/data" --n "$items" --dim "$dim" --queries 256
echo "== build-index"
$argent build-index --config configs/demo.yaml --out "$work/index" \
  --embeddings "$work/data/items.npy" --ids "$work/data/ids.npy" --features "$work/data/features.jsonl"
echo "== search: first 3 queries, top 5"
$argent search --index "$work/index" --queries "$work/data/queries.npy" --k 5 > "$work/results.jsonl"
head -3 "$work/results.jsonl"
echo "== search with filter '1:3 OR (2:5 AND NOT 3:1)'"
$argent search --index "$work/index" --queries "$work/data/queries.npy" --k 5 \
  --filter '1:3 OR (2:5 AND NOT 3:1)' > "$work/filtered.jsonl"
head -3 "$work/filtered.jsonl"
echo "== bench: QPS and recall against exact float search"
$argent bench --index "$work/index" --queries "$work/data/queries.npy" \
  --embeddings "$work/data/items.npy" --ids "$work/data/ids.npy" \
  --k 100 --nprobe 8,32 --batch 1,64 --min-seconds 0.5

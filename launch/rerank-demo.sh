#!/usr/bin/env bash
# Multi-task reranking, end to end (docs/architecture.md, "Reranking"): draws a catalogue, users
# and an interaction log from a known latent model, trains and exports the reranker with
# /usr/bin/python3 (python3-torch), indexes the items, starts a 3-rank cluster that reranks each
# query's top 1000 with the model, and measures recall@10 of the held-out users' true best items
# through the gateway, against the retrieval order of the same index (`argent search`).
# Expects a build (launch/build.sh). Environment: RERANK_DIR (default build/rerank-demo),
# RERANK_ITEMS, RERANK_RANKS.
set -euo pipefail
cd "$(dirname "$0")/.."

argent=build/launch/argent
py=/usr/bin/python3
work=${RERANK_DIR:-build/rerank-demo}
items=${RERANK_ITEMS:-50000}
ranks=${RERANK_RANKS:-3}
endpoint=ipc://$(realpath -m "$work")/gateway.sock
mkdir -p "$work"

echo "== synthetic users, items and interactions from a latent model -> $work"
$py python/train_reranker.py synth --out "$work" --items "$items"
echo "== train, evaluate and export the reranker (hidden 256,128: the rerank: defaults)"
$py python/train_reranker.py train --data "$work" --out "$work/model.pt" --hidden 256,128 \
  --metrics "$work/metrics.json"
echo "== build-index"
$argent build-index --out "$work/index" --embeddings "$work/items.npy" --ids "$work/ids.npy"

echo "== retrieval order (single process), recall@10 of the true best"
$argent search --index "$work/index" --queries "$work/queries.npy" --k 10 > "$work/retrieval.jsonl"
$py python/train_reranker.py recall --data "$work" --results "$work/retrieval.jsonl"

echo "== start a $ranks-rank cluster that reranks the top 1000 (rerank.depth)"
launch/start-cluster.sh --ranks "$ranks" --index "$work/index" --endpoint "$endpoint" \
  --rerank-model "$work/model.pt" > "$work/cluster.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null || true' EXIT
$argent query --endpoint "$endpoint" --queries "$work/queries.npy" --k 10 > "$work/reranked.jsonl"
head -c 600 "$work/reranked.jsonl"; echo " ..."
echo "== reranked through the gateway, recall@10 of the true best"
$py python/train_reranker.py recall --data "$work" --results "$work/reranked.jsonl"
echo "== the same queries with click-only task weights"
$argent query --endpoint "$endpoint" --queries "$work/queries.npy" --k 10 \
  --task-weights 1,0,0,0 > "$work/reranked-click.jsonl"
$py python/train_reranker.py recall --data "$work" --results "$work/reranked-click.jsonl"

kill -TERM $cluster
wait $cluster || true
trap - EXIT
echo "rerank demo done; server log: $work/cluster.log"

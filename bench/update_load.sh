#!/usr/bin/env bash
# Update-path benchmark: search latency with and without a sustained upsert stream, the upsert
# rate the cluster sustains while serving, freshness (arrival -> visible), snapshot time and crash
# recovery time. Starts its own 3-rank CPU cluster (mpirun) on a fresh index; prints a table and
# writes update_load.{csv,json,md} to --out-dir.
#
#   bench/update_load.sh [--n 200000] [--dim 128] [--queries 20000] [--readers 32]
#                        [--batch 100] [--writers 4] [--work-dir /tmp/argent-update-bench]
#                        [--out-dir bench/results]
set -euo pipefail
cd "$(dirname "$0")/.."

n=200000 dim=128 queries=20000 readers=32 batch=100 writers=4
work=/tmp/argent-update-bench out=bench/results
while [[ $# -gt 0 ]]; do
  case $1 in
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --queries) queries=$2; shift 2 ;;
    --readers) readers=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --writers) writers=$2; shift 2 ;;
    --work-dir) work=$2; shift 2 ;;
    --out-dir) out=$2; shift 2 ;;
    *) echo "update_load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
argent=$PWD/build/launch/argent
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$work" && mkdir -p "$work" "$out"
endpoint=ipc://$work/gateway.sock
cat > "$work/serve.yaml" <<YAML
index:
  dir: $work/index
serve:
  endpoint: $endpoint
  stats_interval_s: 1.0
updates:
  snapshot_interval_s: 0   # snapshots only when asked: the phases below stay comparable
YAML

echo "== building $n x $dim synthetic items"
"$argent" build-index --out "$work/index" --synthetic "$n" --dim "$dim" --seed 7 --partitions 64

job=
start_cluster() {
  mpirun --oversubscribe --bind-to none -np 3 "$argent" serve --config "$work/serve.yaml" \
    >> "$work/serve.log" 2>&1 &
  job=$!
  local t0=$(date +%s.%N)
  "$argent" admin stats --endpoint "$endpoint" --timeout-ms 120000 > /dev/null
  echo "$(echo "$(date +%s.%N) - $t0" | bc)"
}
stop_cluster() { kill -TERM "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; }
trap 'kill -KILL $(pgrep -P "$job" 2>/dev/null) "$job" 2>/dev/null || true' EXIT
stats() { "$argent" admin stats --endpoint "$endpoint"; }
field() { $py -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

start_cluster > /dev/null
query() {  # $1: summary file
  "$argent" query --endpoint "$endpoint" --random "$queries" --concurrency "$readers" --k 100 \
    --quiet --seed 3 --summary-json "$1"
}

echo "== A: searches alone"
query "$work/a.json"

echo "== B: searches while $writers writers upsert batches of $batch"
"$argent" upsert --endpoint "$endpoint" --random 100000000 --batch "$batch" \
  --concurrency "$writers" --id-base 1000000000 > "$work/writer.log" 2>&1 &
writer=$!
sleep 3  # let the stream reach its steady rate
stats > "$work/b0.json"
t0=$(date +%s.%N)
query "$work/b.json"
t1=$(date +%s.%N)
stats > "$work/b1.json"
kill -TERM "$writer" && wait "$writer" 2>/dev/null || true

echo "== C: upserts alone"
"$argent" upsert --endpoint "$endpoint" --random 50000 --batch "$batch" --concurrency "$writers" \
  --id-base 2000000000 --summary-json "$work/c.json"
stats > "$work/c1.json"

echo "== D: snapshot, then crash (SIGKILL) and recovery"
"$argent" admin snapshot --endpoint "$endpoint" > "$work/snapshot.json"
"$argent" upsert --endpoint "$endpoint" --random 20000 --batch "$batch" --concurrency "$writers" \
  --id-base 3000000000 --summary-json "$work/d.json"
kill -KILL $(pgrep -P "$job") "$job" 2>/dev/null || true
wait "$job" 2>/dev/null || true
recovery_s=$(start_cluster)
stats > "$work/d1.json"
stop_cluster

$py - "$work" "$out" "$t0" "$t1" "$recovery_s" "$n" "$dim" "$readers" "$writers" "$batch" <<'PY'
import csv, json, re, sys
work, out, t0, t1, recovery_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
n, dim, readers, writers, batch = sys.argv[6:11]
j = lambda name: json.load(open(f"{work}/{name}"))
a, b, c, d = j("a.json"), j("b.json"), j("c.json"), j("d.json")
b0, b1, c1, d1, snap = j("b0.json"), j("b1.json"), j("c1.json"), j("d1.json"), j("snapshot.json")
overlap = t1 - t0
upserts_during = int(b1["upserts"]) - int(b0["upserts"])
log = open(f"{work}/serve.log").read()
replay = re.findall(r"replayed (\d+) log records in ([0-9.]+) ms", log)[-1]
rows = [
    {"phase": "A: search only", "search_qps": a["qps"], "search_p50_ms": a["p50_ms"],
     "search_p99_ms": a["p99_ms"], "search_errors": a["errors"], "upserts_per_s": 0,
     "visible_p50_ms": "", "visible_p99_ms": ""},
    {"phase": "B: search + upserts", "search_qps": b["qps"], "search_p50_ms": b["p50_ms"],
     "search_p99_ms": b["p99_ms"], "search_errors": b["errors"],
     "upserts_per_s": round(upserts_during / overlap, 1),
     "visible_p50_ms": b1["visible_p50_ms"], "visible_p99_ms": b1["visible_p99_ms"]},
    {"phase": "C: upserts only", "search_qps": 0, "search_p50_ms": "", "search_p99_ms": "",
     "search_errors": "", "upserts_per_s": round(c["items_per_s"], 1),
     "visible_p50_ms": c1["visible_p50_ms"], "visible_p99_ms": c1["visible_p99_ms"]},
]
extra = {"n": int(n), "dim": int(dim), "readers": int(readers), "writers": int(writers),
         "batch": int(batch), "overlap_s": round(overlap, 2), "upserts_during_B": upserts_during,
         "upsert_ack_p50_ms_C": c["p50_ms"], "upsert_ack_p99_ms_C": c["p99_ms"],
         "snapshot_items": int(snap["items"]), "snapshot_s": round(snap["seconds"], 3),
         "crash_replayed_records": int(replay[0]), "crash_replay_ms": float(replay[1]),
         "crash_restart_to_healthy_s": round(recovery_s, 2),
         "items_after_recovery": sum(int(s["items"]) for s in d1["shards"]),
         "tombstone_ratio_end": d1["tombstone_ratio"]}
with open(f"{out}/update_load.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
json.dump({"rows": rows, "run": extra}, open(f"{out}/update_load.json", "w"), indent=2)
fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)
lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
lines += ["| " + " | ".join(fmt(r[k]) for k in rows[0]) + " |" for r in rows]
lines += ["", "| run | value |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in extra.items()]
open(f"{out}/update_load.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY

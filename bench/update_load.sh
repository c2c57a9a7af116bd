#!/usr/bin/env bash
# Update-path benchmark: search latency with and without a sustained upsert stream, the upsert
# rate the cluster sustains while serving, freshness (arrival -> visible), snapshot time and crash
# recovery time. Starts its own 3-rank CPU cluster (mpirun) on a fresh index; prints a table and
# writes update_load.{csv,json,md} to --out-dir.
#
#   bench/update_load.sh [--n 200000] [--dim 128] [--queries 20000] [--readers 32]
#                        [--batch 100] [--writers 4] [--rate 1000] [--work-dir DIR] [--out-dir DIR]
#
# Phases: A searches alone; B searches with a paced stream of --rate upserts/s; B' searches with
# the writers upserting as fast as they are acknowledged; C upserts alone; D snapshot, more
# upserts, SIGKILL of the whole job, restart (log replay).
set -euo pipefail
cd "$(dirname "$0")/.."

n=200000 dim=128 queries=20000 readers=32 batch=100 writers=4 rate=1000
work=/tmp/argent-update-bench out=bench/results
while [[ $# -gt 0 ]]; do
  case $1 in
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --queries) queries=$2; shift 2 ;;
    --readers) readers=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --writers) writers=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
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

# Sets the globals job (mpirun's pid) and recovery_s (seconds until the gateway answers). Call it
# plainly, not in $(...): a subshell's job never reaches the traps and stop_cluster below.
job= recovery_s=
start_cluster() {
  mpirun --oversubscribe --bind-to none -np 3 "$argent" serve --config "$work/serve.yaml" \
    >> "$work/serve.log" 2>&1 &
  job=$!
  local t0=$(date +%s.%N)
  "$argent" admin stats --endpoint "$endpoint" --timeout-ms 120000 > /dev/null
  recovery_s=$(echo "$(date +%s.%N) - $t0" | bc)
}
stop_cluster() { kill -TERM "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; job=; }
trap 'kill -KILL $(pgrep -P "$job" 2>/dev/null) "$job" 2>/dev/null || true' EXIT
stats() { "$argent" admin stats --endpoint "$endpoint"; }
field() { $py -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

start_cluster
query() {  # $1: summary file
  "$argent" query --endpoint "$endpoint" --random "$queries" --concurrency "$readers" --k 100 \
    --quiet --seed 3 --summary-json "$1"
}

echo "== A: searches alone"
query "$work/a.json"

# Searches while a writer stream runs: $1 = phase name, $2 = --rate (0: unpaced).
with_writers() {
  echo "== $1: searches while $writers writers upsert batches of $batch (rate ${2/#0/unpaced})"
  "$argent" upsert --endpoint "$endpoint" --random 100000000 --batch "$batch" \
    --concurrency "$writers" --rate "$2" --id-base "$3" > "$work/writer-$1.log" 2>&1 &
  local writer=$!
  sleep 3  # let the stream reach its steady rate
  stats > "$work/$1-0.json"
  local t0=$(date +%s.%N)
  query "$work/$1.json"
  local t1=$(date +%s.%N)
  stats > "$work/$1-1.json"
  echo "$t1 - $t0" | bc > "$work/$1.seconds"
  kill -TERM "$writer" && wait "$writer" 2>/dev/null || true
}
with_writers b "$rate" 1000000000
with_writers bmax 0 1500000000

echo "== C: upserts alone"
"$argent" upsert --endpoint "$endpoint" --random 50000 --batch "$batch" --concurrency "$writers" \
  --id-base 2000000000 --summary-json "$work/c.json"
stats > "$work/c1.json"

echo "== D: snapshot, then crash (SIGKILL) and recovery"
"$argent" admin snapshot --json --endpoint "$endpoint" > "$work/snapshot.json"
"$argent" upsert --endpoint "$endpoint" --random 20000 --batch "$batch" --concurrency "$writers" \
  --id-base 3000000000 --summary-json "$work/d.json"
kill -KILL $(pgrep -P "$job") "$job" 2>/dev/null || true
wait "$job" 2>/dev/null || true
start_cluster  # sets recovery_s
stats > "$work/d1.json"
stop_cluster

$py - "$work" "$out" "$recovery_s" "$n" "$dim" "$readers" "$writers" "$batch" "$rate" <<'PY'
import csv, json, re, sys
work, out, recovery_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
n, dim, readers, writers, batch, rate = sys.argv[4:10]
j = lambda name: json.load(open(f"{work}/{name}"))
a, c, d = j("a.json"), j("c.json"), j("d.json")
c1, d1, snap = j("c1.json"), j("d1.json"), j("snapshot.json")
def during(phase):
    q, s0, s1 = j(f"{phase}.json"), j(f"{phase}-0.json"), j(f"{phase}-1.json")
    seconds = float(open(f"{work}/{phase}.seconds").read())
    ups = int(s1["upserts"]) - int(s0["upserts"])
    return q, s1, round(ups / seconds, 1)
log = open(f"{work}/serve.log").read()
replay = re.findall(r"replayed (\d+) log records in ([0-9.]+) ms", log)[-1]
rows = [
    {"phase": "A: search only", "search_qps": a["qps"], "search_p50_ms": a["p50_ms"],
     "search_p99_ms": a["p99_ms"], "search_errors": a["errors"], "upserts_per_s": 0,
     "visible_p50_ms": "", "visible_p99_ms": ""},
] + [
    {"phase": name, "search_qps": q["qps"], "search_p50_ms": q["p50_ms"],
     "search_p99_ms": q["p99_ms"], "search_errors": q["errors"], "upserts_per_s": ups,
     "visible_p50_ms": s1["visible_p50_ms"], "visible_p99_ms": s1["visible_p99_ms"]}
    for name, (q, s1, ups) in [(f"B: search + {rate} upserts/s", during("b")),
                               ("B': search + unpaced upserts", during("bmax"))]
] + [
    {"phase": "C: upserts only", "search_qps": 0, "search_p50_ms": "", "search_p99_ms": "",
     "search_errors": "", "upserts_per_s": round(c["items_per_s"], 1),
     "visible_p50_ms": c1["visible_p50_ms"], "visible_p99_ms": c1["visible_p99_ms"]},
]
extra = {"n": int(n), "dim": int(dim), "readers": int(readers), "writers": int(writers),
         "batch": int(batch), "paced_rate": float(rate),
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

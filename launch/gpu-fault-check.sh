#!/usr/bin/env bash
# Cluster-fault check on a GPU machine (docs/reliability.md, "Cluster faults"): a CUDA cluster
# under `argent supervise` (NCCL collectives with one GPU per rank when there are >= 2 GPUs,
# else MPI collectives with the CUDA scan), its last rank SIGKILLed while searches run. Checks
# that the coordinator answers UNAVAILABLE within the step deadline + 1 s, that no process of
# the failed job is left (nor holds GPU memory), and that the restarted cluster answers as the
# single-process search does. Logs go to $OUT (or build-gpu/fault-check).
#   launch/gpu-fault-check.sh [RANKS]
set -euo pipefail
cd "$(dirname "$0")/.."
gpus=$(nvidia-smi -L | wc -l)
ranks=${1:-$(( gpus >= 2 ? gpus : 2 ))}
backend=$([[ $gpus -ge $ranks ]] && echo cuda || echo cpu)  # NCCL needs one GPU per rank
out=${OUT:-build-gpu/fault-check}
work=build-gpu/fault-data
mkdir -p "$out" "$work"
ARGENT_BUILD_DIR=build-gpu launch/build.sh -DARGENT_CUDA=ON -DARGENT_BUILD_TESTS=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
argent=$PWD/build-gpu/launch/argent
$argent build-index --out "$work/index" --synthetic 200000 --dim 128 --seed 7 > /dev/null
endpoint=ipc://$(realpath -m "$work")/gateway.sock
cat > "$work/serve.yaml" <<YAML
index:
  dir: $(realpath "$work/index")
serve:
  endpoint: $endpoint
  backend: $backend
  step_timeout_ms: 2000
  abort_grace_ms: 500
search:
  device: cuda
YAML
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
$argent supervise --endpoint "$endpoint" --backoff-ms 200 -- mpirun --oversubscribe \
  --bind-to none -np "$ranks" $argent serve --config "$work/serve.yaml" > "$out/supervise.log" 2>&1 &
supervisor=$!
trap 'kill -TERM $supervisor 2>/dev/null || true' EXIT
echo "backend $backend, $ranks ranks on $gpus GPU(s)"

status=0
PYTHONPATH=python /usr/bin/python3 - "$endpoint" "$supervisor" "$ranks" <<'PY' || status=$?
import os, signal, sys, time
import numpy as np
sys.path.insert(0, "bench")
from fault_recovery import ask, descendants, wait_ranks
from argent_client import Client
endpoint, supervisor, ranks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bound = 2.0 + 1.0  # step_timeout_ms + 1 s
with Client(endpoint, timeout_s=120) as c:
    dim = c.health().dim
client = Client(endpoint, timeout_s=bound)
queries = np.random.default_rng(3).standard_normal((32, dim)).astype(np.float32)
before = [ask(client, q, 10)[1] for q in queries]
old = descendants(supervisor)
victim = wait_ranks(supervisor, ranks)[ranks - 1]
t0 = time.monotonic()
os.kill(victim, signal.SIGKILL)
status, i = "OK", 0
while status == "OK":
    status, _ = ask(client, queries[i % 32], 10)
    i += 1
took = time.monotonic() - t0
ok = status == "UNAVAILABLE" and took <= bound
print(("PASS" if ok else "FAIL") + f": after SIGKILL of rank {ranks - 1}: {status} in {took * 1e3:.0f} ms (bound {bound * 1e3:.0f} ms)")
time.sleep(2.5)
left = [p for p in old if os.path.exists(f"/proc/{p}")]
print(("PASS" if not left else "FAIL") + f": processes of the failed job left: {left}")
with Client(endpoint, timeout_s=120) as c:
    c.health()
after = [ask(client, q, 10)[1] for q in queries]
same = after == before
print(("PASS" if same else "FAIL") + f": restarted cluster answers as before the kill ({time.monotonic() - t0:.1f} s after it)")
sys.exit(0 if ok and not left and same else 1)
PY
nvidia-smi --query-compute-apps=pid,used_memory --format=csv > "$out/gpu-apps.csv" || true
kill -TERM $supervisor; wait $supervisor || true
trap - EXIT
grep -E "cluster failure|restart|answering" "$out/supervise.log" | head -6
exit $status

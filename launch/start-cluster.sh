#!/usr/bin/env bash
# Starts an Argent serving job on this machine with mpirun (one process per rank; ranks may
# oversubscribe the cores). Runs in the foreground until SIGTERM/SIGINT; across hosts, run the
# same `mpirun -H a,b,... argent serve` line with a shared index directory.
#
#   launch/start-cluster.sh --index DIR [--ranks 3] [--endpoint tcp://127.0.0.1:5555]
#                           [--config configs/demo.yaml] [--backend cpu|cuda] [--rerank-model FILE]
#                           [--supervise] [--metrics-endpoint HOST:PORT] [--log-level info]
#
# --supervise runs the job under `argent supervise`, which restarts it after a failure (with
# backoff); the restarted job recovers from its snapshot and log (docs/reliability.md).
# Runs $ARGENT_BUILD_DIR/launch/argent (default build/, as launch/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ranks=3
config=configs/demo.yaml
args=()
supervise=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    --supervise) supervise=("${ARGENT_BUILD_DIR:-build}/launch/argent" supervise --); shift ;;
    --config) config=$2; shift 2 ;;
    --index|--endpoint|--backend|--rerank-model|--metrics-endpoint|--log-level) args+=("$1" "$2"); shift 2 ;;
    *) echo "start-cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Open MPI refuses to run as root unless told it may (containers, CI).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "${supervise[@]}" mpirun --oversubscribe --bind-to none -np "$ranks" \
  "${ARGENT_BUILD_DIR:-build}/launch/argent" serve --config "$config" "${args[@]}"

#!/usr/bin/env bash
# Starts an Argent serving job over the nodes of an Open MPI hostfile (docs/operations.md,
# "Deploying"). Runs in the foreground until SIGTERM/SIGINT. Every node needs the same build at
# the same path and the index directory on a shared filesystem (or the same copy at the same
# path); rank 0 (the first slot of the first node) runs the gateway.
#
#   launch/mpirun-cluster.sh --hostfile FILE --index DIR [--ranks N] [--config FILE]
#                            [--endpoint tcp://0.0.0.0:5555] [--backend cpu|cuda] [--iface IFACE]
#                            [--device cpu|cuda] [--metrics-endpoint HOST:PORT] [--log-level LEVEL]
#
# --index, --endpoint, --backend, --device, --metrics-endpoint and --log-level go to `argent serve`
# (they override the config; `argent serve --help`).
#
# Hostfile (launch/hostfile.example): one node a line, `slots=N` = ranks on that node, one per
# GPU with --backend cuda. Each rank uses the GPU of its node-local rank (local rank r -> GPU r
# mod the GPUs it sees), so leave CUDA_VISIBLE_DEVICES unset or the same on every rank.
#
# Environment, forwarded to every rank when set:
#   NCCL_SOCKET_IFNAME  interface NCCL bootstraps and (without InfiniBand) moves data on, e.g. eth0
#   NCCL_IB_HCA         InfiniBand adapters NCCL may use, e.g. mlx5_0,mlx5_1
#   NCCL_IB_DISABLE     1 forces NCCL onto sockets
#   NCCL_DEBUG          INFO prints NCCL's choice of transport at start
#   OMP_NUM_THREADS     CPU threads per rank (else search.threads, 0 = all cores)
# --iface IFACE restricts Open MPI's own TCP traffic (control plane, MPI collectives) to IFACE.
set -euo pipefail
cd "$(dirname "$0")/.."

hostfile= ranks= config=configs/demo.yaml iface=
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --hostfile) hostfile=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --iface) iface=$2; shift 2 ;;
    --index|--endpoint|--backend|--device|--log-level|--metrics-endpoint) args+=("$1" "$2"); shift 2 ;;
    *) echo "mpirun-cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $hostfile ]] || { echo "mpirun-cluster.sh: --hostfile FILE is required" >&2; exit 2; }
[[ -r $hostfile ]] || { echo "mpirun-cluster.sh: cannot read hostfile $hostfile" >&2; exit 2; }

# Ranks: every slot of the hostfile (a line without slots= is one slot).
if [[ -z $ranks ]]; then
  ranks=$(awk '!/^[[:space:]]*(#|$)/ { n += (match($0, /slots=[0-9]+/) ? substr($0, RSTART + 6, RLENGTH - 6) : 1) }
               END { print n + 0 }' "$hostfile")
fi
(( ranks >= 1 )) || { echo "mpirun-cluster.sh: $hostfile lists no slots" >&2; exit 2; }

forward=()
for var in NCCL_SOCKET_IFNAME NCCL_IB_HCA NCCL_IB_DISABLE NCCL_DEBUG OMP_NUM_THREADS; do
  [[ -n ${!var:-} ]] && forward+=(-x "$var")
done
mca=()
if [[ -n $iface ]]; then
  mca+=(--mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")
fi

# The program every rank runs: the build of launch/build.sh ($ARGENT_BUILD_DIR, default build/).
argent=$(realpath "${ARGENT_BUILD_DIR:-build}")/launch/argent
[[ -x $argent ]] || { echo "mpirun-cluster.sh: $argent not found; run launch/build.sh" >&2; exit 2; }

# Open MPI refuses to run as root unless told it may (containers, CI).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --hostfile "$hostfile" -np "$ranks" --map-by slot --bind-to none \
  "${mca[@]}" "${forward[@]}" \
  "$argent" serve --config "$config" "${args[@]}"

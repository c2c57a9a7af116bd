#!/usr/bin/env bash
# torch.ops.argent on a GPU machine: builds the operator library and libargent_gpu against the
# PyTorch wheel's LibTorch (CUDA), indexes a synthetic catalogue, and runs
# bench/torch_ops_gpu.py: the CUDA ops against the CPU ops (same ids and scores) and against the
# service's own CUDA search on the same batch (same ids; time ratio). Logs and JSON go to $OUT
# (or build-gpu/torch-ops).
#   launch/torch-ops-gpu.sh [N_ITEMS] [DIM]     (defaults 1000000 128)
# On the device machine: `source .devdeps/setup.sh && launch/torch-ops-gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
dim=${2:-128}
out=${OUT:-build-gpu/torch-ops}
mkdir -p "$out"
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
build=${ARGENT_BUILD_DIR:-build-gpu}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DARGENT_CUDA=ON \
  -DARGENT_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1 ||
  { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "${ARGENT_JOBS:-$(nproc)}" --target argent argent_torch_ops argent_gpu \
  > "$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -30; exit 1; }
argent=$build/launch/argent
work=$build/torch-ops-data
if [[ ! -f $work/index-$n-$dim/MANIFEST.argent ]]; then
  $argent synth --out "$work/data-$n-$dim" --n "$n" --dim "$dim" --queries 1024
  $argent build-index --out "$work/index-$n-$dim" --embeddings "$work/data-$n-$dim/items.npy" \
    --ids "$work/data-$n-$dim/ids.npy" --features "$work/data-$n-$dim/features.jsonl"
fi
status=0
for batch in 64 256; do
  python3 bench/torch_ops_gpu.py --index "$work/index-$n-$dim" \
    --queries "$work/data-$n-$dim/queries.npy" --lib-ops "$build/torch_ops/libargent_torch_ops.so" \
    --lib-gpu "$build/python/capi/libargent_gpu.so" --batch $batch --k 100 --nprobe 32 \
    --json "$out/torch_ops_gpu_b$batch.json" | tee "$out/torch_ops_gpu_b$batch.txt" || status=1
done
exit $status

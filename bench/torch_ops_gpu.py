"""torch.ops.argent on the GPU against the service's own CUDA search, on the same batch.

For each configuration (exact / IVF, with and without a filter) it runs one batch of queries
through
  service  the CUDA search as the service runs it (run_gpu_search with its GPU probe, through
           libargent_gpu's C ABI over the module's own device buffers: the same bytes),
  ops      torch.ops.argent.probe + torch.ops.argent.search on CUDA tensors (what a scripted
           ArgentRetrieval runs on the GPU; queries quantized once, outside the timing, for both),
  cpu      the same ops on the CPU tensors (correctness reference),
checks that the CUDA ops return the CPU ops' ids and scores exactly and the service's ids, times
the two GPU paths with CUDA events (median of --reps after --warmup) and prints one row per
configuration; rows also go to --json. launch/torch-ops-gpu.sh builds and runs it.

    python3 bench/torch_ops_gpu.py --index IDX --queries Q.npy --lib-ops LIB --lib-gpu LIB
"""
import argparse
import ctypes
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import argent.torch as at  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--index", required=True)
p.add_argument("--queries", required=True, help=".npy float32 [n, dim]")
p.add_argument("--lib-ops", required=True, help="libargent_torch_ops.so")
p.add_argument("--lib-gpu", required=True, help="libargent_gpu.so (python/capi)")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--k", type=int, default=100)
p.add_argument("--nprobe", type=int, default=32)
p.add_argument("--filter", default="1:3 OR (2:5 AND NOT 3:1)")
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--reps", type=int, default=20)
p.add_argument("--json", default="")
args = p.parse_args()

at.load_library(args.lib_ops)
dev = torch.device("cuda")
cpu_model = at.ArgentRetrieval.from_index(args.index, nprobe=args.nprobe)
gpu_model = at.ArgentRetrieval.from_index(args.index, nprobe=args.nprobe).to(dev)


def load_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[8:10], "little")
    header = data[10:10 + n].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    return torch.frombuffer(bytearray(data[10 + n:]), dtype=torch.float32).reshape(shape)


queries = load_npy(args.queries)[:args.batch].contiguous()
B = queries.shape[0]
codes, qscales, qbias = torch.ops.argent.quantize(queries, cpu_model.d_pad, cpu_model.normalize)
g_codes, g_scales, g_bias = codes.to(dev), qscales.to(dev), qbias.to(dev)

lib = ctypes.CDLL(args.lib_gpu)
P, I64, I32, U64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_uint64
lib.argent_gpu_index_create.restype = P
lib.argent_gpu_index_create.argtypes = [P, P, P, P, I32, I32, U64, I32, I64, P, P, P, I64, P, P,
                                        P, P, P, P, P, P, I32, P, ctypes.c_char_p, ctypes.c_int]
lib.argent_gpu_search.argtypes = [P, P, P, I64, P, I64, I32, I32, P, P, P, P, ctypes.c_char_p,
                                  ctypes.c_int]
err = ctypes.create_string_buffer(1024)
stream = P(torch.cuda.current_stream().cuda_stream)


def ptr(t):
    return P(t.data_ptr())


m = gpu_model
h_off, h_size = cpu_model.list_offsets.contiguous(), cpu_model.list_sizes.contiguous()
handle = lib.argent_gpu_index_create(
    ptr(m.codes), ptr(m.scales), ptr(m.ids), ptr(m.signatures), m.bloom_words, m.bloom_hashes,
    m.bloom_seed & (2**64 - 1), m.d_pad, m.ids.numel(), ptr(m.list_offsets), ptr(m.list_sizes),
    ptr(m.list_summaries), m.nlist, ptr(h_off), ptr(h_size), ptr(m.feature_offset),
    ptr(m.feature_count), ptr(m.feature_ids), ptr(m.feature_values), ptr(m.centroid_codes),
    ptr(m.centroid_scales), 0, stream, err, 1024)  # 0: the operators' blocked codes
if not handle:
    raise RuntimeError(err.value.decode())


def median_ms(fn):
    for _ in range(args.warmup):
        fn()
    times = []
    for _ in range(args.reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


rows = []
print(f"GPU {torch.cuda.get_device_name()}  rows {m.ids.numel()}  dim {m.dim}  nlist {m.nlist}  "
      f"batch {B}  k {args.k}  nprobe {args.nprobe}")
print(f"{'mode':6} {'filter':26} {'service ms':>10} {'ops ms':>9} {'ops/svc':>8} "
      f"{'cuda==cpu':>9} {'ids==svc':>9}")
for exact in (False, True):
    for filt in ("", args.filter):
        plan = cpu_model.compile_filter(filt)
        spans = at.plan_spans(B, plan)
        g_plan, g_spans = plan.to(dev), spans.to(dev)
        out_s = torch.empty(B, args.k, dtype=torch.float32, device=dev)
        out_i = torch.empty(B, args.k, dtype=torch.int64, device=dev)
        arr = (ctypes.c_char_p * B)(*([filt.encode()] * B)) if filt else None
        filters = ctypes.cast(arr, P) if filt else None

        def service():
            if lib.argent_gpu_search(handle, ptr(g_codes), ptr(g_scales), B, filters, args.k,
                                     int(exact), args.nprobe, ptr(out_s), ptr(out_i), None,
                                     stream, err, 1024):
                raise RuntimeError(err.value.decode())
            return out_s, out_i

        def ops(model, c, s, b, pl, sp):
            probes = None
            if not exact:
                probes = torch.ops.argent.probe(c, s, b, pl, sp, model.centroid_codes,
                                                model.centroid_scales, model.list_sizes,
                                                model.list_summaries, args.nprobe)
            return model.scan(c, s, b, pl, sp, probes, args.k)

        def gpu_ops():
            return ops(gpu_model, g_codes, g_scales, g_bias, g_plan, g_spans)

        ref_s, ref_i, _ = ops(cpu_model, codes, qscales, qbias, plan, spans)
        got_s, got_i, _ = gpu_ops()
        svc_s, svc_i = service()
        same_cpu = torch.equal(got_i.cpu(), ref_i) and torch.equal(got_s.cpu(), ref_s)
        same_svc = torch.equal(got_i, svc_i) and torch.equal(got_s, svc_s)
        t_svc = median_ms(service)
        t_ops = median_ms(gpu_ops)
        row = {"mode": "exact" if exact else "ivf", "filter": filt, "batch": B, "k": args.k,
               "nprobe": args.nprobe, "service_ms": t_svc, "ops_ms": t_ops,
               "ratio": t_ops / t_svc, "cuda_equals_cpu": same_cpu, "ids_equal_service": same_svc}
        rows.append(row)
        print(f"{row['mode']:6} {filt[:26]:26} {t_svc:10.3f} {t_ops:9.3f} {row['ratio']:8.3f} "
              f"{str(same_cpu):>9} {str(same_svc):>9}", flush=True)

if args.json:
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1)
ok = all(r["cuda_equals_cpu"] and r["ids_equal_service"] for r in rows)
print("PASS" if ok else "FAIL: results differ", "; slowest ops/service ratio",
      f"{max(r['ratio'] for r in rows):.3f}")
sys.exit(0 if ok else 1)

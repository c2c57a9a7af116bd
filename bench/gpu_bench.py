#!/usr/bin/env python3
"""Argent's CUDA search at 80M x 128 on one GPU, beside a PyTorch baseline and (with --st-lib)
SilverTorch's public ops, on the very same tensors in the same process.

Data: SilverTorch's recipe (silvertorch_bench.py in its anchor): N items, d = 128, N/9000 lists
with lognormal sizes, items = centroid + noise, one global int8 scale, 6 categorical features of
cardinalities 2..1000; queries are noisy centroids. Argent gets the same int8 rows in its own
layout (lists padded to 16 rows, codes row-major or blocked (--codes-layout), scale = the global
scale for every item).

Prints a table per section and writes everything to --out (JSON).
  python3 bench/gpu_bench.py --lib build-gpu/python/capi/libargent_gpu.so [--st-lib st_ops.so]
"""
import argparse
import ctypes
import json
import math
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--lib", required=True)
p.add_argument("--st-lib", default="")
p.add_argument("--n", type=float, default=8e7)
p.add_argument("--batches", default="1,16,64,256,1024")
p.add_argument("--ks", default="100,1000,10000,100000")
p.add_argument("--reps", type=int, default=10)
p.add_argument("--out", default="gpu_bench.json")
p.add_argument("--skip", default="", help="sections to leave out: filters,one-query,exactness,nprobe (comma list)")
p.add_argument("--filter-cache-mb", type=float, default=256,
               help="filter cache size for the 'cached' measurements (recurring filters' exact words)")
p.add_argument("--profile-cached", action="store_true",
               help="--profile with the filter cache on (the case's filters served from it)")
p.add_argument("--profile", action="store_true", help="per-step times (ARGENT_GPU_PROFILE) of a few cases, then exit")
p.add_argument("--profile-case", default="",
               help="with --profile: these cases instead (';' between them): B,K[,ivf][,FILTER], "
                    "e.g. '64,100000;64,1000,ivf,3:4;64,1000,ivf,per-query' (FILTER: an expression "
                    "without commas, or per-query: a different one per query); 'per-query' alone "
                    "is 64,1000,ivf,per-query")
p.add_argument("--profile-ab", default="",
               help="with --profile: VAR=v1,v2,... also times each case with the environment variable "
                    "VAR set to each value in turn, --profile-rounds times (an A/B of a knob the "
                    "library reads on every batch, in one process on the same data)")
p.add_argument("--profile-rounds", type=int, default=3)
p.add_argument("--profile-seed", type=int, default=5, help="with --profile: the seed of the cases' queries")
p.add_argument("--one-query-set", type=int, default=64,
               help="the one-query IVF section: this many different queries, each timed alone")
p.add_argument("--one-query-rounds", type=int, default=7,
               help="the one-query IVF section: each query's time is its median over this many rounds")
p.add_argument("--one-query-steps", action="store_true",
               help="the one-query IVF section also prints each filter's mean step times over the queries "
                    "(ARGENT_GPU_PROFILE; one more call of each query)")
p.add_argument("--codes-layout", choices=("rows", "blocked"), default="rows",
               help="Argent's codes on the GPU: row-major (GpuIndexView::rows_layout) or blocked")
args = p.parse_args()
SKIP = set(x for x in args.skip.split(",") if x)
SECTIONS = {"filters", "one-query", "exactness", "nprobe"}
if SKIP - SECTIONS:
    raise SystemExit(f"--skip: unknown sections {sorted(SKIP - SECTIONS)}")

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
N = int(args.n)
D, K, NPROBE = 128, 1000, 32
C = max(1, round(N / 9000))
BATCHES = [int(x) for x in args.batches.split(",")]
KS = [int(x) for x in args.ks.split(",")]
R = {"N": N, "d": D, "clusters": C, "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
     "codes_layout": args.codes_layout}
print(json.dumps(R), flush=True)


def save():
    with open(args.out, "w") as f:
        json.dump(R, f, indent=1)


def bench(fn, warm=3, reps=None):
    reps = reps or args.reps
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(ts), 3)


def table(title, cols, rows):
    print(f"\n## {title}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


# ---------------- the copy-bandwidth ceiling ----------------
buf = torch.empty(4 << 30, dtype=torch.uint8, device=dev).random_(0, 255)
dst = torch.empty_like(buf)
copy_ms = bench(lambda: dst.copy_(buf), warm=2, reps=10)
COPY_GBS = 2 * buf.numel() / copy_ms / 1e6
R["copy_GBps"] = round(COPY_GBS, 1)
del buf, dst
print("copy bandwidth", R["copy_GBps"], "GB/s", flush=True)

# ---------------- data (SilverTorch's recipe) ----------------
t0 = time.time()
g = torch.Generator(device=dev)
g.manual_seed(0)
cent = torch.randn(C, D, device=dev, generator=g)
cent /= cent.norm(dim=1, keepdim=True)
w = torch.exp(0.5 * torch.randn(C, device=dev, generator=g))
sizes = torch.floor(w / w.sum() * N).long()
sizes[: N - int(sizes.sum())] += 1
offsets = torch.zeros(C + 1, dtype=torch.long, device=dev)
offsets[1:] = sizes.cumsum(0)
assign = torch.repeat_interleave(torch.arange(C, device=dev), sizes)
NOISE, GEN = 0.7, 4_000_000
items16 = torch.empty(N, D, dtype=torch.float16, device=dev)
for s in range(0, N, GEN):
    e = min(N, s + GEN)
    x = cent[assign[s:e]] + (NOISE / D**0.5) * torch.randn(e - s, D, device=dev, generator=g)
    items16[s:e] = x.half()
del x
amax = max(float(items16[s:s + GEN].abs().amax()) for s in range(0, N, GEN))
scale = amax / 127.0
items8 = torch.empty(N, D, dtype=torch.int8, device=dev)
for s in range(0, N, GEN):
    items8[s:s + GEN] = torch.round(items16[s:s + GEN].float() / scale).clamp_(-127, 127).to(torch.int8)
cent16 = cent.half()
NF, CARD = 6, [2, 5, 10, 50, 200, 1000]
gf = torch.Generator(device=dev)
gf.manual_seed(7)
fvals = torch.stack([torch.randint(1, c + 1, (N,), device=dev, generator=gf) for c in CARD], 1)

# Argent's layout of the same rows: lists padded to 16 rows, codes row-major on the GPU
# (GpuIndexView::rows_layout) or blocked (kernels/layout.h).
psizes = (sizes + 15) // 16 * 16
poff = torch.zeros(C, dtype=torch.long, device=dev)
poff[1:] = psizes.cumsum(0)[:-1]
ROWS = int(psizes.sum())
dest = poff[assign] + (torch.arange(N, device=dev) - offsets[:-1][assign])
padded = torch.zeros(ROWS, D, dtype=torch.int8, device=dev)
padded.index_copy_(0, dest, items8)
if args.codes_layout == "rows":
    codes = padded
else:
    codes = padded.view(ROWS // 16, 16, D // 4, 4).permute(0, 2, 1, 3).contiguous()
del padded
ids = torch.full((ROWS,), -1, dtype=torch.long, device=dev)
ids[dest] = torch.arange(N, device=dev)
scales = torch.zeros(ROWS, dtype=torch.float32, device=dev)
scales[dest] = scale
f_count = torch.zeros(ROWS, dtype=torch.int32, device=dev)
f_count[dest] = NF
f_offset = torch.arange(ROWS, device=dev, dtype=torch.long) * NF
f_ids = torch.arange(1, NF + 1, dtype=torch.int32, device=dev).repeat(ROWS)
f_values = torch.zeros(ROWS, NF, dtype=torch.long, device=dev)
f_values[dest] = fvals
f_values = f_values.reshape(-1)
del dest
list_offsets, list_sizes = poff.contiguous(), sizes.contiguous()
WORDS, HASHES, SEED = 2, 3, 0x5EEDB100F
sigs = torch.empty(ROWS, WORDS, dtype=torch.long, device=dev)
summaries = torch.empty(C, WORDS, dtype=torch.long, device=dev)
# Centroids quantized per row (Argent's probe scores them like items), blocked.
cs = cent.abs().amax(1) / 127.0
cq = torch.round(cent / cs[:, None]).clamp(-127, 127).to(torch.int8)
CR = (C + 15) // 16 * 16
cpad = torch.zeros(CR, D, dtype=torch.int8, device=dev)
cpad[:C] = cq
ccodes = cpad.view(CR // 16, 16, D // 4, 4).permute(0, 2, 1, 3).contiguous()
cscales = torch.zeros(CR, dtype=torch.float32, device=dev)
cscales[:C] = cs
torch.cuda.synchronize()
R["datagen_s"] = round(time.time() - t0, 1)
R["rows_padded"] = ROWS
R["index_GiB"] = round((codes.numel() + ids.numel() * 8 + scales.numel() * 4 + sigs.numel() * 8) / 2**30, 2)
print("data", R["datagen_s"], "s, rows", ROWS, flush=True)

# ---------------- Argent through libargent_gpu ----------------
lib = ctypes.CDLL(args.lib)
P, I64, I32, U64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_uint64
lib.argent_gpu_build_bloom.argtypes = [I32, I32, U64, P, P, P, P, I64, P, P, I64, P, P, P, ctypes.c_char_p, ctypes.c_int]
lib.argent_gpu_index_create.restype = P
lib.argent_gpu_index_create.argtypes = [P, P, P, P, I32, I32, U64, I32, I64, P, P, P, I64, P, P, P, P, P, P, P, P, I32, P,
                                        ctypes.c_char_p, ctypes.c_int]
lib.argent_gpu_search.argtypes = [P, P, P, I64, P, I64, I32, I32, P, P, P, P, ctypes.c_char_p, ctypes.c_int]
lib.argent_gpu_index_set_filter_cache.argtypes = [P, I64, ctypes.c_char_p, ctypes.c_int]
lib.argent_gpu_filter_cache_stats.argtypes = [P, P]
err = ctypes.create_string_buffer(1024)
stream = P(torch.cuda.current_stream().cuda_stream)


def ptr(t):
    return P(t.data_ptr())


if lib.argent_gpu_build_bloom(WORDS, HASHES, SEED, ptr(f_offset), ptr(f_count), ptr(f_ids), ptr(f_values), ROWS,
                              ptr(list_offsets), ptr(list_sizes), C, ptr(sigs), ptr(summaries), stream, err, 1024):
    raise RuntimeError(err.value.decode())
h_off = list_offsets.cpu().contiguous()
h_size = list_sizes.cpu().contiguous()
handle = lib.argent_gpu_index_create(ptr(codes), ptr(scales), ptr(ids), ptr(sigs), WORDS, HASHES, SEED, D, ROWS,
                                     ptr(list_offsets), ptr(list_sizes), ptr(summaries), C,
                                     P(h_off.data_ptr()), P(h_size.data_ptr()), ptr(f_offset), ptr(f_count),
                                     ptr(f_ids), ptr(f_values), ptr(ccodes), ptr(cscales),
                                     int(args.codes_layout == "rows"), stream, err, 1024)
if not handle:
    raise RuntimeError(err.value.decode())


def set_filter_cache(mb):
    """0: off (every batch evaluates its filters); else recurring filters are served from the cache."""
    if lib.argent_gpu_index_set_filter_cache(handle, int(mb * 2**20), err, 1024):
        raise RuntimeError(err.value.decode())


def filter_cache_stats():
    out = (ctypes.c_int64 * 4)()
    lib.argent_gpu_filter_cache_stats(handle, out)
    return {"hits": out[0], "builds": out[1], "evictions": out[2], "MiB": round(out[3] / 2**20, 1)}


def cached(fn):
    """Runs fn with the filter cache on, then turns it off again."""
    set_filter_cache(args.filter_cache_mb)
    try:
        return fn()
    finally:
        set_filter_cache(0)


def make_queries(B, seed):
    gq = torch.Generator(device=dev)
    gq.manual_seed(seed)
    cl = torch.multinomial(sizes.float(), B, replacement=True, generator=gq)
    return cent[cl] + (NOISE / D**0.5) * torch.randn(B, D, device=dev, generator=gq)


def argent_quantize(qf):  # per-query symmetric int8 (kernels/cpu/quantize.h)
    s = qf.abs().amax(1) / 127.0
    return torch.round(qf / s[:, None]).clamp(-127, 127).to(torch.int8).contiguous(), s.float().contiguous()


class Search:
    def __init__(self, qf, k, exact, nprobe=NPROBE, filters=None):
        self.q8, self.qs = argent_quantize(qf)
        self.B, self.k, self.exact, self.nprobe = qf.shape[0], k, exact, nprobe
        self.scores = torch.empty(self.B, k, dtype=torch.float32, device=dev)
        self.ids = torch.empty(self.B, k, dtype=torch.long, device=dev)
        self.stats = (ctypes.c_int64 * 5)()
        self.filters = None
        if filters:
            arr = (ctypes.c_char_p * self.B)(*[f.encode() for f in filters])
            self.filters = ctypes.cast(arr, P)
            self._keep = arr

    def __call__(self):
        if lib.argent_gpu_search(handle, ptr(self.q8), ptr(self.qs), self.B, self.filters, self.k, int(self.exact),
                                 self.nprobe, ptr(self.scores), ptr(self.ids), self.stats, stream, err, 1024):
            raise RuntimeError(err.value.decode())
        return self.ids


def recall(a, b):
    """mean |a_i & b_i| / k over rows (ids of the same query set)."""
    k = b.shape[1]
    n = max(int(a.max()), int(b.max())) + 2
    ka = (a + 1) + torch.arange(a.shape[0], device=dev)[:, None] * n
    kb = (b + 1) + torch.arange(b.shape[0], device=dev)[:, None] * n
    return round(float(torch.isin(ka, kb).sum()) / (a.shape[0] * k), 4)


def baseline(q16, k=K, ch=2_000_000):  # the user's PyTorch alternative: exact fp16 mm + topk
    vals, idxs = [], []
    for s in range(0, N, ch):
        v, i = torch.topk(q16 @ items16[s:s + ch].T, k, dim=1)
        vals.append(v)
        idxs.append(i + s)
    v = torch.cat(vals, 1)
    i = torch.cat(idxs, 1)
    v2, j = torch.topk(v, k, dim=1)
    return torch.gather(i, 1, j)


def per_query_exprs(n):
    """A different random expression with NOT per query (the filtered SilverTorch comparison)."""
    import random
    random.seed(3)
    exprs = []
    for i in range(n):
        a, (b, c), d_ = random.randint(1, 2), random.sample(range(1, 6), 2), random.randint(1, 10)
        exprs.append(f"1:{a} AND (2:{b} OR 2:{c}) AND NOT 3:{d_}")
    return exprs


if args.profile:
    import os
    # filter "per-query": per_query_exprs, a different expression for each query.
    cases = ((1, 1000, True, None), (64, 1000, True, None), (64, 1000, True, "3:4"),
             (64, 1000, True, "5:1 OR 5:2"), (64, 100000, True, None), (256, 1000, True, None),
             (256, 100000, True, None),
             (64, 1000, False, None), (256, 1000, False, None), (64, 1000, False, "3:4"),
             (64, 1000, False, "per-query"))
    if args.profile_case:
        def parse_case(spec):
            parts = spec.split(",") if spec != "per-query" else ["64", "1000", "ivf", "per-query"]
            try:
                B, k = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                raise SystemExit(f"--profile-case {spec!r}: expected B,K[,ivf][,FILTER]")
            ivf = len(parts) > 2 and parts[2] == "ivf"
            rest = parts[3 if ivf else 2:]
            if len(rest) > 1:
                raise SystemExit(f"--profile-case {spec!r}: a filter may not contain commas")
            return (B, k, not ivf, rest[0] if rest else None)
        cases = [parse_case(c.strip()) for c in args.profile_case.split(";") if c.strip()]
    if args.profile_cached:
        set_filter_cache(args.filter_cache_mb)
    for B, k, exact, f in cases:
        fs = per_query_exprs(B) if f == "per-query" else [f] * B if f else None
        s = Search(make_queries(B, args.profile_seed), k, exact, filters=fs)
        s()
        torch.cuda.synchronize()
        if args.profile_cached and fs:  # the second batch computes the filter's words: its steps
            os.environ["ARGENT_GPU_PROFILE"] = "1"
            print(f"B {B} k {k} exact {exact} filter {f}: the batch that fills the filter cache", flush=True)
        s()
        torch.cuda.synchronize()
        os.environ["ARGENT_GPU_PROFILE"] = "1"
        print(f"B {B} k {k} exact {exact} filter {f}: candidates/query {s.stats[0] // B}, stride {s.stats[3]}", flush=True)
        s()
        torch.cuda.synchronize()
        os.environ["ARGENT_GPU_PROFILE"] = "0"
        print(f"B {B} k {k} exact {exact} filter {f}: search ms {bench(s, warm=1)} (median of {args.reps})",
              flush=True)
        if args.profile_ab:
            var, values = args.profile_ab.split("=", 1)
            values = values.split(",")
            for v in values:  # the steps of one batch with each value
                os.environ[var] = v
                os.environ["ARGENT_GPU_PROFILE"] = "1"
                print(f"B {B} k {k} exact {exact} filter {f}: {var}={v}", flush=True)
                s()
                torch.cuda.synchronize()
                os.environ["ARGENT_GPU_PROFILE"] = "0"
            for r in range(args.profile_rounds):
                ms = []
                for v in values:
                    os.environ[var] = v
                    ms.append(f"{var}={v} {bench(s, warm=1)}")
                print(f"B {B} k {k} exact {exact} filter {f}: round {r + 1} search ms " + " | ".join(ms), flush=True)
            os.environ.pop(var, None)
    if args.profile_cached:
        print("filter cache:", json.dumps(filter_cache_stats()), flush=True)
    raise SystemExit(0)

SCAN_BYTES = ROWS * D + ROWS * 4  # codes + scales: what an exact scan must read
# ---------------- exact search: batch x K, plus the baseline ----------------
rows = []
truth = {}
for B in BATCHES:
    qf = make_queries(B, 1000 + B)
    base_ms = None
    if B <= 256:
        q16 = qf.half()
        base_ms = bench(lambda: baseline(q16), warm=1, reps=3 if B > 64 else 5)
        truth[B] = baseline(q16)
    for k in KS:
        s = Search(qf, k, True)
        ms = bench(s)
        r = {"B": B, "K": k, "ms": ms, "QPS": round(B / ms * 1e3), "GB/s": round(SCAN_BYTES / ms / 1e6),
             "of copy BW": f"{SCAN_BYTES / ms / 1e6 / COPY_GBS:.0%}", "extra MiB": round(s.stats[2] / 2**20),
             "rescued": s.stats[1], "resorted": s.stats[4]}
        if base_ms and k == K:
            r["PyTorch ms"] = base_ms
            r["speedup"] = round(base_ms / ms, 1)
            r["recall vs fp16"] = recall(s(), truth[B])
        rows.append(r)
        print(json.dumps(r), flush=True)
R["exact"] = rows
table("Exact search, no filter", ["B", "K", "ms", "QPS", "GB/s", "of copy BW", "extra MiB", "rescued", "resorted",
                                  "PyTorch ms", "speedup", "recall vs fp16"], rows)
save()

# ---------------- filters: exact and IVF, none / 10 % / 1 % ----------------
FILTERS = {"none": None, "10%": "3:4", "1%": "5:1 OR 5:2", "NOT": "1:1 AND NOT 3:2"}
rows = []
for B in [b for b in (1, 64, 256) if b in BATCHES and "filters" not in SKIP]:
    qf = make_queries(B, 1000 + B)
    for name, f in FILTERS.items():
        for exact in (True, False):
            s = Search(qf, K, exact, filters=[f] * B if f else None)
            ms = bench(s)
            rows.append({"B": B, "filter": name, "mode": "exact" if exact else f"IVF nprobe {NPROBE}", "ms": ms,
                         "QPS": round(B / ms * 1e3), "candidates/query": s.stats[0] // B, "rescued": s.stats[1], "resorted": s.stats[4]})
            if f:  # the same filter recurring: its words from the filter cache (built in the warm-up)
                ms_c = cached(lambda: bench(s))
                rows[-1].update({"ms cached": ms_c, "QPS cached": round(B / ms_c * 1e3)})
            print(json.dumps(rows[-1]), flush=True)
R["filtered"] = rows
table("Filters (K = 1000; 'cached': the filter's words from the filter cache)",
      ["B", "filter", "mode", "ms", "QPS", "ms cached", "QPS cached", "candidates/query", "rescued", "resorted"], rows)
save()

# ---------------- one-query IVF under filters, query by query ----------------
# A B = 1 row above times one query again and again: the lists it probes (~40 MB at nprobe 32)
# stay in the 50 MB L2 between calls, and one query decides whether a filter is slower. Here
# each of --one-query-set different queries is timed alone under each filter; a call follows a
# call of another query under the same filter (filter-major order, the filters' order turned
# every round), so every filter meets the same cache state. Each query's time is its median
# over the rounds; "faster" counts the queries whose filtered time is at most their unfiltered.
def mean_steps(searches):
    """Each step's mean ms over one call of each search (ARGENT_GPU_PROFILE's lines on stderr,
    read back from a temporary file)."""
    import os
    import tempfile
    sys_err = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as f:
        os.dup2(f.fileno(), 2)
        os.environ["ARGENT_GPU_PROFILE"] = "1"
        try:
            for s in searches:
                s()
                torch.cuda.synchronize()
        finally:
            os.environ["ARGENT_GPU_PROFILE"] = "0"
            os.dup2(sys_err, 2)
            os.close(sys_err)
        f.seek(0)
        sums, lines = {}, 0
        for line in f:
            if not line.startswith("gpu_search steps (ms):"):
                continue
            lines += 1
            parts = line.split(":", 1)[1].split()
            i = 0
            while i + 1 < len(parts):  # "name value" pairs; a name may hold spaces
                j = i
                while j < len(parts):
                    try:
                        v = float(parts[j])
                        break
                    except ValueError:
                        j += 1
                if j >= len(parts):
                    break
                name = " ".join(parts[i:j])
                sums[name] = sums.get(name, 0.0) + v
                i = j + 1
    return {k: round(v / max(1, lines), 4) for k, v in sums.items()} | {"batches": lines}


def one_query_section(cache_mb):
    Q = args.one_query_set
    qf = make_queries(Q, 4242)
    names = list(FILTERS)
    searches = {n: [Search(qf[i:i + 1], K, False, filters=[FILTERS[n]] if FILTERS[n] else None)
                    for i in range(Q)] for n in names}
    if cache_mb:
        set_filter_cache(cache_mb)
    for n in names:  # warm-up; with the cache on, the second call computes a filter's words
        for s in searches[n]:
            s(); s()
    times = {n: [[] for _ in range(Q)] for n in names}
    for r in range(args.one_query_rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            for i, s in enumerate(searches[n]):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                s()
                torch.cuda.synchronize()
                times[n][i].append((time.perf_counter() - t0) * 1e3)
    if args.one_query_steps:
        for n in names:
            print(f"one-query steps, filter {n}, filter cache {bool(cache_mb)}: " +
                  json.dumps(mean_steps(searches[n])), flush=True)
    if cache_mb:
        set_filter_cache(0)
    med = {n: [statistics.median(t) for t in times[n]] for n in names}
    out = []
    for n in names:
        row = {"filter": n, "filter cache": bool(cache_mb) and n != "none", "queries": Q,
               "mean ms": round(statistics.mean(med[n]), 4), "median ms": round(statistics.median(med[n]), 4),
               "p90 ms": round(sorted(med[n])[int(0.9 * (Q - 1))], 4)}
        if n != "none":
            d = [a - b for a, b in zip(med[n], med["none"])]
            row["mean - none, ms"] = round(statistics.mean(d), 4)
            row["faster or level"] = f"{sum(x <= 0 for x in d)} of {Q}"
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


if 1 in BATCHES and "one-query" not in SKIP:
    rows = one_query_section(0) + one_query_section(args.filter_cache_mb)
    R["one_query_ivf"] = rows
    table(f"One query at a time, IVF nprobe {NPROBE}, K = 1000: each query's median of "
          f"{args.one_query_rounds} rounds", ["filter", "filter cache", "queries", "mean ms", "median ms",
                                              "p90 ms", "mean - none, ms", "faster or level"], rows)
    save()

# Exactness at full scale: filtered exact results == a brute force over eligible rows (same
# int8 arithmetic in fp32, exact for |dot| < 2^24), for expressions with NOT.
def eligible(expr):
    f = fvals
    if expr == "1:1 AND NOT 3:2":
        return (f[:, 0] == 1) & ~(f[:, 2] == 2)
    if expr == "NOT (2:1 OR 4:3) AND 6:17":
        return ~((f[:, 1] == 1) | (f[:, 3] == 3)) & (f[:, 5] == 17)
    raise KeyError(expr)


checks = []
for expr, from_cache in [(e, c) for e in ("1:1 AND NOT 3:2", "NOT (2:1 OR 4:3) AND 6:17")
                         for c in (False, True)] if "exactness" not in SKIP else ():
    qf = make_queries(8, 77)
    s = Search(qf, K, True, filters=[expr] * 8)
    if from_cache:  # the second batch computes the cache's words, the third reads them
        set_filter_cache(args.filter_cache_mb)
        s(); s()
    got = s().clone()
    set_filter_cache(0)
    got_s = s.scores.clone()
    ok = eligible(expr)
    qf32 = s.q8.float()
    best_s, best_i = [], []
    for a in range(0, N, 4_000_000):
        b = min(N, a + 4_000_000)
        sc = (qf32 @ items8[a:b].float().T) * s.qs[:, None] * scale
        sc[:, ~ok[a:b]] = -float("inf")
        v, i = torch.topk(sc, K, dim=1)
        best_s.append(v)
        best_i.append(i + a)
    v, j = torch.topk(torch.cat(best_s, 1), K, dim=1)
    ref_ids = torch.gather(torch.cat(best_i, 1), 1, j)
    violations = int((~ok[got.clamp(min=0)] & (got >= 0)).sum())
    score_mismatch = int((v != got_s).sum())
    dropped = int((~torch.isin(ref_ids[v > got_s[:, -1:]], got)).sum())
    checks.append({"filter": expr, "filter cache": from_cache, "eligible": round(float(ok.float().mean()), 4), "violations": violations,
                   "score_mismatches_vs_bruteforce": score_mismatch, "true_matches_dropped": dropped})
    print(json.dumps(checks[-1]), flush=True)
R["filter_exactness"] = checks
save()

# ---------------- IVF: recall vs nprobe (K = 100, B = 256) ----------------
rows = []
if 256 in truth and "nprobe" not in SKIP:
    qf = make_queries(256, 1256)
    t100 = truth[256][:, :100]
    for nprobe in (4, 8, 16, 32):
        s = Search(qf, 100, False, nprobe=nprobe)
        ms = bench(s)
        rows.append({"nprobe": nprobe, "ms": ms, "QPS": round(256 / ms * 1e3), "recall@100": recall(s(), t100)})
        print(json.dumps(rows[-1]), flush=True)
R["ivf_recall100_B256"] = rows
table("IVF, K = 100, B = 256", ["nprobe", "ms", "QPS", "recall@100"], rows)
save()

# ---------------- SilverTorch side by side ----------------
if args.st_lib:
    torch.ops.load_library(args.st_lib)
    DIV = 4
    item_ids = torch.arange(N, dtype=torch.long, device=dev)

    def st_q8(qf):
        return torch.round(qf / (qf.abs().amax() / 127)).clamp(-127, 127).to(torch.int8).contiguous()

    def st_probe(q16):
        _, cid = torch.topk((q16 @ cent16.T).float(), NPROBE, dim=1)
        return cid.contiguous(), sizes[cid].contiguous()

    def mkfresh(B):
        return (torch.full((B, 32), -65504.0, dtype=torch.float16, device=dev),
                torch.zeros((B, 32), dtype=torch.int32, device=dev), torch.zeros(1, dtype=torch.long, device=dev))

    def take_topk(sc, ix, fresh):
        fs, fi, fd = fresh
        return torch.ops.st.take_top_k_and_gather_from_main_and_fresh(sc, fs, ix, fi, K, ["item_id"], [item_ids], [fd], 2)

    rows = []
    for B in (64, 256):
        if B not in truth:
            continue
        qf = make_queries(B, 1000 + B)
        q16, q8 = qf.half(), st_q8(qf)
        fresh = mkfresh(B)

        def st_e2e():
            c, l = st_probe(q16)
            s_, i_ = torch.ops.st.fused_kmean_ann(offsets, c, l, items8, q8, int(l.sum(1).max()), divisor_for_int8=DIV)
            return take_topk(s_, i_, fresh)
        st_ms = bench(st_e2e)
        st_ids = st_e2e()[3]["item_id"].view(B, K)
        s = Search(qf, K, False)
        ms = bench(s)
        rows.append({"B": B, "SilverTorch ms": st_ms, "SilverTorch QPS": round(B / st_ms * 1e3),
                     "SilverTorch recall@1000": recall(st_ids, truth[B]), "Argent ms": ms,
                     "Argent QPS": round(B / ms * 1e3), "Argent recall@1000": recall(s(), truth[B]),
                     "speedup": round(st_ms / ms, 2)})
        print(json.dumps(rows[-1]), flush=True)
    R["silvertorch_ivf"] = rows
    table("IVF vs SilverTorch (nprobe 32, K = 1000, same items and float queries)",
          ["B", "SilverTorch ms", "SilverTorch QPS", "SilverTorch recall@1000", "Argent ms", "Argent QPS",
           "Argent recall@1000", "speedup"], rows)
    save()
    # Filtered, B = 64: SilverTorch's partial-mask co-design path vs Argent, same expressions.
    try:
        del items16
        torch.cuda.empty_cache()
        BK = 5
        st_fofs = torch.arange(0, N * NF + 1, dtype=torch.long, device=dev)
        bidx, bofs = torch.ops.st.bloom_index_build(torch.arange(1, NF + 1, dtype=torch.int32, device=dev), st_fofs,
                                                    fvals.reshape(-1).contiguous(), 4.0, BK)
        del st_fofs
        exprs = per_query_exprs(64)
        qf = make_queries(64, 77)
        q16, q8 = qf.half(), st_q8(qf)
        fresh = mkfresh(64)
        _, (pdata, pofs) = torch.ops.st.parse_expression_query_batch(exprs, torch.ones(64, dtype=torch.long), BK, True, 5)

        def st_filtered():
            c, l = st_probe(q16)
            pm = torch.ops.st.bloom_index_search_batch_return_partial_response(bidx, bofs, pdata, pofs,
                                                                               offsets[c].contiguous(), l, BK, BK)
            s_, i_ = torch.ops.st.fused_kmean_ann_with_partial_masks(offsets, c, l, items8, q8, int(l.sum(1).max()),
                                                                     pm[0], pm[1], pm[2], divisor_for_int8=DIV)
            return take_topk(s_, i_, fresh)
        st_ms = bench(st_filtered)
        s = Search(qf, K, False, filters=exprs)
        ms = bench(s)
        R["silvertorch_filtered_B64"] = {"expression_example": exprs[0], "SilverTorch ms": st_ms, "Argent ms": ms,
                                         "speedup": round(st_ms / ms, 2)}
        print(json.dumps(R["silvertorch_filtered_B64"]), flush=True)
        # One expression for the whole batch (an eligibility rule every query shares): each
        # batch evaluating it, and Argent with the rule's words from its filter cache.
        shared = [exprs[0]] * 64
        _, (pdata, pofs) = torch.ops.st.parse_expression_query_batch(shared, torch.ones(64, dtype=torch.long), BK, True, 5)
        st_ms = bench(st_filtered)
        s = Search(qf, K, False, filters=shared)
        ms = bench(s)
        ms_c = cached(lambda: bench(s))
        R["silvertorch_shared_filter_B64"] = {"expression": exprs[0], "SilverTorch ms": st_ms, "Argent ms": ms,
                                              "speedup": round(st_ms / ms, 2), "Argent ms, filter cached": ms_c,
                                              "speedup, filter cached": round(st_ms / ms_c, 2)}
        print(json.dumps(R["silvertorch_shared_filter_B64"]), flush=True)
    except Exception as ex:  # noqa: BLE001 - report and keep the rest of the results
        R["silvertorch_filtered_B64"] = repr(ex)[:400]
        print("SilverTorch filtered failed:", ex, flush=True)
    save()
print("done", flush=True)

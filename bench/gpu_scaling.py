#!/usr/bin/python3
"""Scaling over GPUs: the same index served by `mpirun -np G argent serve` for each G, answers
checked against one process, then throughput, latency and the collectives' share measured.

    /usr/bin/python3 bench/gpu_scaling.py --argent build-gpu/launch/argent --gpus 1,2,4,8 \\
        --synthetic 80000000 --dim 128 --nlist 8888 --partitions 64 \\
        --work-dir /tmp/argent-gpus --out-dir bench/results --name gpu-scaling-h200x8

What it does, for each G in --gpus:
1. The index: --index DIR, or built once under work-dir with `argent build-index --synthetic`
   (reused while the parameters match). Queries: --queries-n random normal vectors (.npy).
2. The reference: `argent search` in one process (--device, so one GPU with cuda), K results
   per query, exact and IVF (nprobe).
3. `mpirun -np G argent serve` with serve.backend --backend (cuda: NCCL, one GPU per rank),
   search.device --device, serve.max_batch the largest --concurrency, a Prometheus endpoint.
4. Equality: the reference's queries through the gateway (`argent query`), exact and IVF; the
   printed answers (ids and scores) must equal the reference's byte for byte.
5. Load, for each mode (exact, ivf) and each --concurrency C: `argent query --random R
   --concurrency C` (C requests in flight, so the coordinator batches up to C per step), with
   the metrics scraped before and after: QPS, p50/p99 (client side), mean batch, step time and
   all-gather time per step (argent_rank_step_seconds, argent_all_gather_seconds), and the
   scaling efficiency QPS(G) / (G * QPS(first G)).
6. CSV and JSON rows, a printed table, and a PNG (QPS and all-gather time against G) where
   matplotlib is installed (`--replot OUT/NAME.json` draws it later elsewhere).
Exit status 1 when an answer differed or a request failed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

from served_cluster import ServedCluster, write_config  # noqa: E402


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def prepare_index(args):
    """The index to serve: --index, or a synthetic one built once under work-dir."""
    if args.index:
        return args.index
    index = os.path.join(args.work_dir, "index")
    stamp = os.path.join(args.work_dir, "params.json")
    params = {k: getattr(args, k) for k in ("synthetic", "dim", "nlist", "partitions", "seed")}
    if os.path.exists(stamp) and json.load(open(stamp)) == params and os.path.isdir(index):
        return index
    shutil.rmtree(index, ignore_errors=True)
    os.makedirs(args.work_dir, exist_ok=True)
    t0 = time.time()
    run([args.argent, "build-index", "--out", index, "--synthetic", str(args.synthetic),
         "--dim", str(args.dim), "--nlist", str(args.nlist), "--partitions",
         str(args.partitions), "--seed", str(args.seed)])
    print(f"index built in {time.time() - t0:.1f} s", flush=True)
    json.dump(params, open(stamp, "w"))
    return index


def mode_flags(args, mode):
    return ["--exact"] if mode == "exact" else ["--nprobe", str(args.nprobe)]


def metrics(port):
    """Prometheus text -> {name: value}, label sets summed (sums and counts of histograms)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        name = name.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def per_event(before, after, name):
    """Mean of a histogram over the events between two scrapes (seconds), or None."""
    n = after.get(name + "_count", 0.0) - before.get(name + "_count", 0.0)
    s = after.get(name + "_sum", 0.0) - before.get(name + "_sum", 0.0)
    return s / n if n > 0 else None


def start_cluster(args, index, gpus, run_dir):
    """`mpirun -np gpus argent serve` on the index with the harness's settings."""
    endpoint = "ipc://" + os.path.join(run_dir, "gateway.sock")
    config = os.path.join(run_dir, "serve.yaml")
    write_config(config, {
        "index": {"dir": index},
        "serve": {"endpoint": endpoint, "backend": args.backend,
                  "max_batch": max(args.concurrency), "max_queue": 1000000},
        "search": {"device": args.device},
        "metrics": {"endpoint": f"127.0.0.1:{args.metrics_port}"}})
    cluster = ServedCluster(args.argent, config, endpoint, gpus,
                            os.path.join(run_dir, "serve.log"), args.mpirun, args.mpirun_args,
                            args.startup_s)
    print(f"{gpus} ranks serving after {cluster.startup_s:.1f} s", flush=True)
    return cluster


def answers(args, cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def load(args, cluster, mode, concurrency, out_json):
    before = metrics(args.metrics_port)
    run([args.argent, "query", "--endpoint", cluster.endpoint, "--random", str(args.requests),
         "--seed", "7", "--concurrency", str(concurrency), "--k", str(args.k), "--quiet",
         "--summary-json", out_json, *mode_flags(args, mode)])
    after = metrics(args.metrics_port)
    summary = json.load(open(out_json))
    ms = lambda v: round(v * 1e3, 3) if v is not None else None  # noqa: E731
    return {"qps": summary["qps"], "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
            "errors": summary["errors"],
            "mean_batch": round(per_event(before, after, "argent_batch_size") or 0, 1),
            "step_ms": ms(per_event(before, after, "argent_rank_step_seconds")),
            "all_gather_ms": ms(per_event(before, after, "argent_all_gather_seconds"))}


def try_plot(rows, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (--replot draws it elsewhere)")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in sorted({r["mode"] for r in rows}):
        for c in sorted({r["concurrency"] for r in rows}):
            sel = sorted((r for r in rows if r["mode"] == mode and r["concurrency"] == c),
                         key=lambda r: r["gpus"])
            g = [r["gpus"] for r in sel]
            a.plot(g, [r["qps"] for r in sel], marker="o", label=f"{mode}, {c} in flight")
            b.plot(g, [r["all_gather_ms"] or 0 for r in sel], marker="o", label=f"{mode}, {c}")
    gs = sorted({r["gpus"] for r in rows})
    for ax, label in ((a, "QPS"), (b, "all-gather ms per step")):
        ax.set_xlabel("GPUs (ranks)")
        ax.set_ylabel(label)
        ax.set_xticks(gs)
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("plot:", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--argent", default=os.path.join(ROOT, "build", "launch", "argent"))
    ap.add_argument("--gpus", default="1,2", help="rank counts to serve with, comma-separated")
    ap.add_argument("--index", default="", help="serve this index instead of building one")
    ap.add_argument("--synthetic", type=int, default=200000, help="items of the built index")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (0: automatic)")
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries-n", type=int, default=256, help="queries checked for equality")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--modes", default="exact,ivf")
    ap.add_argument("--concurrency", default="64,256", help="requests in flight per load run")
    ap.add_argument("--requests", type=int, default=20000, help="requests per load run")
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cuda",
                    help="serve.backend: cpu = MPI collectives, cuda = NCCL")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda", help="search.device")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpirun-args", default="")
    ap.add_argument("--metrics-port", type=int, default=19464)
    ap.add_argument("--startup-s", type=float, default=900, help="longest wait for the cluster")
    ap.add_argument("--work-dir", default="/tmp/argent-gpus")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--name", default="gpu-scaling")
    ap.add_argument("--replot", metavar="RESULT.json", help="only draw the PNG of a result")
    args = ap.parse_args()
    if args.replot:
        r = json.load(open(args.replot))
        try_plot(r["rows"], args.replot[:-len(".json")] + ".png", r["title"])
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    gpus = [int(g) for g in args.gpus.split(",")]
    modes = args.modes.split(",")
    if set(modes) - {"exact", "ivf"}:
        raise SystemExit(f"--modes: exact and/or ivf, not {args.modes}")
    os.makedirs(args.out_dir, exist_ok=True)

    index = prepare_index(args)
    queries = os.path.join(args.work_dir, "queries.npy")
    rng = np.random.default_rng(args.seed)
    np.save(queries, rng.standard_normal((args.queries_n, args.dim), dtype=np.float32))
    reference = {}
    for mode in modes:
        reference[mode] = answers(args, [args.argent, "search", "--index", index, "--queries",
                                         queries, "--k", str(args.k), "--device", args.device,
                                         *mode_flags(args, mode)])

    rows, errors = [], []
    for g in gpus:
        run_dir = os.path.join(args.work_dir, f"run-{g}")
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        cluster = start_cluster(args, index, g, run_dir)
        try:
            for mode in modes:
                served = answers(args, [args.argent, "query", "--endpoint", cluster.endpoint,
                                        "--queries", queries, "--k", str(args.k),
                                        *mode_flags(args, mode)])
                same = served == reference[mode]
                print(f"{g} ranks, {mode}: answers {'equal' if same else 'DIFFER from'} one "
                      f"process's ({args.queries_n} queries, k {args.k})", flush=True)
                if not same:
                    errors.append(f"{g} ranks, {mode}: answers differ from one process's")
                for c in args.concurrency:
                    r = load(args, cluster, mode, c, os.path.join(run_dir, f"{mode}-{c}.json"))
                    r.update({"gpus": g, "mode": mode, "concurrency": c, "equal": same,
                              "startup_s": round(cluster.startup_s, 1)})
                    if r["errors"]:
                        errors.append(f"{g} ranks, {mode}, {c} in flight: {r['errors']} errors")
                    if r["step_ms"] is None or r["all_gather_ms"] is None:
                        errors.append(f"{g} ranks, {mode}, {c} in flight: no step or all-gather "
                                      "times in the metrics")
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            cluster.stop()

    for r in rows:
        base = next((b for b in rows if b["gpus"] == gpus[0] and b["mode"] == r["mode"]
                     and b["concurrency"] == r["concurrency"]), None)
        r["efficiency"] = round(r["qps"] * gpus[0] / (r["gpus"] * base["qps"]), 3) \
            if base and base["qps"] > 0 else None
    cols = ["gpus", "mode", "concurrency", "qps", "p50_ms", "p99_ms", "mean_batch", "step_ms",
            "all_gather_ms", "efficiency", "equal", "errors", "startup_s"]
    with open(os.path.join(args.out_dir, args.name + ".csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(str(r[c]) for c in cols) + "\n")
    title = (f"{'built ' + str(args.synthetic) if not args.index else args.index} x {args.dim}, "
             f"K {args.k}, nprobe {args.nprobe}, backend {args.backend}, device {args.device}")
    json.dump({"command": " ".join(sys.argv), "title": title, "rows": rows, "errors": errors},
              open(os.path.join(args.out_dir, args.name + ".json"), "w"), indent=1)
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    try_plot(rows, os.path.join(args.out_dir, args.name + ".png"), title)
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

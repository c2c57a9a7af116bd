#!/usr/bin/python3
"""Scale harness: a served cluster under search and write load from several client processes,
with rebalances mid-run; every answer verified; QPS and latency over time as CSV and PNG.

    /usr/bin/python3 bench/scale_bench.py --ranks 4 --standby 3 --items 100000 --dim 64 \\
        --clients 3 --writers 1 --duration 60 --rebalance activate:3@15 --rebalance drain:1@35 \\
        --work-dir /tmp/argent-scale --out-dir bench/results

What it does:
1. `argent synth` draws N clustered items with features; every item also gets the feature
   97:0 ("built"). `argent build-index` builds the index once (reused while the parameters
   match); each run serves a fresh copy, since writes change the index directory.
2. The reference: `argent search --exact --filter 97:0` in one process, for every query.
   Writers only add items with 97:1 (and their id as feature 96), so a search filtered on 97:0
   has exactly this answer whatever the writers did and wherever the partitions are.
3. `mpirun -np RANKS argent serve` with serve.standby_ranks (the standby ranks start empty).
4. --clients search processes send exact searches filtered on 97:0 back to back and compare
   every answer (ids and float32 scores) with the reference; --writers processes upsert batches
   of new items and record every acknowledged id.
5. The main process starts each --rebalance PLAN:RANK@SECONDS (or even@SECONDS) at its time and
   follows it to the end through Stats: the rebalance windows.
6. Afterwards every acknowledged write is read back (exactly once, by its id feature), and
   the live item count must be the built items plus the acknowledged ones.
7. Per one-second bin: search QPS, p50/p99 latency (client side), writes/s, whether a rebalance
   ran: CSV, and a PNG with the rebalance windows shaded; a summary (before / during / after)
   as JSON and printed. Exit status 1 when any answer was wrong, missing, or a write was lost.

--backend cuda serves with NCCL collectives (one GPU per rank, so ranks <= GPUs; partition moves
go through them too). --device cuda serves with search.device: cuda (each rank scans on GPU local_rank % GPUs); the
reference stays the CPU's exact search, so every CUDA answer is checked against the CPU's.
Without matplotlib (a GPU box) the PNG is skipped; `--replot OUT/NAME.json` draws it later from
NAME.csv and NAME.json on a machine that has it. Without pyzmq the client runs on libzmq through
ctypes (python/argent/_zmq.py); the line "zmq backend: ..." says which.
"""

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

from served_cluster import ServedCluster, write_config  # noqa: E402

BUILT = 97    # (97, 0): an item of the build; (97, 1): written during the run
ID_FEATURE = 96


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def prepare(args, argent):
    """Synthetic items and the built index under work-dir (reused when the parameters match)."""
    data = os.path.join(args.work_dir, "data")
    index = os.path.join(args.work_dir, "index")
    stamp = os.path.join(args.work_dir, "params.json")
    params = {k: getattr(args, k) for k in ("items", "dim", "queries", "seed", "partitions")}
    if os.path.exists(stamp) and json.load(open(stamp)) == params and os.path.isdir(index):
        return data, index
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(data)
    run([argent, "synth", "--n", str(args.items), "--dim", str(args.dim), "--queries",
         str(args.queries), "--seed", str(args.seed), "--out", data])
    path = os.path.join(data, "features.jsonl")
    with open(path) as f, open(path + ".tmp", "w") as out:
        seen = set()
        for line in f:
            item = json.loads(line)
            item["features"][str(BUILT)] = 0
            seen.add(item["id"])
            out.write(json.dumps(item) + "\n")
    ids = np.load(os.path.join(data, "ids.npy"))
    with open(path + ".tmp", "a") as out:  # items without a line get one too
        for i in ids.tolist():
            if i not in seen:
                out.write(json.dumps({"id": i, "features": {str(BUILT): 0}}) + "\n")
    os.replace(path + ".tmp", path)
    run([argent, "build-index", "--embeddings", os.path.join(data, "items.npy"), "--ids",
         os.path.join(data, "ids.npy"), "--features", path, "--partitions",
         str(args.partitions), "--out", index])
    json.dump(params, open(stamp, "w"))
    return data, index


def reference(args, argent, index, queries_path):
    out = subprocess.run([argent, "search", "--index", index, "--queries", queries_path,
                          "--exact", "--k", str(args.k), "--filter", f"{BUILT}:0"],
                         check=True, capture_output=True, text=True).stdout
    ref = {}
    for line in out.splitlines():
        r = json.loads(line)
        ref[r["query"]] = (r["ids"], np.array(r["scores"], dtype=np.float32).tolist())
    return ref


def search_client(i, endpoint, queries, ref, k, start, stop_at, out_path):
    from argent_client import Client, ArgentError
    rng = np.random.default_rng(1000 + i)
    records, wrong, failed, first = [], 0, 0, ""
    with Client(endpoint, timeout_s=60) as c:
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < stop_at:
            q = int(rng.integers(len(queries)))
            t0 = time.time()
            try:
                r = c.search(queries[q], k=k, exact=True, filter=f"{BUILT}:0")
            except (ArgentError, TimeoutError) as e:
                failed += 1
                first = first or f"query {q}: {e}"
                records.append((t0 - start, (time.time() - t0) * 1e3, 0))
                continue
            lat = (time.time() - t0) * 1e3
            ids, scores = ref[q]
            got = np.array(list(r.scores), dtype=np.float32).tolist()
            ok = list(r.ids) == ids and got == scores
            if not ok:
                wrong += 1
                first = first or f"query {q}: got {list(r.ids)} want {ids}"
            records.append((t0 - start, lat, 1 if ok else 0))
    np.save(out_path + ".npy", np.array(records, dtype=np.float64).reshape(-1, 3))
    json.dump({"wrong": wrong, "failed": failed, "first": first}, open(out_path + ".json", "w"))


def write_client(i, endpoint, dim, batch, start, stop_at, out_path):
    from argent_client import Client, ArgentError
    rng = np.random.default_rng(2000 + i)
    next_id = (i + 1) * 10**12
    acked, times, failed, first = [], [], 0, ""
    with Client(endpoint, timeout_s=60) as c:
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < stop_at:
            items = []
            for _ in range(batch):
                x = rng.standard_normal(dim).astype(np.float32)
                items.append((next_id, x, {BUILT: 1, ID_FEATURE: next_id % (1 << 62)}))
                next_id += 1
            t0 = time.time()
            try:
                c.upsert(items)
            except (ArgentError, TimeoutError) as e:
                failed += 1
                first = first or str(e)
                continue
            times.append((t0 - start, (time.time() - t0) * 1e3))
            acked.extend(int(it[0]) for it in items)
    np.save(out_path + ".npy", np.array(times, dtype=np.float64).reshape(-1, 2))
    json.dump({"acked": acked, "failed": failed, "first": first}, open(out_path + ".json", "w"))


def parse_rebalances(specs):
    out = []
    for s in specs:
        plan, at = s.split("@")
        name, _, rank = plan.partition(":")
        out.append((float(at), name, int(rank) if rank else -1))
    return sorted(out)


def drive_rebalances(endpoint, plans, start, windows, errors):
    from argent_client import Client
    with Client(endpoint, timeout_s=60) as c:
        for at, plan, rank in plans:
            while time.time() < start + at:
                time.sleep(0.01)
            t0 = time.time() - start
            reply = c.rebalance(plan, rank)
            moves = len(reply.planned)
            while True:
                p = c.stats().rebalance
                if p.state != "running":
                    break
                time.sleep(0.05)
            t1 = time.time() - start
            windows.append({"plan": plan, "rank": rank, "start_s": t0, "end_s": t1, "moves": moves,
                            "bytes": p.bytes_moved, "forwarded": p.forwarded, "state": p.state,
                            "epoch": c.stats().partition_map_epoch})
            print(f"rebalance {plan} {rank}: {moves} moves, {p.bytes_moved} bytes, "
                  f"{p.forwarded} writes forwarded, {t0:.1f}-{t1:.1f} s: {p.state} {p.error}",
                  flush=True)
            if p.state != "done":
                errors.append(f"rebalance {plan} {rank}: {p.state} {p.error}")


def summarize(records, writes, windows, duration):
    """Per-second bins and the before/during/after summary."""
    bins = []
    for b in range(int(duration)):
        sel = records[(records[:, 0] >= b) & (records[:, 0] < b + 1)]
        wsel = writes[(writes[:, 0] >= b) & (writes[:, 0] < b + 1)] if len(writes) else writes
        during = any(w["start_s"] < b + 1 and w["end_s"] > b for w in windows)
        lat = sel[:, 1]
        bins.append({"t_s": b, "qps": len(sel), "p50_ms": float(np.percentile(lat, 50)) if len(lat) else 0.0,
                     "p99_ms": float(np.percentile(lat, 99)) if len(lat) else 0.0,
                     "writes_per_s": len(wsel), "rebalancing": int(during)})

    def phase(mask, seconds):
        sel = records[mask]
        if not len(sel) or seconds <= 0:
            return {"seconds": seconds, "qps": 0, "p50_ms": 0, "p99_ms": 0, "queries": 0}
        return {"seconds": seconds, "queries": int(len(sel)), "qps": len(sel) / seconds,
                "p50_ms": float(np.percentile(sel[:, 1], 50)),
                "p99_ms": float(np.percentile(sel[:, 1], 99))}

    # A query belongs to the phase in which it was sent.
    t = records[:, 0]
    in_window = np.zeros(len(t), dtype=bool)
    for w in windows:
        in_window |= (t >= w["start_s"]) & (t < w["end_s"])
    first = min((w["start_s"] for w in windows), default=duration)
    last = max((w["end_s"] for w in windows), default=duration)
    summary = {"before": phase(t < first, first),
               "during": phase(in_window, sum(w["end_s"] - w["start_s"] for w in windows)),
               "after": phase((t >= last) & ~in_window, duration - last)}
    return bins, summary


def plot(bins, windows, path, title):
    import matplotlib  # only here: the harness itself runs where matplotlib is missing
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [b["t_s"] + 0.5 for b in bins]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    a1.plot(t, [b["qps"] for b in bins], label="search QPS")
    a1.plot(t, [b["writes_per_s"] for b in bins], label="upsert requests/s")
    a1.set_ylabel("per second")
    a1.legend(loc="lower left")
    a2.plot(t, [b["p50_ms"] for b in bins], label="p50")
    a2.plot(t, [b["p99_ms"] for b in bins], label="p99")
    a2.set_ylabel("search latency (ms)")
    a2.set_xlabel("seconds")
    a2.legend(loc="upper left")
    for ax in (a1, a2):
        for w in windows:
            ax.axvspan(w["start_s"], w["end_s"], color="orange", alpha=0.25)
    for w in windows:
        a1.text(w["start_s"], a1.get_ylim()[1] * 0.95, f" {w['plan']} {w['rank'] if w['rank'] >= 0 else ''}",
                va="top", fontsize=8)
    a1.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def try_plot(bins, windows, path, title):
    """plot(), or a note when matplotlib is missing (the CSV and JSON hold what --replot needs)."""
    try:
        plot(bins, windows, path, title)
    except ImportError as e:
        json_path = path[:-len(".png")] + ".json"
        print(f"note: no {os.path.basename(path)} ({e}); draw it where matplotlib is installed "
              f"with `bench/scale_bench.py --replot {json_path}`", flush=True)


def replot(json_path):
    """The PNG of an earlier run from its NAME.json (windows, title) and NAME.csv (bins)."""
    base = json_path[:-len(".json")] if json_path.endswith(".json") else json_path
    result = json.load(open(base + ".json"))
    with open(base + ".csv") as f:
        header = f.readline().strip().split(",")
        bins = [dict(zip(header, (float(v) for v in line.strip().split(",")))) for line in f
                if line.strip()]
    # Runs from before the title was recorded: their command line is the title.
    title = result.get("title") or result["command"]
    plot(bins, result["rebalances"], base + ".png", title)
    print("wrote", base + ".png")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--argent", default=os.path.join(ROOT, "build", "launch", "argent"))
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--standby", default="3", help="comma-separated standby ranks ('' for none)")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--partitions", type=int, default=32)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--writers", type=int, default=1)
    ap.add_argument("--write-batch", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rebalance", action="append", default=[],
                    help="PLAN[:RANK]@SECONDS, e.g. activate:3@15, drain:1@35, even@50")
    ap.add_argument("--chunk-bytes", type=int, default=1 << 20)
    ap.add_argument("--threads", type=int, default=1, help="search.threads per rank")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="search.device of the served ranks (the reference is always the CPU's)")
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cpu",
                    help="serve.backend: cpu = MPI collectives, cuda = NCCL (one GPU per rank)")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpirun-args", default="",
                    help="more mpirun arguments, one shell-quoted string, e.g. '--mca btl self,vader'")
    ap.add_argument("--work-dir", default="/tmp/argent-scale")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--name", help="output file names (default scale-DEVICE)")
    ap.add_argument("--replot", metavar="RESULT.json",
                    help="only draw RESULT.png from an earlier run's RESULT.json and RESULT.csv")
    args = ap.parse_args()
    if args.replot:
        replot(args.replot)
        return 0
    args.name = args.name or f"scale-{args.device}"
    argent = os.path.abspath(args.argent)
    # The client's messages come from the build that serves (build-gpu/ on the GPU machine),
    # unless ARGENT_PROTO_PYTHON says otherwise (python/argent/_messages.py).
    build_python = os.path.join(os.path.dirname(os.path.dirname(argent)), "python")
    if os.path.isdir(build_python):
        os.environ.setdefault("ARGENT_PROTO_PYTHON", build_python)
    os.makedirs(args.out_dir, exist_ok=True)

    data, built = prepare(args, argent)
    queries_path = os.path.join(data, "queries.npy")
    queries = np.load(queries_path).astype(np.float32)
    ref = reference(args, argent, built, queries_path)
    run_dir = os.path.join(args.work_dir, "run")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    index = os.path.join(run_dir, "index")
    shutil.copytree(built, index)
    endpoint = "ipc://" + os.path.join(run_dir, "gateway.sock")
    standby = [int(r) for r in args.standby.split(",") if r != ""]
    config = os.path.join(run_dir, "serve.yaml")
    write_config(config, {
        "index": {"dir": index},
        "serve": {"endpoint": endpoint, "stats_interval_s": 1.0, "backend": args.backend,
                  "standby_ranks": standby, "move_chunk_bytes": args.chunk_bytes,
                  "max_queue": 100000},
        "search": {"threads": args.threads, "device": args.device}})
    cluster = ServedCluster(argent, config, endpoint, args.ranks,
                            os.path.join(run_dir, "serve.log"), args.mpirun, args.mpirun_args)
    errors = []
    try:
        from argent_client import Client
        from argent import _zmq
        print("zmq backend:", _zmq.BACKEND, flush=True)
        start = time.time() + 1.0
        stop_at = start + args.duration
        procs = []
        for i in range(args.clients):
            procs.append(mp.Process(target=search_client, args=(
                i, endpoint, queries, ref, args.k, start, stop_at, os.path.join(run_dir, f"search-{i}"))))
        for i in range(args.writers):
            procs.append(mp.Process(target=write_client, args=(
                i, endpoint, args.dim, args.write_batch, start, stop_at, os.path.join(run_dir, f"write-{i}"))))
        for p in procs:
            p.start()
        windows = []
        driver = threading.Thread(target=drive_rebalances, args=(
            endpoint, parse_rebalances(args.rebalance), start, windows, errors))
        driver.start()
        for p in procs:
            p.join()
        driver.join()

        records = np.concatenate([np.load(os.path.join(run_dir, f"search-{i}.npy"))
                                  for i in range(args.clients)])
        writes = np.concatenate([np.load(os.path.join(run_dir, f"write-{i}.npy"))
                                 for i in range(args.writers)]) if args.writers else np.zeros((0, 2))
        wrong = failed = 0
        for i in range(args.clients):
            r = json.load(open(os.path.join(run_dir, f"search-{i}.json")))
            wrong += r["wrong"]
            failed += r["failed"]
            if r["first"]:
                errors.append("search client %d: %s" % (i, r["first"]))
        acked = []
        for i in range(args.writers):
            r = json.load(open(os.path.join(run_dir, f"write-{i}.json")))
            acked += r["acked"]
            failed += r["failed"]
            if r["first"]:
                errors.append("writer %d: %s" % (i, r["first"]))

        # Every acknowledged write is there exactly once (50 ids per exact search, by their id
        # feature), and nothing else was added.
        lost = 0
        with Client(endpoint, timeout_s=60) as c:
            zero = [0.0] * args.dim
            for at in range(0, len(acked), 50):
                group = acked[at:at + 50]
                expr = " OR ".join(f"{ID_FEATURE}:{i % (1 << 62)}" for i in group)
                r = c.search(zero, k=2 * len(group), exact=True, filter=expr)
                got = list(r.ids)
                if sorted(got) != sorted(group):
                    missing = set(group) - set(got)
                    lost += len(missing) + (len(got) - len(set(got)))
                    errors.append(f"writes {sorted(missing)[:5]} missing, or duplicates, in {got[:10]}")
            st = c.stats()
            items = sum(s.items for s in st.shards)
            if items != args.items + len(acked):
                errors.append(f"{items} live items, expected {args.items} built + {len(acked)} written")
            epoch = st.partition_map_epoch
            owners = list(st.partition_owner)
    finally:
        cluster.stop()

    bins, summary = summarize(records, writes, windows, args.duration)
    name = args.name
    with open(os.path.join(args.out_dir, name + ".csv"), "w") as f:
        f.write("t_s,qps,p50_ms,p99_ms,writes_per_s,rebalancing\n")
        for b in bins:
            f.write(f"{b['t_s']},{b['qps']},{b['p50_ms']:.3f},{b['p99_ms']:.3f},"
                    f"{b['writes_per_s']},{b['rebalancing']}\n")
    title = (f"{args.ranks} ranks (standby {args.standby or 'none'}), {args.items} x {args.dim}, "
             f"{args.clients} search + {args.writers} write clients, {args.device}, "
             f"{args.backend} collectives")
    result = {"command": " ".join(sys.argv), "title": title, "device": args.device,
              "backend": args.backend,
              "zmq": _zmq.BACKEND, "summary": summary, "rebalances": windows,
              "queries": int(len(records)), "wrong": wrong, "failed": failed,
              "writes_acked": len(acked), "writes_lost": lost, "final_epoch": epoch,
              "final_owners": owners, "errors": errors}
    json.dump(result, open(os.path.join(args.out_dir, name + ".json"), "w"), indent=1)
    try_plot(bins, windows, os.path.join(args.out_dir, name + ".png"), title)
    print(f"{'phase':8} {'seconds':>8} {'queries':>8} {'qps':>8} {'p50_ms':>8} {'p99_ms':>8}")
    for phase in ("before", "during", "after"):
        s = summary[phase]
        print(f"{phase:8} {s['seconds']:8.1f} {s['queries']:8d} {s['qps']:8.1f} "
              f"{s['p50_ms']:8.2f} {s['p99_ms']:8.2f}")
    print(f"#wrong {wrong}  #failed {failed}  writes acked {len(acked)}  lost {lost}  "
          f"final map epoch {epoch}")
    for e in errors:
        print("ERROR:", e)
    return 1 if (wrong or failed or lost or errors) else 0


if __name__ == "__main__":
    sys.exit(main())

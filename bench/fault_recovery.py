#!/usr/bin/python3
"""Cluster-fault benchmark: detection time and time to first answer after a fault (RTO).

Starts `argent supervise -- mpirun -np RANKS argent serve` on an index, keeps a closed loop of
exact searches going (one in flight, each with a client deadline of step_timeout + 1 s), and for
each fault and repeat:
  kill-shard   SIGKILL of the last rank
  stop-shard   SIGSTOP of the last rank for twice the step deadline, then SIGCONT
  kill-coord   SIGKILL of rank 0 (the coordinator: the client's deadline detects it)
records detection (fault -> first reply that is not OK, or the client's deadline) and RTO
(fault -> first OK answer from the restarted cluster; the supervisor's first backoff, 200 ms,
included), and counts answers that differ from the
answers before the first fault (#wrong; the index does not change). Prints one row per run and
writes fault_recovery.{csv,json} to --out-dir.

  bench/fault_recovery.py --index DIR [--ranks 3] [--step-timeout-ms 1000] [--repeats 3]
                          [--work-dir DIR] [--out-dir bench/results]
"""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from argent_client import ArgentError, Client  # noqa: E402
from served_cluster import write_config  # noqa: E402


def descendants(root):
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                line = f.read()
        except OSError:
            continue
        parent[int(entry)] = int(line[line.rfind(")") + 2:].split()[1])
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [pid for pid, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def rank_pids(root):
    ranks = {}
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(e.split(b"=")[1])] = pid
    return ranks


def wait_ranks(root, n, timeout_s=60):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        ranks = rank_pids(root)
        if len(ranks) == n:
            return ranks
        time.sleep(0.02)
    raise RuntimeError("the cluster's ranks did not appear")


def resume(pid):
    """SIGCONT, unless the job has already killed the stopped rank."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def ask(client, query, k):
    """(status, ids): 'OK', 'UNAVAILABLE', ... or 'TIMEOUT' (the client's deadline)."""
    try:
        r = client.search(query, k=k, exact=True)
        return "OK", tuple(r.ids)
    except ArgentError as e:
        return e.code, None
    except TimeoutError:
        return "TIMEOUT", None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--step-timeout-ms", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--work-dir", default="/tmp/argent-fault-bench")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--argent", default="build/launch/argent")
    a = ap.parse_args()
    os.makedirs(a.work_dir, exist_ok=True)
    os.makedirs(a.out_dir, exist_ok=True)
    argent = os.path.abspath(a.argent)
    endpoint = f"ipc://{os.path.abspath(a.work_dir)}/gateway.sock"
    config = os.path.join(a.work_dir, "serve.yaml")
    write_config(config, {
        "index": {"dir": os.path.abspath(a.index)},
        "serve": {"endpoint": endpoint, "step_timeout_ms": a.step_timeout_ms,
                  "heartbeat_ms": 200, "abort_grace_ms": 400},
        "search": {"threads": 1}})
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    log = open(os.path.join(a.work_dir, "supervise.log"), "w")
    # Every run here lasts longer than --stable-after-s, so each fault meets the first backoff
    # (200 ms), as a lone fault in production would; repeated faults within a minute would
    # double it each time.
    sup = subprocess.Popen([argent, "supervise", "--endpoint", endpoint, "--backoff-ms", "200",
                            "--stable-after-s", "10", "--", "mpirun", "--oversubscribe", "--bind-to", "none", "-np",
                            str(a.ranks), argent, "serve", "--config", config],
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline_s = (a.step_timeout_ms + 1000) / 1000.0
    rows = []
    try:
        client = Client(endpoint, timeout_s=deadline_s)
        with Client(endpoint, timeout_s=60) as c:
            c.health()
            dim = c.health().dim
        rng = np.random.default_rng(7)
        queries = rng.standard_normal((a.queries, dim)).astype(np.float32)
        reference = [ask(client, q, a.k)[1] for q in queries]
        assert all(r is not None for r in reference), "the cluster did not answer at start"
        faults = ["kill-shard", "stop-shard", "kill-coord"]
        for fault in faults:
            for rep in range(a.repeats):
                ranks = wait_ranks(sup.pid, a.ranks)
                victim = ranks[0] if fault == "kill-coord" else ranks[a.ranks - 1]
                for q in queries[:8]:
                    ask(client, q, a.k)  # warm, and the cluster is serving
                t0 = time.monotonic()
                os.kill(victim, signal.SIGSTOP if fault == "stop-shard" else signal.SIGKILL)
                detected = first_status = None
                resumed = False
                wrong = answers = i = 0
                while True:
                    status, ids = ask(client, queries[i % len(queries)], a.k)
                    now = time.monotonic() - t0
                    if fault == "stop-shard" and not resumed and now >= 2 * a.step_timeout_ms / 1e3:
                        resume(victim)
                        resumed = True
                    if status != "OK" and detected is None:
                        detected, first_status = now, status
                    if status == "OK" and detected is not None:
                        answers += 1
                        wrong += ids != reference[i % len(queries)]
                        rto = now
                        break
                    if now > 120:
                        raise RuntimeError(f"{fault}: no answer within 120 s")
                    i += 1
                if fault == "stop-shard" and not resumed:
                    resume(victim)
                # A few more answers after recovery, checked too.
                for j, q in enumerate(queries):
                    status, ids = ask(client, q, a.k)
                    answers += 1
                    wrong += status != "OK" or ids != reference[j]
                row = dict(fault=fault, repeat=rep, step_timeout_ms=a.step_timeout_ms,
                           detection_ms=round(detected * 1e3), first_status=first_status,
                           rto_ms=round(rto * 1e3), answers_after=answers, wrong=wrong)
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        client.close()
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=60)
    with open(os.path.join(a.out_dir, "fault_recovery.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(a.out_dir, "fault_recovery.json"), "w") as f:
        json.dump(rows, f, indent=1)
    for fault in dict.fromkeys(r["fault"] for r in rows):
        d = sorted(r["detection_ms"] for r in rows if r["fault"] == fault)
        t = sorted(r["rto_ms"] for r in rows if r["fault"] == fault)
        print(f"{fault}: detection median {d[len(d) // 2]} ms (max {d[-1]}), "
              f"RTO median {t[len(t) // 2]} ms (max {t[-1]})")


if __name__ == "__main__":
    main()

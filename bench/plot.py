#!/usr/bin/python3
"""PNG plots of an `argent bench --csv` run (python3-matplotlib), written next to its CSV:

    OUT-recall-qps.png   throughput (QPS, log scale) vs recall@10 per filter and batch size, one
                         point per nprobe (exact modes as their own markers)
    OUT-latency-cdf.png  the CDF of per-batch latency (ms, log scale), one curve per
                         configuration (filter, mode, batch size, nprobe)

    bench/plot.py --csv results.csv --latency results-latency.csv --out results
"""

import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def recall_qps(rows, out):
    fig, ax = plt.subplots(figsize=(7, 5))
    series = defaultdict(list)
    for r in rows:
        series[(r["filter"], int(r["batch"]))].append(r)
    for (flt, batch), points in sorted(series.items()):
        ivf = sorted((p for p in points if p["mode"] == "ivf"), key=lambda p: int(p["nprobe"]))
        label = f"batch {batch}" + ("" if flt == "none" else f", filter {flt}")
        line = None
        if ivf:
            (line,) = ax.plot([float(p["recall_at_10"]) for p in ivf], [float(p["qps"]) for p in ivf],
                              marker="o", label=label)
            for p in ivf:
                ax.annotate(p["nprobe"], (float(p["recall_at_10"]), float(p["qps"])), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
        for p in points:
            if p["mode"] != "ivf":
                ax.plot(float(p["recall_at_10"]), float(p["qps"]),
                        marker="*" if p["mode"] == "exact" else "x", markersize=9,
                        color=line.get_color() if line else None,
                        label=f"{label}, {p['mode']}")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries / s")
    ax.set_yscale("log")
    ax.set_title("Throughput vs recall (labels: nprobe)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def latency_cdf(samples, out):
    groups = defaultdict(list)
    for s in samples:
        groups[(s["filter"], s["mode"], int(s["batch"]), int(s["nprobe"]))].append(float(s["ms"]))
    fig, ax = plt.subplots(figsize=(7, 5))
    for (flt, mode, batch, nprobe), ms in sorted(groups.items()):
        ms.sort()
        n = len(ms)
        label = f"{mode} nprobe {nprobe}, batch {batch}" + ("" if flt == "none" else f", {flt}")
        ax.step(ms, [(i + 1) / n for i in range(n)], where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency per batch (ms)")
    ax.set_ylabel("fraction of batches")
    ax.set_title("Latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    if len(groups) <= 16:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--latency", required=True)
    parser.add_argument("--out", required=True, help="path prefix of the PNG files")
    args = parser.parse_args()
    rows, samples = read(args.csv), read(args.latency)
    if not rows:
        raise SystemExit(f"{args.csv}: no rows")
    recall_qps(rows, args.out + "-recall-qps.png")
    latency_cdf(samples, args.out + "-latency-cdf.png")
    print(f"plots: {args.out}-recall-qps.png {args.out}-latency-cdf.png")


if __name__ == "__main__":
    main()
